"""Pydantic models of a dataset spec: the one YAML file that declares a dataset."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genesis_pipelines.engine.core.constraint_spec import ConstraintSpec
from genesis_pipelines.engine.core.errors import SpecError

SEMANTIC_TYPES = ("id", "numeric", "integer", "categorical", "boolean", "datetime", "text", "code", "name")
# string columns synthesized outside the statistical models: prose (text), identifiers and codes (code, shape-preserving),
# entity names that are not personal data (name: recombined real tokens)
STRING_KINDS = ("text", "code", "name")
PII_POLICIES = ("drop", "fake", "hash", "mask", "keep")
MAX_SCALE = 1000  # a load-test database 1,000 times the source; the disk check guards what a scale really writes
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchSpec(_Strict):
    """The new-data sensor: how often it looks, which marker means "upload complete", what a change refreshes."""

    enabled: bool = True
    interval_seconds: int = Field(default=60, ge=5)
    marker: str = Field(default="_SUCCESS", description="file whose presence means the files beside it are complete")
    on_change: Literal["all", "drift"] = Field(
        default="drift",
        description="drift: reload and measure drift (the drift sensor retrains above the threshold); all: reload and "
                    "retrain everything downstream at once (drift is then measured against the new model, so reads ~0)")


class SourceSpec(_Strict):
    """Where the real tables live; `path` is relative to the spec file unless absolute, or `s3://bucket/prefix`."""

    kind: Literal["csv_folder", "parquet_folder", "duckdb", "s3_csv", "s3_parquet"] = "csv_folder"
    path: str = "data"
    schema_name: str | None = Field(default=None, description="DuckDB schema to read (duckdb sources)")
    bucket: str | None = Field(default=None, description="S3 bucket (s3_csv / s3_parquet sources)")
    prefix: str = Field(default="", description="S3 key prefix of the table files")
    allowed_roots: list[str] = Field(
        default_factory=list, description="folders outside the dataset folder that `path` may point into (relative "
                                          "to the spec file, or absolute); also GENESIS_SOURCE_ROOTS, separated by "
                                          "the OS path separator")
    watch: WatchSpec = WatchSpec()

    @model_validator(mode="before")
    @classmethod
    def _s3_path(cls, data):
        """`path: s3://bucket/prefix` is shorthand for an S3 source of the folder's file kind."""
        if isinstance(data, dict) and str(data.get("path", "")).startswith("s3://"):
            bucket, _, prefix = data["path"][5:].partition("/")
            kind = {"csv_folder": "s3_csv", "parquet_folder": "s3_parquet"}.get(data.get("kind", "csv_folder"), data.get("kind"))
            data = {**data, "kind": kind, "bucket": bucket, "prefix": prefix}
        return data

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> SourceSpec:
        if self.is_s3 and not self.bucket:
            raise ValueError(f"source kind {self.kind} needs a bucket (or path: s3://bucket/prefix)")
        return self

    @property
    def is_s3(self) -> bool:
        return self.kind.startswith("s3_")

    @property
    def suffix(self) -> str:
        return ".parquet" if self.kind in ("parquet_folder", "s3_parquet") else ".csv"


class TableSpec(_Strict):
    primary_key: str | list[str] | None = None
    file: str | None = Field(default=None, description="file name inside the source folder, if not <table>.csv/.parquet")
    reference: bool | None = Field(default=None, description=(
        "reference data (genres, languages, airlines): kept as it is and its children generated against it; "
        "unset: found from the data (engine/analysis/reference_tables.py), false: always synthesized"))

    @field_validator("file")
    @classmethod
    def _inside_source(cls, value: str | None) -> str | None:
        """A file of the source folder: no absolute path and no `..` that would read elsewhere on the machine."""
        if value is not None and (Path(value).is_absolute() or ".." in Path(value).parts or not value.strip()):
            raise ValueError("must be a file inside the source folder (no absolute path, no '..')")
        return value

    @property
    def primary_key_columns(self) -> list[str]:
        if self.primary_key is None:
            return []
        return [self.primary_key] if isinstance(self.primary_key, str) else list(self.primary_key)


