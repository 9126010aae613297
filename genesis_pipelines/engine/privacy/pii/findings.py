"""What a PII scan finds: kinds, default policies, and the finding of one column (names, kinds, counts, rates;
never a value)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from genesis_pipelines.engine.core.spec import PII_POLICIES

PII_KINDS = (
    "person_name", "first_name", "last_name", "email", "phone", "street_address", "postal_code",
    "ip_address", "card_number", "national_id", "birth_date", "iban", "city", "free_text_pii", "company", "derived_pii",
)


DECLARED_KIND = "declared"  # a column the spec names as PII that no detector recognised


METHODS = ("name", "values", "name+values", "spec")


SAMPLE_SIZE = 2000  # value checks look at a deterministic sample this large, at most


DEFAULT_POLICY = {kind: "fake" for kind in PII_KINDS} | {"city": "keep", DECLARED_KIND: "fake"}


# Kinds that make a row a person's record (a bare name mention, a city or a postcode does not: a track's composer).
IDENTIFYING_KINDS = frozenset({"first_name", "last_name", "email", "phone", "street_address", "national_id",
                               "birth_date", "iban", "card_number"})


class DerivedSource(BaseModel):
    """A PII column whose row values occur inside a derived column; in a parent table when `child_key` is set."""

    model_config = ConfigDict(frozen=True)

    table: str
    column: str
    kind: str
    child_key: str | None = None  # the derived table's FK column that points at the parent row
    parent_key: str | None = None


class PiiFinding(BaseModel):
    """One column judged to hold PII; aggregates only, so it is safe to log and to show as metadata."""

    model_config = ConfigDict(frozen=True)

    table: str
    column: str
    kind: str
    method: str  # "name", "values", "name+values" or "spec"
    confidence: float = Field(ge=0, le=1)
    policy: str
    match_rate: float = Field(default=0.0, ge=0, le=1)
    policy_from_spec: bool = False
    consistent: bool = False  # `fake` through keyed tokens: one real value -> one fake everywhere (see module doc)
    # derived_pii: the PII columns whose values it embeds (a path built from the surname); `mentions`: it also
    # names real people of the dataset (a note). Learned as a template, rendered with the row's fakes.
    derived_from: tuple[DerivedSource, ...] = ()
    mentions: bool = False

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in PII_KINDS and value != DECLARED_KIND:
            raise ValueError(f"unknown PII kind {value!r}")
        return value

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in METHODS:
            raise ValueError(f"unknown detection method {value!r}")
        return value

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in PII_POLICIES:
            raise ValueError(f"unknown PII policy {value!r}")
        return value

    @property
    def ref(self) -> str:
        return f"{self.table}.{self.column}"


def person_tables(findings: list[PiiFinding]) -> set[str]:
    """Tables whose rows are people's records: they hold an identifying kind of PII."""
    return {f.table for f in findings if f.kind in IDENTIFYING_KINDS}
