"""Pydantic models of a dataset spec: the one YAML file that declares a dataset."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genesis_pipelines.engine.errors import SpecError

SEMANTIC_TYPES = ("id", "numeric", "integer", "categorical", "boolean", "datetime", "text")
PII_POLICIES = ("drop", "fake", "hash", "mask", "keep")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """Where the real tables live; `path` is relative to the spec file unless absolute."""

    kind: Literal["csv_folder", "parquet_folder", "duckdb"] = "csv_folder"
    path: str = "data"
    schema_name: str | None = Field(default=None, description="DuckDB schema to read (duckdb sources)")


class TableSpec(_Strict):
    primary_key: str | list[str] | None = None
    file: str | None = Field(default=None, description="file name inside the source folder, if not <table>.csv/.parquet")

    @property
    def primary_key_columns(self) -> list[str]:
        if self.primary_key is None:
            return []
        return [self.primary_key] if isinstance(self.primary_key, str) else list(self.primary_key)


def _split_ref(ref: str, field: str) -> tuple[str, str]:
    if not isinstance(ref, str) or ref.count(".") != 1:
        raise ValueError(f"{field} must look like 'Table.Column', got {ref!r}")
    table, column = ref.split(".")
    if not table or not column:
        raise ValueError(f"{field} must look like 'Table.Column', got {ref!r}")
    return table, column


class ForeignKeySpec(_Strict):
    child: str
    parent: str

    @field_validator("child", "parent")
    @classmethod
    def _is_ref(cls, value: str, info) -> str:
        _split_ref(value, info.field_name)
        return value

    @property
    def child_ref(self) -> tuple[str, str]:
        return _split_ref(self.child, "child")

    @property
    def parent_ref(self) -> tuple[str, str]:
        return _split_ref(self.parent, "parent")


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
    pii_locale: str = "en_US"
    generator: GeneratorSpec = GeneratorSpec()
    scale: float = Field(default=1.0, gt=0, le=10)
    holdout_fraction: float = Field(default=0.2, ge=0, lt=0.9)
    seed: int = 0
    thresholds: ThresholdSpec = ThresholdSpec()
    schedule: str | None = Field(default=None, description="cron string for periodic regeneration")

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
        for ref, sdtype in value.items():
            _split_ref(ref, "column_types key")
            if sdtype not in SEMANTIC_TYPES:
                raise ValueError(f"column_types[{ref}]: {sdtype!r} is not one of {', '.join(SEMANTIC_TYPES)}")
        return value

    @field_validator("pii")
    @classmethod
    def _valid_policies(cls, value: dict[str, str]) -> dict[str, str]:
        for ref, policy in value.items():
            _split_ref(ref, "pii key")
            if policy not in PII_POLICIES:
                raise ValueError(f"pii[{ref}]: {policy!r} is not one of {', '.join(PII_POLICIES)}")
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"schedule {value!r} is not a five-field cron string")
        return value

    @model_validator(mode="after")
    def _refs_name_declared_tables(self) -> "DatasetSpec":
        if not self.tables:
            return self
        refs = [("column_types", r) for r in self.column_types] + [("pii", r) for r in self.pii]
        for fk in self.foreign_keys or []:
            refs += [("foreign_keys.child", fk.child), ("foreign_keys.parent", fk.parent)]
        for field, ref in refs:
            table = ref.split(".")[0]
            if table not in self.tables:
                raise ValueError(f"{field}: table {table!r} in {ref!r} is not declared under tables")
        for table in self.generator.tables:
            if table not in self.tables:
                raise ValueError(f"generator.tables: table {table!r} is not declared under tables")
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
    return spec.model_copy(update={"spec_dir": spec_dir})


def load_spec(path: str | Path) -> DatasetSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"dataset spec {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc.__class__.__name__} at {getattr(exc, 'problem_mark', '?')})") from None
    return parse_spec(data, origin=str(path), spec_dir=path.parent.resolve())


def discover_specs(root: str | Path) -> list[Path]:
    """Every `dataset.yaml` one level below `root` (resources/datasets/<name>/dataset.yaml)."""
    root = Path(root)
    return sorted(root.glob("*/dataset.yaml")) if root.is_dir() else []