_REF_PART = re.compile(r'`([^`]+)`|"([^"]+)"|([^.`"]+)')


def split_ref(ref: str, field: str = "reference") -> tuple[str, str]:
    """`Table.Column` as (table, column). A name holding a dot or a quote is written in backticks (or double
    quotes): `` `dbo.Orders`.Total ``, `` Orders.`unit.price` ``; in YAML quote the whole reference."""
    parts, at = [], 0
    text = ref if isinstance(ref, str) else ""
    while text and at <= len(text):
        match = _REF_PART.match(text, at)
        if match is None:
            break
        parts.append(next(g for g in match.groups() if g is not None))
        at = match.end()
        if at == len(text) or text[at] != ".":
            break
        at += 1
    if len(parts) != 2 or at != len(text) or not all(p.strip() for p in parts):
        raise ValueError(f"{field} must look like 'Table.Column' (a name with a dot in backticks: "
                         f"'`dbo.Orders`.Total'), got {ref!r}")
    return parts[0], parts[1]


def column_ref(table: str, column: str) -> str:
    """The one spelling of a reference: plain `Table.Column`, a part holding a dot or quote in backticks."""
    def part(name: str) -> str:
        return f"`{name}`" if any(ch in name for ch in '.`"') else name
    return f"{part(table)}.{part(column)}"


def _canonical(ref: str, field: str) -> str:
    return column_ref(*split_ref(ref, field))


def _canonical_mapping(value: dict[str, str], field: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """A `'Table.Column' -> choice` mapping with each key in its one spelling and each choice one of `allowed`."""
    out = {}
    for ref, choice in value.items():
        key = _canonical(ref, f"{field} key")
        if choice not in allowed:
            raise ValueError(f"{field}[{ref}]: {choice!r} is not one of {', '.join(allowed)}")
        out[key] = choice
    return out


def _refs(values: list[str], field: str) -> list[str]:
    """Every entry looks like 'Table.Column' (else a ValueError naming the field), in its one spelling."""
    return [_canonical(ref, field) for ref in values]


class ForeignKeySpec(_Strict):
    """`child: Table.col -> parent: Parent.key`, or a composite key as equal-length lists of refs, all of one table
    per side: `{child: [T.a, T.b], parent: [P.a, P.b]}`."""

    child: str | list[str]
    parent: str | list[str]

    @field_validator("child", "parent")
    @classmethod
    def _is_ref(cls, value: str | list[str], info) -> str | list[str]:
        refs = [value] if isinstance(value, str) else value
        if not refs:
            raise ValueError(f"{info.field_name} lists no columns")
        tables = {split_ref(ref, info.field_name)[0] for ref in refs}
        if len(tables) > 1:
            raise ValueError(f"{info.field_name} names columns of several tables ({', '.join(sorted(tables))}): one table per side")
        if len(set(refs)) < len(refs):
            raise ValueError(f"{info.field_name} repeats a column")
        return value

    @model_validator(mode="after")
    def _same_length(self) -> ForeignKeySpec:
        if len(self.child_refs) != len(self.parent_refs):
            raise ValueError(f"foreign key {self.label}: child has {len(self.child_refs)} columns, parent "
                             f"{len(self.parent_refs)}; a composite key pairs them one to one")
        return self

    @property
    def child_refs(self) -> list[tuple[str, str]]:
        return [split_ref(ref, "child") for ref in ([self.child] if isinstance(self.child, str) else self.child)]

    @property
    def parent_refs(self) -> list[tuple[str, str]]:
        return [split_ref(ref, "parent") for ref in ([self.parent] if isinstance(self.parent, str) else self.parent)]

    @property
    def child_table(self) -> str:
        return self.child_refs[0][0]

    @property
    def parent_table(self) -> str:
        return self.parent_refs[0][0]

    @property
    def child_columns(self) -> list[str]:
        return [column for _, column in self.child_refs]

    @property
    def parent_columns(self) -> list[str]:
        return [column for _, column in self.parent_refs]

    @property
    def child_ref(self) -> tuple[str, str]:
        """(table, column); a composite key's columns joined by '+', as schema.ForeignKey.child_column names them."""
        return self.child_table, "+".join(self.child_columns)

    @property
    def parent_ref(self) -> tuple[str, str]:
        return self.parent_table, "+".join(self.parent_columns)

    @property
    def label(self) -> str:
        if len(self.child_columns) == 1:
            return f"{self.child_table}.{self.child_columns[0]} -> {self.parent_table}.{self.parent_columns[0]}"
        return f"{self.child_table}.({', '.join(self.child_columns)}) -> {self.parent_table}.({', '.join(self.parent_columns)})"

    @classmethod
    def from_column_entries(cls, entries: list[dict]) -> list[ForeignKeySpec]:
        """FKs from one-column entries (`child_table`, `child_column`, `parent_table`, `parent_column`, as a schema
        dump lists them): consecutive entries of the same child and parent tables, each naming a new parent column,
        are ONE composite key (results_raw.series + .episode -> episodes.(series, episode)); an entry naming a parent
        column again (flights.origin and .dest -> airports.faa) starts a new key."""
        groups: list[list[dict]] = []
        for entry in entries:
            last = groups[-1] if groups else None
            if (last and (last[0]["child_table"], last[0]["parent_table"]) == (entry["child_table"], entry["parent_table"])
                    and entry["parent_column"] not in [e["parent_column"] for e in last]
                    and entry["child_column"] not in [e["child_column"] for e in last]):
                last.append(entry)
            else:
                groups.append([entry])
        out = []
        for group in groups:
            child = [f"{e['child_table']}.{e['child_column']}" for e in group]
            parent = [f"{e['parent_table']}.{e['parent_column']}" for e in group]
            out.append(cls(child=child[0] if len(child) == 1 else child, parent=parent[0] if len(parent) == 1 else parent))
        return out


class GeneratorSpec(_Strict):
    """Generator method per table; `default` applies to tables not named in `tables`."""

    default: str = "gaussian_copula"
    tables: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, dict] = Field(default_factory=dict, description="method name -> keyword settings")

    def method_for(self, table: str) -> str:
        return self.tables.get(table, self.default)


