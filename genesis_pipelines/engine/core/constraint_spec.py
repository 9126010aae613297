"""Pydantic models of the `constraints:` list of a dataset spec, and the check of them against a schema
(enforcement lives in synthesis/constraints.py).

Kept apart from constraints.py so spec.py can import them without pulling in the schema and generators.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from genesis_pipelines.engine.core.errors import SchemaError

if TYPE_CHECKING:
    from genesis_pipelines.engine.core.schema import DatasetSchema

_NUMERIC = ("numeric", "integer")
_ORDERED = ("numeric", "integer", "datetime")
_QUOTED = re.compile(r"`([^`]+)`")  # pandas' backtick quoting: `education-num`, `Unit Price`

# Python AST nodes a row predicate may use: comparisons, boolean / arithmetic operators, names and literals.
# No calls, attributes, subscripts or lambdas, so pandas' eval can run nothing but column arithmetic.
_SAFE_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name, ast.Load,
    ast.Constant, ast.List, ast.Tuple, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
    ast.BitAnd, ast.BitOr, ast.Not, ast.USub, ast.UAdd, ast.Invert, ast.Eq, ast.NotEq, ast.Lt, ast.LtE,
    ast.Gt, ast.GtE, ast.In, ast.NotIn,
)


def predicate_columns(expression: str) -> list[str]:
    """Column names an expression reads; ValueError when it uses anything beyond safe column arithmetic.

    A name that is not a Python identifier is written in backticks, as pandas' eval reads it:
    `` `education-num` >= 1 ``, `` `Unit Price` <= `List Price` ``.
    """
    quoted: dict[str, str] = {}  # placeholder identifier -> the backticked name it stands for

    def placeholder(match: re.Match) -> str:
        name = f"__quoted_{len(quoted)}__"
        quoted[name] = match.group(1)
        return f" {name} "

    if expression.count("`") % 2:
        raise ValueError("expression has an unmatched backtick")
    try:
        tree = ast.parse(_QUOTED.sub(placeholder, expression).strip(), mode="eval")
    except SyntaxError:
        raise ValueError("expression is not a valid row predicate (syntax error)") from None
    names: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, _SAFE_NODES):
            raise ValueError(f"expression may only compare and combine columns and literals; {type(node).__name__} is not allowed")
        if isinstance(node, ast.Name) and node.id not in ("True", "False"):
            name = quoted.get(node.id, node.id)
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError("expression must name at least one column")
    return names


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str

    @property
    def columns_used(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def label(self) -> str:
        return f"{self.kind}({self.table}: {', '.join(self.columns_used)})"


def _column_name(value: str) -> str:
    """Any column name the source has (dashes, spaces, accents); only empty names and backticks are refused."""
    if not value.strip() or "`" in value:
        raise ValueError("a column name in a constraint must be non-empty and hold no backtick")
    return value


ColumnName = Annotated[str, AfterValidator(_column_name)]


class PositiveConstraint(_Rule):
    """column > 0 (or >= 0 with strict: false)."""

    kind: Literal["positive"]
    column: ColumnName
    strict: bool = True


    @property
    def columns_used(self) -> list[str]:
        return [self.column]


class RangeConstraint(_Rule):
    """low <= column <= high (strict: low < column < high); either bound may be left out."""

    kind: Literal["range"]
    column: ColumnName
    low: float | None = None
    high: float | None = None
    strict: bool = False


    @model_validator(mode="after")
    def _has_bound(self) -> RangeConstraint:
        if self.low is None and self.high is None:
            raise ValueError("a range constraint needs low, high or both")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError("range constraint: low is above high")
        return self

    @property
    def columns_used(self) -> list[str]:
        return [self.column]


class UniqueConstraint(_Rule):
    """No two sampled rows share the values of these columns."""

    kind: Literal["unique"]
    columns: list[ColumnName] = Field(min_length=1)


    @property
    def columns_used(self) -> list[str]:
        return list(self.columns)


class FixedCombinationsConstraint(_Rule):
    """Only value combinations of these columns that occur in the training data are sampled."""

    kind: Literal["fixed_combinations"]
    columns: list[ColumnName] = Field(min_length=2)


    @property
    def columns_used(self) -> list[str]:
        return list(self.columns)


class InequalityConstraint(_Rule):
    """low_column <= high_column (strict: <) on every row where both are present."""

    kind: Literal["inequality"]
    low_column: ColumnName
    high_column: ColumnName
    strict: bool = False


    @property
    def columns_used(self) -> list[str]:
        return [self.low_column, self.high_column]


class PredicateConstraint(_Rule):
    """A row predicate in pandas' expression syntax, e.g. `(discount <= price) | (price == 0)`; never Python eval."""

    kind: Literal["predicate"]
    expression: str = Field(min_length=1, max_length=2000)

    @field_validator("expression")
    @classmethod
    def _safe(cls, value: str) -> str:
        predicate_columns(value)
        return value

    @property
    def columns_used(self) -> list[str]:
        return predicate_columns(self.expression)


ConstraintSpec = Annotated[
    PositiveConstraint | RangeConstraint | UniqueConstraint | FixedCombinationsConstraint | InequalityConstraint | PredicateConstraint,
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------- checking the spec against the data


def check_columns(constraints: list[ConstraintSpec], schema: DatasetSchema) -> None:
    """Every constraint names existing, non-key columns of a fitting type; SchemaError naming table and column."""
    for rule in constraints:
        if rule.table not in schema.tables:
            raise SchemaError(f"constraint {rule.kind} names table {rule.table!r}, which is not a source table")
        meta = schema.tables[rule.table]
        keys = schema.key_columns(rule.table)
        for column in rule.columns_used:
            if column not in meta.columns:
                raise SchemaError(f"constraint {rule.kind} on table {rule.table!r}: column {column!r} does not exist")
            if column in keys:
                raise SchemaError(f"constraint {rule.kind} on table {rule.table!r}: column {column!r} is a key column; "
                                  "keys are regenerated by the relational layer and cannot carry constraints")
            sdtype = meta.columns[column].sdtype
            if isinstance(rule, (PositiveConstraint, RangeConstraint)) and sdtype not in _NUMERIC:
                raise SchemaError(f"constraint {rule.kind} on table {rule.table!r}: column {column!r} is {sdtype}, "
                                  "not numeric")
            if isinstance(rule, InequalityConstraint) and sdtype not in _ORDERED:
                raise SchemaError(f"constraint inequality on table {rule.table!r}: column {column!r} is {sdtype}, "
                                  "not numeric or datetime")
        if isinstance(rule, InequalityConstraint):
            kinds = {meta.columns[c].sdtype == "datetime" for c in rule.columns_used}
            if len(kinds) > 1:
                raise SchemaError(f"constraint inequality on table {rule.table!r}: columns {rule.low_column!r} and "
                                  f"{rule.high_column!r} must both be datetimes or both numbers")
