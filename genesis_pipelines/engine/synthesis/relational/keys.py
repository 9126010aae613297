"""Key assignment: primary keys regenerated, children given to generated parents following the learned
children-per-parent distribution (jointly with the parents' features where the child's model sees them)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.rules import children
from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.schema import (
    ForeignKey,
    PlannedKey,
    comparable_values,
    key_positions,
    key_series,
    key_values,
    parent_keys,
)
from genesis_pipelines.engine.core.schema import keys_at as _keys_at
from genesis_pipelines.engine.core.schema import nullable_key_dtype as _nullable_dtype
from genesis_pipelines.engine.synthesis.generators import load_generator
from genesis_pipelines.engine.synthesis.generators.base import sample_columns, sample_columns_stream
from genesis_pipelines.engine.synthesis.relational.model import (
    CHUNK_ROWS,
    COUNT_COLUMN,
    KeyStats,
    ParentFeature,
    RelationalModel,
    RelationStats,
)
from genesis_pipelines.engine.synthesis.relational.structure import (
    RowConditions,
    children_counts,
    parent_feature_frame,
)

COUNT_DRAWS = 8  # conditional draws of children per parent averaged to rank the parents


def _sample_counts(relation: RelationStats, n_parents: int, rng: np.random.Generator) -> np.ndarray:
    """Systematic sampling of the children-per-parent distribution: at scale 1 it is reproduced exactly
    (3 hub airports stay 3), where independent draws could give 1 or 0 hubs."""
    cumulative = np.cumsum(np.asarray(relation.probs))
    u = (np.arange(n_parents) + rng.random()) / max(n_parents, 1)
    counts = np.asarray(relation.counts)[np.minimum(np.searchsorted(cumulative, u, side="right"), len(cumulative) - 1)]
    return counts[rng.permutation(n_parents)]


def apportion(weights: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integer counts summing to `total`, proportional to `weights` (largest remainder, random tie-break)."""
    weights = np.asarray(weights, dtype="float64")
    if len(weights) == 0:
        return weights.astype(int)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(int)
    remainder = int(total - counts.sum())
    if remainder > 0:
        order = np.argsort(-(exact - counts) - rng.random(len(exact)) * 1e-9)
        counts[order[:remainder]] += 1
    return counts


class _Parents:
    """A generated parent table as the relational layer needs it: keys, and per relation the count model."""

    def __init__(self, model: RelationalModel, model_dir: Path, relation: RelationStats, parent: pd.DataFrame):
        self.relation, self.frame = relation, parent.reset_index(drop=True)
        # a composite key as its tuple codes (see schema.key_values); one column as generated, keeping its dtype
        self.keys = (parent_keys(relation.fk, self.frame) if relation.fk.composite
                     else self.frame[relation.fk.parent_column])
        self.model_dir = Path(model_dir) / "relations" / str(model.relations.index(relation))

    def weights(self, rng: np.random.Generator) -> np.ndarray:
        """Children per parent: the learned distribution, systematically sampled, handed out to parents in the
        order the count model ranks them given their own columns (the marginal stays exact, the dependence on
        the parent's columns comes from the model)."""
        n = len(self.frame)
        if self.relation.count_by_value and self.relation.count_key in self.frame.columns:
            known = self.frame[self.relation.count_key].astype(str).map(self.relation.count_by_value)
            if known.notna().any():
                return known.fillna(known.mean()).to_numpy(dtype="float64")
        for _ in range(3):
            counts = _sample_counts(self.relation, n, rng).astype("float64")
            if counts.sum() > 0:
                break
        else:
            return np.ones(n)
        if not self.relation.count_model or n < 2:
            return counts
        features = [f for f in self.relation.features if f.kind != "count"]
        conditions = parent_feature_frame(features, self.frame, None)
        # the mean of a few conditional draws ranks the parents (one draw is too noisy on small lookup tables):
        # draw k of parent i is row k * n + i of one stream, drawn a piece at a time (the rows of parents i..j
        # repeated, never all COUNT_DRAWS * n rows at once) and summed in draw order, as a mean over draws sums
        count_model = load_generator(self.model_dir)
        pieces = sample_columns_stream(count_model, n * COUNT_DRAWS, [COUNT_COLUMN],
                                       lambda start, stop: conditions.iloc[np.arange(start, stop) % n],
                                       seed=int(rng.integers(0, 2**31 - 1)))
        score = _mean_of_draws((pd.to_numeric(p[COUNT_COLUMN], errors="coerce").fillna(0).to_numpy(dtype="float64")
                                for p in pieces), n, COUNT_DRAWS)
        ranks = np.lexsort((rng.random(n), score))  # ascending score, random among ties
        out = np.empty(n)
        out[ranks] = np.sort(counts)
        return out


