"""Attribute disclosure: singling out, linkability, attribute inference from quasi-identifiers, k-anonymity /
l-diversity, and which columns are quasi-identifiers or sensitive (the spec's, or guessed from column names)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.columns import NUMERIC_LIKE, sample_rows, to_float
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.evaluation.privacy.encoding import MAX_REFERENCE, attacks, encode, joint_column_codes

LINK_ROWS = 1000  # targets (and control rows) for linkability and attribute inference
LINK_SYNTHETIC = 20_000  # synthetic rows the linkability and inference attacks search
K_TARGET = 5
QI_BINS = 10  # numeric quasi-identifiers are generalised to deciles of train for k-anonymity
DEFAULT_QI = re.compile(r"(?:^|_)(age|gender|sex|race|ethnicity|marital|zip|postcode|postal|city|country|"
                        r"nationality|education|occupation|birth|dob|state|region)(?:_|$)")
DEFAULT_SENSITIVE = re.compile(r"(?:^|_)(income|salary|wage|diagnosis|disease|health|religion|"
                               r"politic\w*|sexual\w*|credit_?score|loan|debt)(?:_|$)")


def singling_out(compact: list[np.ndarray], meta, columns, seed) -> dict:
    sets = [[x[:, j] for j in range(x.shape[1])] for x in compact]
    numeric = [meta.columns[c].sdtype in NUMERIC_LIKE for c in columns]
    return attacks.singling_out(sets[0], sets[1], sets[2], numeric, seed=seed)


def linkability(train, holdout, synth, meta, columns, seed, max_rows: int = LINK_ROWS) -> dict:
    if len(columns) < 2:
        return {"skipped": "fewer than two columns to split between two databases"}
    n = min(len(holdout), len(train), max_rows)
    targets = sample_rows(train, n, seed + 9)
    control = sample_rows(holdout, n, seed + 10)
    synth_r = sample_rows(synth, LINK_SYNTHETIC, seed + 5)
    fit = sample_rows(train, MAX_REFERENCE, seed + 3)
    # Alternate by cardinality, so both halves get identifying (many-valued) columns, as real databases do.
    ranked = sorted(columns, key=lambda c: -int(fit[c].nunique(dropna=False)))
    halves = [ranked[0::2], ranked[1::2]]
    a = encode(fit, [targets, control, synth_r], meta, halves[0])
    b = encode(fit, [targets, control, synth_r], meta, halves[1])
    result = attacks.linkability(a[0], b[0], a[1], b[1], a[2], b[2])
    return {**result, "columns_a": len(halves[0]), "columns_b": len(halves[1])}


def attribute_inference(train, holdout, synth, meta, qis, sensitive, seed, max_rows: int = LINK_ROWS) -> dict:
    out: dict[str, dict] = {}
    n = min(len(holdout), len(train), max_rows)
    members, control = sample_rows(train, n, seed + 11), sample_rows(holdout, n, seed + 12)
    synth_r, fit = sample_rows(synth, LINK_SYNTHETIC, seed + 5), sample_rows(train, MAX_REFERENCE, seed + 3)
    for column in sensitive:
        known = [q for q in qis if q != column]
        if not known:
            out[column] = {"skipped": "no quasi-identifier besides the column itself"}
            continue
        synth_q, member_q, control_q = encode(fit, [synth_r, members, control], meta, known)
        categorical = meta.columns[column].sdtype not in NUMERIC_LIKE
        if categorical:
            targets = joint_column_codes([synth_r, members, control], column, meta.columns[column].sdtype)
        else:
            targets = [x[:, 0].astype("float64") for x in encode(fit, [synth_r, members, control], meta, [column])]
        out[column] = attacks.attribute_inference(synth_q, targets[0], member_q, targets[1], control_q, targets[2],
                                                  categorical=categorical)
    return out


def _qi_codes(frames: list[pd.DataFrame], meta: TableMeta, qis: list[str]) -> list[pd.DataFrame]:
    """Quasi-identifiers generalised as an attacker would match them: categories as is, numbers in train deciles."""
    columns: list[list[np.ndarray]] = []
    for column in qis:
        sdtype = meta.columns[column].sdtype
        if sdtype in NUMERIC_LIKE:
            values = [to_float(f[column], sdtype) for f in frames]
            reference = values[0][~np.isnan(values[0])]
            edges = np.unique(np.quantile(reference, np.linspace(0, 1, QI_BINS + 1)[1:-1])) if len(reference) else np.array([])
            columns.append([np.where(np.isnan(v), -1, np.searchsorted(edges, v, side="right")) for v in values])
        else:
            columns.append(joint_column_codes(frames, column, sdtype))
    return [pd.DataFrame({q: columns[j][i] for j, q in enumerate(qis)}) for i in range(len(frames))]


def k_anonymity(train, synth, meta, qis, sensitive, seed) -> dict:
    frames = [sample_rows(train, MAX_REFERENCE, seed + 3), sample_rows(synth, MAX_REFERENCE, seed + 5)]
    real_codes, synth_codes = _qi_codes(frames, meta, qis)
    secrets = {c: joint_column_codes(frames, c, meta.columns[c].sdtype) for c in sensitive if c not in qis}
    synthetic = attacks.k_anonymity(synth_codes, {c: v[1] for c, v in secrets.items()}, k_target=K_TARGET)
    real = attacks.k_anonymity(real_codes, {c: v[0] for c, v in secrets.items()}, k_target=K_TARGET)
    return {**synthetic, "real": real, "quasi_identifiers": len(qis)}


def table_k_anonymity(frame: pd.DataFrame, meta: TableMeta, qis: list[str], sensitive: list[str] = (),
                      k_target: int = K_TARGET) -> dict:
    """k-anonymity and l-diversity of one table's quasi-identifiers, generalised as the privacy report does
    (categories as they are, numbers in deciles)."""
    codes = _qi_codes([frame], meta, list(qis))[0]
    secrets = {c: joint_column_codes([frame], c, meta.columns[c].sdtype)[0] for c in sensitive if c not in qis}
    return attacks.k_anonymity(codes, secrets, k_target=k_target)


def _name_tokens(column: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", column)
    return re.sub(r"[^a-z0-9]+", "_", text.lower())


def roles(table: str, columns: list[str], declared: Mapping[str, list[str]] | None, pattern: re.Pattern) -> tuple[list[str], str]:
    if declared and table in declared:
        return [c for c in declared[table] if c in columns], "spec"
    return [c for c in columns if pattern.search(_name_tokens(c))][:6], "inferred from column names"