class ThresholdSpec(_Strict):
    quality_min: float = Field(default=70.0, ge=0, le=100)
    exact_copies_max: float = Field(default=0.0, ge=0, description="unique real records copied, max count")
    dcr_share_max: float = Field(default=0.6, ge=0, le=1, description="share of synthetic rows closer to train than holdout")
    mia_auc_max: float = Field(default=0.6, ge=0.5, le=1)
    singling_out_risk_max: float | None = Field(default=None, ge=0, le=1, description="gate only when set")
    linkability_risk_max: float | None = Field(default=None, ge=0, le=1, description="gate only when set")


class UtilitySpec(_Strict):
    """What the synthetic data should be useful for: the label that TSTR/TRTS models predict."""

    target: str | None = Field(default=None, description="'Table.Column' to predict; unset: the likeliest label column, if any")
    public_columns: list[str] = Field(
        default_factory=list, description="'Table.Column' whose category labels may appear in report plots (others: by rank)")

    @field_validator("target")
    @classmethod
    def _target_is_ref(cls, value: str | None) -> str | None:
        return _canonical(value, "utility.target") if value is not None else None

    @field_validator("public_columns")
    @classmethod
    def _public_are_refs(cls, value: list[str]) -> list[str]:
        return _refs(value, "utility.public_columns entry")


class DriftSpec(_Strict):
    """Above `psi_threshold` (max PSI over columns and children-per-parent), the drift sensor retrains."""

    psi_threshold: float = Field(default=0.2, gt=0, validation_alias=AliasChoices("psi_threshold", "threshold"))
    bins: int = Field(default=10, ge=2, le=100, description="quantile bins of the training data for numeric PSI")