def _mean_of_draws(pieces, n: int, draws: int) -> np.ndarray:
    """Per parent, the mean of its `draws` draws, given consecutive pieces of the draws laid out draw by draw (row
    k * n + i: draw k of parent i): summed in draw order, then divided, as draws.reshape(draws, n).mean(axis=0)."""
    score = np.zeros(n)
    done = 0
    for piece in pieces:
        row, end = done, done + len(piece)
        while row < end:  # within one draw's parents, then the next draw's
            parent = row % n
            stop = min(end, row - parent + n)
            score[parent:parent + stop - row] += piece[row - done:stop - done]
            row = stop
        done = end
    score /= draws
    return score


def _generate_keys(stats: KeyStats, n: int, rng: np.random.Generator) -> pd.Series:
    if stats.kind == "integer":
        return pd.Series(np.arange(stats.start, stats.start + n), dtype="Int64")
    keys = np.empty(0, dtype=object)
    for _ in range(50):
        if len(keys) >= n:
            break
        need = n - len(keys)
        templates = rng.choice(np.asarray(stats.templates, dtype=object), size=need * 2, p=np.asarray(stats.template_probs))
        # distinct keys in the order drawn, the ones already made first
        keys = pd.unique(np.concatenate([keys, _fill_templates(templates, rng)]))[:n]
    if len(keys) < n:  # the learned shapes cannot hold n distinct keys: widen with a counter suffix
        keys = np.concatenate([keys, np.asarray([f"K{i}" for i in range(len(keys), n)], dtype=object)])
    return pd.Series(keys, dtype="string")


_KEY_ALPHABETS = {"U": np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")), "L": np.array(list("abcdefghijklmnopqrstuvwxyz")),
                  "D": np.array(list("0123456789"))}


