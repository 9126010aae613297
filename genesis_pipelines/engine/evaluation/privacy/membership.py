"""Membership inference: does an attacker holding the synthetic rows tell training rows from holdout rows?"""

from __future__ import annotations

import numpy as np

from genesis_pipelines.engine.evaluation.privacy.encoding import MIN_HOLDOUT_ROWS, attacks, pick

MIA_ROWS = 1000  # members and non-members attacked
MIA_SYNTHETIC = 50_000  # synthetic rows the membership attacks search


def membership_inference(encoded: list[np.ndarray], compact: list[np.ndarray], *, max_rows: int = MIA_ROWS,
                         seed: int = 0, holdout_groups: np.ndarray | None = None) -> dict:
    """Members = training rows, non-members = holdout rows, equally many (at most `max_rows` each); the
    synthetic side is capped at MIA_SYNTHETIC rows. The shadow attack's auxiliary real data is half of the
    non-members; it is evaluated on the other half against as many members. With `holdout_groups` (a grouped
    holdout) the halves are whole parents, so the attack is not scored on the siblings of rows it learned from."""
    train_x, holdout_x, synth_x = encoded
    n = min(len(holdout_x), len(train_x), max_rows)
    if n < MIN_HOLDOUT_ROWS or len(synth_x) == 0 or train_x.shape[1] == 0:
        return {"skipped": f"fewer than {MIN_HOLDOUT_ROWS} holdout rows or no synthetic rows"}
    member_rows, nonmember_rows = pick(len(train_x), n, seed + 6), pick(len(holdout_x), n, seed + 7)
    synth_rows = pick(len(synth_x), MIA_SYNTHETIC, seed + 8)
    synth_ref = synth_x[synth_rows]
    member_d = attacks.nearest(synth_ref, train_x[member_rows])[:, 0]
    nonmember_d = attacks.nearest(synth_ref, holdout_x[nonmember_rows])[:, 0]
    out = {"distance": attacks.distance_attack(member_d, nonmember_d, seed)}
    if n < 2 * MIN_HOLDOUT_ROWS or len(synth_ref) < 2:
        out["shadow"] = {"skipped": f"fewer than {2 * MIN_HOLDOUT_ROWS} holdout rows"}
        return out
    fit = pick(len(synth_ref), n, seed + 9)
    loo = attacks.nearest(synth_ref, synth_ref[fit], k=2)[:, 1]
    ref, evaluation = _halves(n, None if holdout_groups is None else holdout_groups[nonmember_rows], seed + 10)
    if len(ref) < MIN_HOLDOUT_ROWS // 2 or len(evaluation) < MIN_HOLDOUT_ROWS // 2:
        out["shadow"] = {"skipped": "held-out parents too few to split into reference and evaluation halves"}
        return out
    train_c, holdout_c, synth_c = compact
    out["shadow"] = attacks.shadow_attack(
        synth_c[synth_rows[fit]], loo, holdout_c[nonmember_rows[ref]], nonmember_d[ref],
        train_c[member_rows[evaluation]], member_d[evaluation], holdout_c[nonmember_rows[evaluation]],
        nonmember_d[evaluation], seed)
    return out


def _halves(n: int, groups: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions 0..n-1 in two seeded halves; with group labels, every group falls wholly in one half."""
    rng = np.random.default_rng(seed)
    if groups is None:
        order = rng.permutation(n)
        return order[: n // 2], order[n // 2:]
    unique = rng.permutation(np.unique(groups))
    first = np.isin(groups, unique[: len(unique) // 2])
    return np.flatnonzero(first), np.flatnonzero(~first)