class PrivacyBudgetSpec(_Strict):
    """Cumulative (epsilon, delta) all DP models of the dataset may spend (privacy_ledger.py): once a new model would
    exceed it, the model step refuses to train and the drift sensor skips."""

    epsilon: float = Field(gt=0, description="total epsilon over every DP model trained on the dataset's people")
    delta: float | None = Field(default=None, gt=0, lt=1, description="total delta; unset: not limited")


RULE_KINDS = ("order", "parent_order", "parent_equal", "dependency", "min_children")


class RulesSpec(_Strict):
    """The data's own rules (orderings, parent values, dependencies, children minimums; see analysis/rules/): found in the
    real tables and kept by the synthetic ones, unless switched off, all or by rule id or kind."""

    enabled: bool = True
    disabled: list[str] = Field(default_factory=list, description="rule ids (as listed in the schema metadata) or kinds")

    @field_validator("disabled")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        for index, entry in enumerate(value):
            if entry.split(":", 1)[0] not in RULE_KINDS:
                raise ValueError(f"entry {index} is neither a rule kind ({', '.join(RULE_KINDS)}) nor a rule id "
                                 "starting with one")
        return value


class DatasetSpec(_Strict):
    name: str
    description: str = ""
    source: SourceSpec = SourceSpec()
    tables: dict[str, TableSpec] = Field(default_factory=dict)
    foreign_keys: list[ForeignKeySpec] | None = Field(
        default=None, description="declared FKs; when absent they are inferred from the data"
    )
    column_types: dict[str, str] = Field(default_factory=dict, description="'Table.Column' -> semantic type override")
    pii: dict[str, str] = Field(default_factory=dict, description="'Table.Column' -> policy override")
    null_values: list[str] = Field(
        default_factory=lambda: [""], description="CSV cells read as null; everything else (NA, N/A, null, None) is a value")
    pii_locale: str = "en_US"
    pii_leak_exempt: list[str] = Field(
        default_factory=list, description="'Table.Column' refs the no_pii_leak check skips (a value that is public by design)")
    pii_consistent_fake: bool = Field(
        default=False, description="fake PII through keyed tokens: one real value -> one fake in every table (needs GENESIS_HASH_KEY)")
    quasi_identifiers: dict[str, list[str]] = Field(
        default_factory=dict, description="table -> columns an attacker may know (age, zip, ...): k-anonymity, attribute inference")
    sensitive_columns: dict[str, list[str]] = Field(
        default_factory=dict, description="table -> columns an attacker wants to learn: attribute inference, l-diversity")
    generator: GeneratorSpec = GeneratorSpec()
    scale: float = Field(default=1.0, gt=0, le=MAX_SCALE,
                         description="synthetic rows per real row; generation first checks the disk can hold it")
    holdout_fraction: float = Field(default=0.2, ge=0, lt=0.9)
    holdout_by_parent: bool = Field(
        default=True, description="child tables follow the train/holdout side of a parent that holds people (a "
                                  "customer's invoices go with the customer), so no person straddles the split; "
                                  "false: every table split by row (see relational.split_tables)")
    seed: int = 0
    thresholds: ThresholdSpec = ThresholdSpec()
    utility: UtilitySpec = UtilitySpec()
    constraints: list[ConstraintSpec] = Field(
        default_factory=list, description="rules every sampled row obeys (positive, range, unique, ...); see constraints.py")
    rules: RulesSpec = RulesSpec()
    schedule: str | None = Field(default=None, description="cron string for periodic regeneration")
    drift: DriftSpec = DriftSpec()
    privacy_budget: PrivacyBudgetSpec | None = Field(
        default=None, description="cumulative DP budget {epsilon, delta} over all models (see privacy_ledger.py)")

    # where the spec file lives; set by load_spec, not part of the YAML
    spec_dir: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("name must be letters, digits and underscores, starting with a letter")
        return value

    @field_validator("column_types")
    @classmethod
    def _valid_types(cls, value: dict[str, str]) -> dict[str, str]:
        return _canonical_mapping(value, "column_types", SEMANTIC_TYPES)

    @field_validator("pii")
    @classmethod
    def _valid_policies(cls, value: dict[str, str]) -> dict[str, str]:
        return _canonical_mapping(value, "pii", PII_POLICIES)

    @field_validator("pii_leak_exempt")
    @classmethod
    def _valid_exempt_refs(cls, value: list[str]) -> list[str]:
        return _refs(value, "pii_leak_exempt entry")

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"schedule {value!r} is not a five-field cron string")
        return value

    @model_validator(mode="after")
    def _refs_name_declared_tables(self) -> DatasetSpec:
        if not self.tables:
            return self
        refs = [("column_types", r) for r in self.column_types] + [("pii", r) for r in self.pii]
        refs += [("pii_leak_exempt", r) for r in self.pii_leak_exempt]
        refs += [("utility.target", r) for r in [self.utility.target] if r] + [("utility.public_columns", r) for r in self.utility.public_columns]
        for fk in self.foreign_keys or []:
            refs += [("foreign_keys.child", column_ref(t, c)) for t, c in fk.child_refs]
            refs += [("foreign_keys.parent", column_ref(t, c)) for t, c in fk.parent_refs]
        for field, ref in refs:
            table = split_ref(ref, field)[0]
            if table not in self.tables:
                raise ValueError(f"{field}: table {table!r} in {ref!r} is not declared under tables")
        for field in ("quasi_identifiers", "sensitive_columns"):
            for table in getattr(self, field):
                if table not in self.tables:
                    raise ValueError(f"{field}: table {table!r} is not declared under tables")
        for table in self.generator.tables:
            if table not in self.tables:
                raise ValueError(f"generator.tables: table {table!r} is not declared under tables")
        for index, rule in enumerate(self.constraints):
            if rule.table not in self.tables:
                raise ValueError(f"constraints[{index}]: table {rule.table!r} is not declared under tables")
        return self

    @property
    def source_path(self) -> Path:
        path = Path(self.source.path)
        if not path.is_absolute() and self.spec_dir is not None:
            path = self.spec_dir / path
        return path