def _fill_templates(templates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One key per template ("UUDD" -> "AB12": U upper, L lower, D digit, any other character kept), drawn a
    template's rows at a time, character position by position (no Python per key)."""
    out = np.empty(len(templates), dtype=object)
    codes, uniques = pd.factorize(pd.Series(templates, dtype=object))
    for code, template in enumerate(uniques):
        rows = np.flatnonzero(codes == code)
        if not template:
            out[rows] = ""
            continue
        chars = np.empty((len(rows), len(template)), dtype="<U1")
        for j, c in enumerate(template):
            chars[:, j] = _KEY_ALPHABETS[c][rng.integers(0, len(_KEY_ALPHABETS[c]), len(rows))] if c in _KEY_ALPHABETS else c
        out[rows] = chars.view(f"<U{len(template)}").ravel().astype(object)
    return out


def _weighted_distinct(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Efraimidis-Spirakis: k distinct indices, weighted, without replacement."""
    if k >= len(weights):
        return np.arange(len(weights))
    priority = np.log(rng.random(len(weights))) / np.maximum(weights, 1e-12)
    return np.argpartition(-priority, k - 1)[:k]


def _assign(parents: _Parents, n: int, rng: np.random.Generator, shuffle: bool) -> tuple[pd.Series, np.ndarray]:
    """FK values for n child rows (nulls at the learned share, the rest spread over parents like the real data)
    and the number of children each parent got."""
    planned, counts = _assign_planned(parents, n, rng, shuffle)
    return (planned.series() if isinstance(planned, PlannedKey) else planned), counts


def _assign_planned(parents: _Parents, n: int, rng: np.random.Generator,
                    shuffle: bool) -> tuple[pd.Series | PlannedKey, np.ndarray]:
    """_assign with the FK values as a PlannedKey (each row's parent position, int32) where the FK is one column;
    the same draws."""
    relation, parent_keys = parents.relation, parents.keys
    fk = relation.fk
    is_null = rng.random(n) < relation.null_share if relation.null_share > 0 else np.zeros(n, dtype=bool)
    present = int((~is_null).sum())
    if len(parent_keys) == 0:
        if present:
            raise GenesisError(f"table {fk.child_table!r}: parent table {fk.parent_table!r} has no generated rows for {fk.child_column}")
        return pd.Series([None] * n, dtype=_nullable_dtype(parent_keys)), np.zeros(0, dtype=int)  # None: NaN for float keys
    weights = parents.weights(rng)
    is_null = children.enough_present(is_null, relation.min_children * len(parent_keys), rng)
    present = int((~is_null).sum())
    if relation.unique:
        # one-to-one: distinct parents; rows beyond the number of parents get a null key, or where the key is
        # required a parent again (rows whose primary key is this FK then repeat and are dropped at output)
        counts = np.zeros(len(parent_keys), dtype=int)
        counts[_weighted_distinct(weights + 1e-9, present, rng)] = 1
        if present > len(parent_keys):
            extra = np.flatnonzero(~is_null)[len(parent_keys):]
            if fk.nullable:
                is_null[extra] = True
            else:
                counts += apportion(weights + 1e-9, len(extra), rng)
    else:
        counts = children.at_least(apportion(weights, present, rng), relation.min_children, rng)
    small = len(parent_keys) < 2**31 - 1  # parent positions as int32: the keys are taken from them once, or per block
    assigned = np.repeat(np.arange(len(parent_keys), dtype=np.int32 if small else np.int64), counts)
    if shuffle:
        assigned = assigned[rng.permutation(len(assigned))]
    position = _scatter(assigned, ~is_null)  # -1 on the null rows
    if fk.composite:
        return _keys_at(parent_keys, position), counts
    return PlannedKey(position, parent_keys), counts


def _scatter(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """`values` laid on the rows where `where` holds, in order (-1 elsewhere)."""
    out = np.full(len(where), -1, dtype=values.dtype if values.dtype.kind == "i" else np.int64)
    out[where] = values
    return out


def _unique_within_groups(groups: np.ndarray, parents: _Parents, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Second key of a junction table: distinct parents within each group, weighted by popularity."""
    weights = parents.weights(rng) + 1e-3
    keep, chosen = [], []
    order = np.argsort(groups, kind="stable")
    boundaries = np.flatnonzero(np.diff(groups[order])) + 1
    for rows in np.split(order, boundaries):
        k = min(len(rows), len(weights))
        keep.append(rows[:k])
        chosen.append(_weighted_distinct(weights, k, rng))
    rows = np.concatenate(keep) if keep else np.array([], dtype=int)
    picked = np.concatenate(chosen) if chosen else np.array([], dtype=int)
    picked = children.cover(groups[rows], picked, len(weights), parents.relation.min_children, rng)
    return rows, parents.keys.to_numpy()[picked], np.bincount(picked, minlength=len(weights))


def _self_reference(relation: RelationStats, keys: pd.Series, rng: np.random.Generator) -> pd.Series:
    """A forest generated level by level: the learned share of rows per depth, each row pointing to a row one
    level up (weighted by the learned children-per-parent distribution); never a cycle."""
    n = len(keys)
    if n == 0:
        return pd.Series([], dtype=keys.dtype)
    depth_probs = np.asarray(relation.depth_probs or [relation.null_share, 1 - relation.null_share], dtype="float64")
    per_level = apportion(depth_probs, n, rng)
    if per_level[0] == 0:  # a hierarchy needs a root
        per_level[int(np.argmax(per_level))] -= 1
        per_level[0] += 1
    per_level = per_level[: max(1, int(np.flatnonzero(per_level).max()) + 1)]
    values = pd.Series([pd.NA] * n, dtype=keys.dtype)
    key_values = keys.to_numpy()
    bounds = np.concatenate([[0], np.cumsum(per_level)])
    for level in range(1, len(per_level)):
        above = np.arange(bounds[level - 1], bounds[level])
        rows = np.arange(bounds[level], bounds[level + 1])
        if not len(rows):
            continue
        weights = _sample_counts(relation, len(above), rng).astype("float64") + 1e-3
        counts = apportion(weights, len(rows), rng)
        values[rows] = key_values[np.repeat(above, counts)][rng.permutation(len(rows))]
    return values


def _predicted_category(predicted: pd.DataFrame, relation: RelationStats, feature: ParentFeature) -> np.ndarray:
    """The parent category a sampled child row asks for: its one set indicator if exactly one is, else the value."""
    values = predicted[feature.name].astype(object).where(predicted[feature.name].notna(), None)
    values = np.asarray([None if v is None else str(v) for v in values], dtype=object)
    indicators = [f for f in relation.features if f.kind == "onehot" and f.column == feature.column and f.name in predicted]
    if indicators:
        flags = np.column_stack([pd.to_numeric(predicted[f.name], errors="coerce").fillna(0).to_numpy() >= 0.5
                                 for f in indicators])
        one = flags.sum(axis=1) == 1
        values[one] = np.asarray([f.category for f in indicators], dtype=object)[flags[one].argmax(axis=1)]
    return values


def _match_categories(want: np.ndarray, have: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """take[i]: which of the assigned parents (categories `have`) row i gets, as many rows as possible getting
    the category they ask for (`want`); the rest are paired at random."""
    # a null category (a parent with no value) is a slot like any other: every assigned parent is handed out once
    codes, uniques = pd.factorize(pd.Series(have, dtype=object), use_na_sentinel=False)
    return _match_codes(_codes_of(want, _category_codes(uniques)), codes, len(uniques), rng)


def _category_codes(uniques) -> dict:
    """Category -> its code, for the categories a row can ask for (not the null one)."""
    return {category: code for code, category in enumerate(uniques) if not pd.isna(category)}


def _codes_of(want: np.ndarray, code_of: dict) -> np.ndarray:
    """Each asked-for category's code (-1: null, or no assigned parent has it), as int32."""
    return pd.Series(want, dtype=object).map(code_of).fillna(-1).to_numpy(dtype=np.int32)


def _match_codes(want: np.ndarray, have: np.ndarray, n_codes: int, rng: np.random.Generator) -> np.ndarray:
    """_match_categories on codes: `have` the assigned parents' category codes (0..n_codes-1, numbered in order of
    first appearance), `want` the code each row asks for (-1: none). Per code its parents in random order; the
    codes asked for, in order of first appearance, take their rows' parents; the parents left go at random to the
    rows left. Integer arrays only: no category text per row."""
    take = np.full(len(want), -1)
    order = np.argsort(have, kind="stable")  # each code's parents in row order, as np.flatnonzero(have == code)
    bounds = np.searchsorted(have[order], np.arange(n_codes + 1))
    slots = [rng.permutation(order[bounds[code]:bounds[code + 1]]) for code in range(n_codes)]
    used = np.zeros(n_codes, dtype=np.int64)
    for code in pd.unique(want[want >= 0]):
        pool = slots[code]
        if not len(pool):
            continue
        rows = rng.permutation(np.flatnonzero(want == code))[: len(pool)]
        take[rows] = pool[: len(rows)]
        used[code] = len(rows)
    left = np.concatenate([pool[used[code]:] for code, pool in enumerate(slots)]) if slots else np.zeros(0, dtype=int)
    open_rows = np.flatnonzero(take < 0)
    take[open_rows] = rng.permutation(left.astype(int))[: len(open_rows)]
    return take


def _match_numbers(scores: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Rank matching: the row asking for the k-th smallest score gets the parent with the k-th smallest score.
    `scores` is [want, have], emptied here: each whole-table array is let go once read (have's NaNs zeroed in place)."""
    want, have = scores
    scores.clear()
    jitter = rng.random(len(want))
    jitter *= 1e-9
    major = rng.standard_normal(len(want))  # a row asking for no score ranks by a normal draw
    np.copyto(major, want, where=~np.isnan(want))
    take = np.empty(len(want), dtype=int)
    del want
    pair = [jitter, major]
    del jitter, major
    rows = _lexsort2_owned(pair)
    pair = [rng.random(len(have)), np.nan_to_num(have, copy=False)]
    del have
    take[rows] = _lexsort2_owned(pair)
    return take


def _lexsort2(minor: np.ndarray, major: np.ndarray) -> np.ndarray:
    """np.lexsort((minor, major)) (by major, then minor, then position) for a random minor key: its order comes from
    one quicksort when it has no ties (else a stable sort), then one stable sort by major (lexsort sorts both stably)."""
    return _lexsort2_owned([minor, major])


def _lexsort2_owned(pair: list[np.ndarray]) -> np.ndarray:
    """_lexsort2 of pair = [minor, major], emptied here so each array goes once read (a caller that hands its only
    references over holds at most three whole-table arrays at once)."""
    minor, major = pair
    pair.clear()
    first = np.argsort(minor)
    if _tied(minor, first):
        first = np.argsort(minor, kind="stable")
    del minor
    by_major = major[first]
    del major
    order = np.argsort(by_major, kind="stable")
    del by_major
    return first[order]


def _tied(values: np.ndarray, order: np.ndarray, step: int = 1 << 20) -> bool:
    """Two equal values next to each other in `order` (checked a piece at a time: no sorted copy of every value)."""
    for start in range(0, max(len(order) - 1, 0), step):
        ordered = values[order[start:start + step + 1]]
        if bool((ordered[1:] == ordered[:-1]).any()):
            return True
    return False


def _joint_parents(generator, relations: list[RelationStats], keys: dict[str, pd.Series], placed: dict,
                   per_parent: dict[int, np.ndarray], rng: np.random.Generator) -> None:
    """A child with several parents gets a plausible combination of them, not independent ones (a track's genre
    goes with its media type; an invoice line's track with its invoice): the child model is sampled given the
    first parent only, and each further parent's assigned keys (children per parent unchanged) are permuted over
    the rows so each row gets a parent like the one it asks for: the lookup name it asks for, else the closest
    rank of the parent's numeric features, else its first category."""
    rest = [r for r in relations[1:] if any(f.kind == "value" for f in r.features)]
    if not relations or not rest or generator is None:
        return
    anchor = relations[0]
    n = len(keys[anchor.fk.child_column])
    if n < 2:
        return
    cond = (RowConditions([(anchor, keys[anchor.fk.child_column], placed[id(anchor)].frame, per_parent[id(anchor)])], n)
            if anchor.features else None)
    wanted = [f.name for r in rest for f in r.features if f.kind != "count"]
    seed = int(rng.integers(0, 2**31 - 1))
    matches = [_JointMatch(relation, keys[relation.fk.child_column], placed[id(relation)].frame) for relation in rest]
    try:  # in chunks, each reduced at once to what the matching reads: memory stays bounded on big child tables
        for start in range(0, n, CHUNK_ROWS):
            part_cond = cond.rows(start, start + CHUNK_ROWS) if cond is not None else None
            part = sample_columns(generator, min(CHUNK_ROWS, n - start), wanted, conditions=part_cond, seed=seed + start)
            for match in matches:
                match.add(part.reset_index(drop=True), start)
    except GenesisError:  # a model that cannot condition this way keeps the independent choice
        return
    for match in matches:
        take = match.take(rng)
        if take is None:
            continue
        column, rows = match.column, np.flatnonzero(match.present)
        rows = rows.astype(np.int32) if len(column) < 2**31 - 1 else rows
        # each row's key taken from the row the matching hands it (parent positions, or in Arrow for text)
        source = np.arange(len(column), dtype=rows.dtype)
        source[rows] = rows[take]
        del take
        keys[match.relation.fk.child_column] = (column.take(source) if isinstance(column, PlannedKey) else
                                                pd.Series(column.array.take(source), index=column.index, name=column.name))


class _JointMatch:
    """What _joint_parents needs to permute one further parent's keys over the rows, gathered chunk by chunk from
    the child model's draws: per row with a key, only the category code it asks for (int32) or its summed numeric
    score (never the drawn columns of every row, nor category text per row). Each draw's value goes through the
    same arithmetic as on a whole frame. Per row it keeps the parent position (int32) and that reduced draw; the
    parents' own scores or category codes are laid over the rows at take()."""

    def __init__(self, relation: RelationStats, column: pd.Series | PlannedKey, frame: pd.DataFrame):
        self.relation, self.column, self.frame = relation, column, frame
        if isinstance(column, PlannedKey):  # the parent rows are known: no key looked up
            self.present = column.positions >= 0
            position = column.positions[self.present]
        else:
            self.present = column.notna().to_numpy()
            position = key_positions(parent_keys(relation.fk, frame), comparable_values(column[self.present]))
        self.usable = bool(self.present.sum() >= 2 and not (position < 0).any())
        self.position = position.astype(np.int32) if len(frame) < 2**31 - 1 else position
        self.mode: str | None = None
        self.parts: list[np.ndarray] = []

    def _parent_values(self, feature: ParentFeature) -> np.ndarray:
        return pd.to_numeric(self.frame[feature.column], errors="coerce").to_numpy(dtype="float64")[self.position]

    def _choose(self, columns) -> None:
        """The lookup name asked for, else the numeric features' scores, else the first category (the drawn
        columns tell which features the model has)."""
        relation, frame = self.relation, self.frame
        values = [f for f in relation.features if f.kind == "value" and f.name in columns]
        lookup = [f for f in values if f.column == relation.count_key]
        numeric = [f for f in values if pd.api.types.is_numeric_dtype(frame[f.column])
                   and not pd.api.types.is_bool_dtype(frame[f.column])]
        categorical = [f for f in values if f not in numeric]
        if lookup or (categorical and not numeric):
            self.mode, self.feature = "category", (lookup or categorical)[0]
            # the rows' categories numbered in order of first appearance over the rows (as factorizing each row's
            # text numbers them), from the parents' categories: one code per row, no text per row
            text = pd.Series(frame[self.feature.column].astype(str).to_numpy(dtype=object), dtype=object)
            parent_codes, parent_uniques = pd.factorize(text, use_na_sentinel=False)
            self.have, first_seen = pd.factorize(parent_codes[self.position])
            self.code_of = _category_codes(np.asarray(parent_uniques, dtype=object)[first_seen])
            self.n_codes = len(first_seen)
        elif numeric:
            self.mode, self.scales = "numeric", []
            for feature in numeric:
                parent_values = self._parent_values(feature)
                if not np.isfinite(parent_values).any():  # the chosen parents hold no value of this feature: it ranks nothing
                    continue
                mean, sd = np.nanmean(parent_values), np.nanstd(parent_values) or 1.0
                self.scales.append((feature, mean, sd))
        else:
            self.mode = "none"

    def add(self, part: pd.DataFrame, start: int) -> None:
        if not self.usable:
            return
        if self.mode is None:
            self._choose(part.columns)
        rows = self.present[start:start + len(part)]
        if self.mode == "category":
            self.parts.append(_codes_of(_predicted_category(part, self.relation, self.feature)[rows], self.code_of))
        elif self.mode == "numeric":
            want = np.zeros(int(rows.sum()))
            for feature, mean, sd in self.scales:
                asked = pd.to_numeric(part[feature.name], errors="coerce").to_numpy(dtype="float64")[rows]
                want += np.nan_to_num((asked - mean) / sd)
            self.parts.append(want)

    def take(self, rng: np.random.Generator) -> np.ndarray | None:
        """Which of the assigned keys each row with a key gets (None: keep them as assigned)."""
        if not self.usable or self.mode in (None, "none"):
            return None
        want = np.concatenate(self.parts)
        self.parts = []
        if self.mode == "category":
            return _match_codes(want, self.have, self.n_codes, rng)
        have = np.zeros(len(self.position))  # the assigned parents' summed scores, in the order add() scaled them
        for feature, mean, sd in self.scales:
            have += np.nan_to_num((self._parent_values(feature) - mean) / sd)
        scores = [want, have]
        del want, have  # _match_numbers lets each go once read
        return _match_numbers(scores, rng)


def plan_keys(model: RelationalModel, model_dir: Path, table: str, parents: Mapping[str, pd.DataFrame], n: int,
               rng: np.random.Generator, generator=None) -> tuple[dict[str, pd.Series], pd.DataFrame | None, int]:
    """Every key column of the table's n rows, and the parent features each row is conditioned on.

    `keys` holds each FK's values under `fk.child_column` (a composite FK's tuple codes under its joined name)
    and every real key column; an FK that shares columns with one assigned before it (results_raw's
    (series, baker) after its (series, episode)) picks among the parents that agree on them (_assign_within)."""
    tm, meta = model.tables[table], model.db_schema.tables[table]
    relations = [r for r in model.relations_of(table) if not r.fk.is_self_reference and not r.fk.deferred]
    keys: dict[str, pd.Series] = {}
    per_parent: dict[int, np.ndarray] = {}  # children each parent got, by relation index
    pk = meta.primary_key
    pk_fks = [r for r in relations if r.fk.child_column in pk]
    placed: dict[int, _Parents] = {id(r): _Parents(model, model_dir, r, parents[r.fk.parent_table]) for r in relations}
    rows = None
    if len(pk) >= 2 and len(pk_fks) == len(pk) == 2:
        # junction: group by the parent with fewer rows, then pick distinct partners within each group
        first, second = sorted(pk_fks, key=lambda r: len(parents[r.fk.parent_table]))
        first_values, _ = _assign(placed[id(first)], n, rng, shuffle=False)
        rows, partners, per_parent[id(second)] = _unique_within_groups(pd.factorize(first_values)[0], placed[id(second)], rng)
        keys[first.fk.child_column] = first_values.iloc[rows].reset_index(drop=True)
        per_parent[id(first)] = children_counts(first.fk, pd.DataFrame({first.fk.child_column: keys[first.fk.child_column]}),
                                                 placed[id(first)].frame).to_numpy()
        keys[second.fk.child_column] = pd.Series(partners, dtype=_nullable_dtype(placed[id(second)].keys))
        n = len(rows)
        relations = [r for r in relations if r not in (first, second)]
    keep = np.ones(n, dtype=bool)
    within: list[RelationStats] = []  # assigned among parents agreeing with earlier keys: not permuted afterwards
    for index, relation in enumerate(relations):
        columns = relation.fk.child_columns
        shared = [c for c in columns if c in keys]
        new = set(columns) - set(shared)
        # the FK completes the primary key: rows agreeing on the rest of it need distinct parents
        distinct = set(pk) <= set(keys) | new and bool(set(pk) & new) and bool(set(pk) - new)
        distinct_by = [c for c in pk if c not in new and c not in shared] if distinct else None
        if shared or distinct:
            keys[relation.fk.child_column], per_parent[id(relation)] = _assign_within(
                placed[id(relation)], keys, shared, distinct_by, keep, rng)
            within.append(relation)
        else:
            keys[relation.fk.child_column], per_parent[id(relation)] = _assign_planned(placed[id(relation)], n, rng,
                                                                                       shuffle=index > 0)
        _expand_key(relation, keys, placed[id(relation)].frame)
    if not keep.all():  # rows no parent combination could take (more rows of an episode than bakers of its series)
        keys = {c: v.take(np.flatnonzero(keep)) if isinstance(v, PlannedKey) else v[keep].reset_index(drop=True)
                for c, v in keys.items()}
        n = int(keep.sum())
        for relation in relations:
            per_parent[id(relation)] = _key_counts(relation.fk, keys[relation.fk.child_column], placed[id(relation)].frame)
    _joint_parents(generator, [r for r in relations if r not in within], keys, placed, per_parent, rng)
    for relation in relations:
        _expand_key(relation, keys, placed[id(relation)].frame)
    if children.fill_min_children(tm.rules, [r.fk for r in relations], keys, parents, pk, rng):
        n = len(keys[relations[0].fk.child_column])
        for relation in relations:
            per_parent[id(relation)] = _key_counts(relation.fk, keys[relation.fk.child_column], placed[id(relation)].frame)
    children.room_between_parents(tm.rules, [r.fk for r in relations], keys, parents, pk, rng)
    for column, stats in tm.key_stats.items():
        if stats.within and all(c in keys for c in stats.within):
            groups = pd.DataFrame({c: key_series(keys[c]) for c in stats.within})
            keys[column] = pd.Series(groups.groupby(stats.within, dropna=False, sort=False).cumcount().to_numpy()
                                     + stats.start, dtype="Int64")
        else:
            keys[column] = _generate_keys(stats, n, rng)
    for relation in model.relations_of(table):
        if relation.fk.deferred:  # filled once its parent table exists (fill_deferred_keys)
            for child_column, parent_column in zip(relation.fk.child_columns, relation.fk.parent_columns):
                if child_column not in keys:
                    parent_dtype = model.db_schema.tables[relation.fk.parent_table].columns[parent_column].dtype
                    keys[child_column] = pd.Series([pd.NA] * n, dtype="Int64" if "int" in parent_dtype.lower() else "string")
        elif relation.fk.is_self_reference:
            keys[relation.fk.child_column] = _self_reference(relation, key_series(keys[relation.fk.parent_column]), rng)
    joins = [(r, keys[r.fk.child_column], placed[id(r)].frame, per_parent[id(r)])
             for r in model.relations_of(table) if id(r) in placed and r.features]
    return keys, RowConditions(joins, n) if joins else None, n


def _key_counts(fk: ForeignKey, values: pd.Series | PlannedKey, parent: pd.DataFrame) -> np.ndarray:
    """Children per parent row of assigned FK values (tuple codes for a composite FK)."""
    if isinstance(values, PlannedKey):
        return np.bincount(values.positions[values.positions >= 0], minlength=len(parent))
    per_parent = comparable_values(values.dropna()).value_counts()
    return per_parent.reindex(parent_keys(fk, parent).to_numpy(), fill_value=0).to_numpy()


def _expand_key(relation: RelationStats, keys: dict[str, pd.Series], parent: pd.DataFrame) -> None:
    """A composite FK's tuple codes into its child columns: each row takes the parent row's key values."""
    fk = relation.fk
    if not fk.composite:
        return
    position = key_positions(parent_keys(fk, parent), comparable_values(keys[fk.child_column]))
    for child_column, parent_column in zip(fk.child_columns, fk.parent_columns):
        values = parent[parent_column].reset_index(drop=True)
        expanded = values.reindex(np.where(position >= 0, position, -1)).reset_index(drop=True)
        expanded[position < 0] = pd.NA
        keys[child_column] = expanded.astype(_nullable_dtype(values))


def _assign_within(parents: _Parents, keys: dict[str, pd.Series], shared: list[str], distinct_by: list[str] | None,
                   keep: np.ndarray, rng: np.random.Generator) -> tuple[pd.Series, np.ndarray]:
    """FK values for rows whose `shared` key columns are already set: each row's parent is drawn, weighted by the
    learned popularity, among the parent rows whose paired columns hold the same values, and distinct among rows
    that agree on `distinct_by` (the rest of a primary key this FK completes). Rows with no parent left to take
    are cleared from `keep` (dropped), or get a null key where the FK is nullable."""
    relation, frame = parents.relation, parents.frame
    fk = relation.fk
    n = len(keep)
    weights = parents.weights(rng) + 1e-3
    paired = [fk.parent_columns[fk.child_columns.index(c)] for c in shared]
    parent_group = key_values(frame, paired).to_numpy() if paired else np.zeros(len(frame), dtype=object)
    rows_frame = pd.DataFrame({c: key_series(keys[c]) for c in shared + (distinct_by or [])}, index=range(n))
    child_group = key_values(rows_frame, shared) if shared else pd.Series(np.zeros(n, dtype=object))
    wanted = keep & child_group.notna().to_numpy()
    if relation.null_share > 0:
        wanted &= rng.random(n) >= relation.null_share
    candidates = pd.Series(np.arange(len(frame))).groupby(pd.Series(parent_group, dtype=object)).indices \
        if len(frame) else {}
    if distinct_by is None:
        subgroup = None
    else:
        subgroup = key_values(rows_frame, distinct_by).to_numpy() if distinct_by else np.zeros(n, dtype=object)
    position = np.full(n, -1)
    wanted_rows = np.flatnonzero(wanted)
    for group, rows in pd.Series(wanted_rows).groupby(child_group.to_numpy()[wanted_rows]).groups.items():
        rows = wanted_rows[np.asarray(rows)]
        pool = candidates.get(group)
        if pool is None or not len(pool):
            continue
        if subgroup is None:
            p = weights[pool] / weights[pool].sum()
            picked = rng.choice(len(pool), size=len(rows), p=p)
            # rows may share a parent here: any row can move to a parent short of its fewest children
            picked = children.cover(np.arange(len(rows)), picked, len(pool), relation.min_children, rng)
            position[rows] = pool[picked]
            continue
        for _, members in pd.Series(rows).groupby(subgroup[rows]).groups.items():
            members = rng.permutation(rows[np.asarray(members)])
            take = min(len(members), len(pool))
            position[members[:take]] = pool[_weighted_distinct(weights[pool], take, rng)]
        placed_rows = rows[position[rows] >= 0]
        if relation.min_children > 0 and len(placed_rows):
            # every parent of the group keeps its fewest children (each baker of a series has results), taking rows
            # from parents above it in subgroups it is not in yet
            local = pd.Index(pool).get_indexer(position[placed_rows])
            labels = pd.factorize(pd.Series(subgroup[placed_rows], dtype=object))[0]
            position[placed_rows] = pool[children.cover(labels, local, len(pool), relation.min_children, rng)]
    missing = wanted & (position < 0)
    if not fk.nullable:
        keep &= ~missing
    values = pd.Series([pd.NA] * n, dtype=_nullable_dtype(parents.keys))
    present = position >= 0
    values[present] = parents.keys.to_numpy()[position[present]]
    return values, np.bincount(position[present], minlength=len(frame))


def deferred_relations(model: RelationalModel, parent_table: str) -> list[RelationStats]:
    """FKs that close a cycle and point at `parent_table`: filled once it is generated."""
    return [r for r in model.relations if r.fk.deferred and r.fk.parent_table == parent_table]


def fill_deferred_keys(model: RelationalModel, model_dir: Path, relation: RelationStats, child: pd.DataFrame,
                       parent: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """The post-pass of a cycle broken at a nullable FK: its values, drawn from the now generated parent table
    with the learned null share and children-per-parent distribution."""
    rng = np.random.default_rng([seed, len(model.db_schema.generation_order) + model.relations.index(relation)])
    placed = _Parents(model, model_dir, relation, parent)
    values, _ = _assign(placed, len(child), rng, shuffle=True)
    keys = {relation.fk.child_column: values.reset_index(drop=True)}
    _expand_key(relation, keys, placed.frame)
    out = child.copy()
    for child_column, parent_column in zip(relation.fk.child_columns, relation.fk.parent_columns):
        out[child_column] = keys[child_column].to_numpy()
        out[child_column] = out[child_column].astype(_nullable_dtype(parent[parent_column]))
    return out
