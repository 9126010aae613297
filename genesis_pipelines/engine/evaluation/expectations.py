"""Great Expectations suites derived from the real tables, validated on the synthetic ones.

A suite per table says what any release of that table must look like: its columns exist with the right kind of
dtype, numbers and dates stay within the real range, low-cardinality categories stay within the real value set,
columns that are (almost) never null stay so, the primary key is unique and not null, and (added at validation,
since it depends on the generated parent) every foreign key value exists in the synthetic parent.

The ranges and value sets are aggregates of the real data of the same kind the model already stores (bounds,
category frequencies). PII columns that are replaced (any policy but `keep`) and free text are left out, so a suite
holds no personal value. Suites are stored as `suite.to_json_dict()` JSON beside the model; validation results
are reduced to counts and expectation types, never the unexpected values GX collects.

great_expectations is imported lazily: it takes seconds, and only building and validating suites need it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from genesis_pipelines.engine.analysis.columns import to_float
from genesis_pipelines.engine.core.schema import DatasetSchema, TableMeta, key_values
from genesis_pipelines.engine.core.spec import STRING_KINDS

MAX_VALUE_SET = 20  # categorical columns with at most this many distinct values get a value-set expectation
NULL_TOLERANCE = 0.05  # the synthetic null rate may exceed the real one by this much
SUITE_FORMAT = "genesis.expectations/1"

# dtype families, so a synthetic Int64 column meets a real int64 one (the pipeline's dtypes vary by store)
# (GX names pandas extension dtypes by their class: Int64Dtype, StringDtype, ...)
_INTS = ([f"{p}int{b}" for p in ("", "u") for b in (8, 16, 32, 64)]
         + [f"{p}Int{b}{d}" for p in ("", "U") for b in (8, 16, 32, 64) for d in ("", "Dtype")])
_FLOATS = ["float16", "float32", "float64", "Float32", "Float64", "Float32Dtype", "Float64Dtype"]
_TEXT = ["object", "str", "string", "StringDtype", "category", "CategoricalDtype"]
_BOOLS = ["bool", "boolean", "BooleanDtype"]
_TYPES = {
    "integer": _INTS + _FLOATS,  # nullable integers may come back as floats from a store
    "numeric": _INTS + _FLOATS,
    "boolean": _BOOLS + ["object"],
    "datetime": [f"datetime64[{u}]" for u in ("s", "ms", "us", "ns")] + ["datetime64[us, UTC]", "datetime64[ns, UTC]",
                                                                        "DatetimeTZDtype"],
    "categorical": _TEXT + _INTS + _FLOATS + _BOOLS,
}


def _gx():
    import great_expectations as gx

    return gx


def new_context():
    """An ephemeral GX context without progress bars (they would flood the run's log)."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _scalar(value):
    """A JSON-safe Python scalar (numpy and pandas scalars become int/float/str/bool)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _column_expectations(gx, column: str, series: pd.Series, sdtype: str) -> list:
    E = gx.expectations
    out = [E.ExpectColumnToExist(column=column)]
    # a typed column stored as text (numbers with a few codes, integers beyond int64): its exceptions are values too
    as_text = sdtype in ("numeric", "integer", "datetime") and not (
        pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series))
    if sdtype in _TYPES and not as_text:
        out.append(E.ExpectColumnValuesToBeInTypeList(column=column, type_list=_TYPES[sdtype]))
    null_rate = float(series.isna().mean()) if len(series) else 0.0
    mostly = round(1.0 - null_rate - NULL_TOLERANCE, 4)
    if mostly > 0:
        out.append(E.ExpectColumnValuesToNotBeNull(column=column, mostly=mostly))
    present = series.dropna()
    if present.empty or as_text:
        return out
    if sdtype in ("numeric", "integer"):
        values = to_float(present, sdtype)
        values = values[~np.isnan(values)]
        if len(values):
            out.append(E.ExpectColumnValuesToBeBetween(column=column, min_value=float(values.min()), max_value=float(values.max())))
    elif sdtype == "datetime" and pd.api.types.is_datetime64_any_dtype(present):
        out.append(E.ExpectColumnValuesToBeBetween(column=column, min_value=_scalar(present.min()), max_value=_scalar(present.max())))
    elif sdtype in ("categorical", "boolean"):
        distinct = pd.unique(present)
        if len(distinct) <= MAX_VALUE_SET:
            out.append(E.ExpectColumnValuesToBeInSet(column=column, value_set=sorted((_scalar(v) for v in distinct), key=str)))
    return out


def build_suite(table: str, df: pd.DataFrame, meta: TableMeta, schema: DatasetSchema, exclude: set[str]) -> dict:
    """The suite of one table as JSON (`ExpectationSuite.to_json_dict()`), FK checks recorded in its meta."""
    gx = _gx()
    E = gx.expectations
    expectations = []
    keys = schema.key_columns(table)
    pk = list(meta.primary_key)
    expectations += [E.ExpectColumnValuesToNotBeNull(column=column) for column in pk]
    if len(pk) == 1:
        expectations.append(E.ExpectColumnValuesToBeUnique(column=pk[0]))
    elif len(pk) > 1:
        expectations.append(E.ExpectCompoundColumnsToBeUnique(column_list=pk))
    for column, cmeta in meta.columns.items():
        if column in keys or column in exclude or column not in df.columns or cmeta.sdtype in ("id", *STRING_KINDS):
            continue
        expectations += _column_expectations(gx, column, df[column], cmeta.sdtype)
    # deferred FKs (closing a cycle) are filled after this table is written: keys_valid checks them with the parent
    foreign_keys = [{"column": fk.child_column, "parent_table": fk.parent_table, "parent_column": fk.parent_column,
                     **({"columns": fk.child_columns, "parent_columns": fk.parent_columns} if fk.composite else {})}
                    for fk in schema.fks_of(table) if not fk.is_self_reference and not fk.deferred]
    suite = gx.ExpectationSuite(name=f"{schema.dataset}.{table}", expectations=expectations,
                                meta={"format": SUITE_FORMAT, "foreign_keys": foreign_keys})
    return suite.to_json_dict()


def build_suites(tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, exclude: Mapping[str, set[str]]) -> dict[str, dict]:
    """One suite per table, from the rows the model trained on; `exclude` names the replaced PII columns."""
    return {t: build_suite(t, tables[t], schema.tables[t], schema, set(exclude.get(t, set())))
            for t in schema.generation_order if t in tables}


SUITES_FILE = "expectations.json"


def save_suites(model_dir, suites: dict[str, dict]) -> None:
    """Beside the model (atomic write), so each model version carries the suite it was trained with."""
    from pathlib import Path

    from genesis_pipelines.engine.sources.io import write_json

    write_json(Path(model_dir) / SUITES_FILE, {"format": SUITE_FORMAT, "suites": suites})


def load_suites(model_dir) -> dict[str, dict]:
    """{table: suite JSON}; empty for a model saved before suites existed."""
    import json
    from pathlib import Path

    path = Path(model_dir) / SUITES_FILE
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")).get("suites", {}))


def validate(df: pd.DataFrame, suite_json: dict, *, parents: Mapping[str, pd.DataFrame] | None = None,
             context=None) -> dict:
    """Validate one synthetic table; returns counts and the types of the failed expectations (no values).

    `parents` are the synthetic parent tables, for the FK-membership expectations. Pass `context` to reuse one
    ephemeral GX context across tables."""
    gx = _gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    context = context or new_context()
    name = str(suite_json.get("name", "suite"))
    expectations = [ExpectationConfiguration(type=c["type"], kwargs=c["kwargs"]).to_domain_obj()
                    for c in suite_json.get("expectations", [])]
    orphan_tuples = 0  # composite FKs: GX has no tuple-in-set expectation, so their membership is counted here
    for fk in (suite_json.get("meta") or {}).get("foreign_keys", []):
        parent = (parents or {}).get(fk["parent_table"])
        columns, parent_columns = fk.get("columns", [fk["column"]]), fk.get("parent_columns", [fk["parent_column"]])
        if parent is None or not set(parent_columns) <= set(parent.columns):
            continue
        if len(columns) == 1:
            keys = [_scalar(v) for v in pd.unique(parent[parent_columns[0]].dropna())]
            expectations.append(gx.expectations.ExpectColumnValuesToBeInSet(column=columns[0], value_set=keys))
        elif set(columns) <= set(df.columns):
            tuples = key_values(df, columns).dropna()
            orphan_tuples += int((~tuples.isin(set(key_values(parent, parent_columns).dropna()))).sum())
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    # pandas 3's default "str" dtype (NaN for missing) is not a dtype GX's type check knows; "string" is the same data
    legacy = [c for c, t in df.dtypes.items() if isinstance(t, pd.StringDtype) and t.na_value is not pd.NA]
    df = df.astype({c: "string" for c in legacy}) if legacy else df
    source = context.data_sources.add_or_update_pandas(name=f"synthetic-{name}")
    asset = source.add_dataframe_asset(name=name)
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(suite, result_format="BOOLEAN_ONLY")
    failed = [r.expectation_config.type for r in result.results if not r.success]
    if orphan_tuples:
        failed.append("foreign_key_tuples_in_parent")
    return {"evaluated": len(result.results), "failed": len(failed), "failed_types": sorted(set(failed)),
            "success": not failed}