def parse_spec(data: dict, *, origin: str = "<spec>", spec_dir: Path | None = None) -> DatasetSpec:
    """Validate a spec mapping; a bad field gets a SpecError naming the field."""
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: a dataset spec must be a YAML mapping")
    try:
        spec = DatasetSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "(top level)"
            problems.append(f"field '{where}': {err['msg']}")
        raise SpecError(f"{origin}: invalid dataset spec; " + "; ".join(problems)) from None
    spec = spec.model_copy(update={"spec_dir": spec_dir})
    _check_source_inside(spec, origin)
    return spec


def _check_source_inside(spec: DatasetSpec, origin: str) -> None:
    """`source.path` must resolve inside the dataset's folder or an allowed root: a spec never reads elsewhere."""
    if spec.source.is_s3 or spec.spec_dir is None:
        return
    roots = [Path(spec.spec_dir)] + [Path(spec.spec_dir) / r for r in spec.source.allowed_roots]  # absolute stays
    roots += [Path(r) for r in os.environ.get("GENESIS_SOURCE_ROOTS", "").split(os.pathsep) if r.strip()]
    target = spec.source_path.resolve()
    if not any(target == root.resolve() or root.resolve() in target.parents for root in roots):
        raise SpecError(f"{origin}: invalid dataset spec; field 'source.path': it resolves outside the dataset folder; "
                        "keep the data beside the spec, or list the folder it is in under source.allowed_roots "
                        "(or GENESIS_SOURCE_ROOTS)")


def load_spec(path: str | Path) -> DatasetSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"dataset spec {path} does not exist")
    try:
        # libyaml's safe loader where PyYAML has it (several times faster: every code-location load reads every spec)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc.__class__.__name__} at {getattr(exc, 'problem_mark', '?')})") from None
    return parse_spec(data, origin=str(path), spec_dir=path.parent.resolve())


def discover_specs(root: str | Path) -> list[Path]:
    """Every `dataset.yaml` one level below `root` (resources/datasets/<name>/dataset.yaml)."""
    root = Path(root)
    return sorted(root.glob("*/dataset.yaml")) if root.is_dir() else []
