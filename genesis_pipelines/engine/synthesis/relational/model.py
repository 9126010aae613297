"""The relational model's stored form: per-table models, key statistics and the FK relations with their
children-per-parent models (model.json)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from genesis_pipelines.engine.analysis.rules.core import Dependency, Rule
from genesis_pipelines.engine.core.schema import DatasetSchema, ForeignKey
from genesis_pipelines.engine.privacy import pii as pii_engine
from genesis_pipelines.engine.synthesis.generators.base import PARENT_FEATURE_PREFIX

FORMAT = "genesis.relational/1"


CHUNK_ROWS = 100_000  # rows yielded at once: bounds memory on big child tables
BLOCK_ROWS = 100_000  # rows drawn with one random stream: the output depends on it, never on CHUNK_ROWS


EMPTY_METHOD = "empty"  # a table with no real rows: nothing is fitted, it is generated empty with its columns


FEATURE_PREFIX = PARENT_FEATURE_PREFIX  # the columns a child's model gets from its parents


COUNT_COLUMN = "__children"


class KeyStats(BaseModel):
    """How to regenerate a primary-key column: integers from a start, or strings from character templates."""

    kind: str  # "integer" | "string"
    start: int = 1
    templates: list[str] = Field(default_factory=list)
    template_probs: list[float] = Field(default_factory=list)
    # numbered within the other columns of a composite key (an episode's number within its series): start, start+1, ..
    within: list[str] = Field(default_factory=list)


class ParentFeature(BaseModel):
    """One parent column (or derived value) joined onto child rows, so the child model learns cross-table trends."""

    name: str  # column name in the child's training frame
    column: str  # parent column; "" for the children count
    kind: str  # "value" | "onehot" | "count"
    category: str | None = None  # for onehot: the category indicated


class RelationStats(BaseModel):
    fk: ForeignKey
    null_share: float
    counts: list[int]  # children per parent: distinct values ...
    probs: list[float]  # ... and their shares, parents with zero children included
    unique: bool = False  # one-to-one: each parent has at most one child
    features: list[ParentFeature] = Field(default_factory=list)  # fed to the child model and the count model
    count_model: bool = False  # children per parent given the parent's features, saved under relations/<index>
    depth_probs: list[float] = Field(default_factory=list)  # self references: share of rows per depth, roots first
    inherited: dict[str, tuple[str, float]] = Field(default_factory=dict)  # child column -> (parent column, share equal)
    # a lookup parent (names unique per row, reproduced as such): children per name, e.g. tracks per media type
    count_by_value: dict[str, float] = Field(default_factory=dict)
    count_key: str = ""
    # child columns with one value per parent (an invoice's billing city is its customer's): drawn once per parent
    constant: list[str] = Field(default_factory=list)
    min_children: int = 0  # fewest children a real parent has (a min_children rule): no generated parent gets fewer

    @property
    def mean(self) -> float:
        return float(np.dot(self.counts, self.probs))


class TableModel(BaseModel):
    table: str
    method: str
    row_count: int
    train_rows: int
    holdout_rows: int
    columns: list[str]  # output column order (dropped PII columns removed)
    key_stats: dict[str, KeyStats]
    unique_columns: list[str] = Field(default_factory=list)  # categories unique per row in the real table (names of genres)
    dependencies: dict[str, Dependency] = Field(default_factory=dict)  # column -> the column that determines it
    rules: list[Rule] = Field(default_factory=list)  # the table's rules kept at generation (analysis/rules/)
    describe: dict = Field(default_factory=dict)


class RelationalModel(BaseModel):
    format: str = FORMAT
    dataset: str
    version: str
    created_at: str
    source_fingerprint: str
    seed: int
    db_schema: DatasetSchema
    tables: dict[str, TableModel]
    relations: list[RelationStats]
    pii: list[pii_engine.PiiFinding]
    pii_guard_salt: str
    # lineage (optional, so models saved before these fields still load)
    code_version: str = ""
    settings: dict = Field(default_factory=dict)  # generator section, seed, scale, holdout fraction
    metrics: dict = Field(default_factory=dict)  # training seconds, rows per table

    def relations_of(self, table: str) -> list[RelationStats]:
        return [r for r in self.relations if r.fk.child_table == table]
