"""Optional SDV synthesizers (`sdv_gaussian_copula`, `sdv_ctgan`, `sdv_tvae`), for comparison only.

SDV is BUSL-licensed and not a dependency: it is imported at fit time, never at import time, and a clear error
says how to install it (`pip install genesis-pipelines[sdv]`). SDV saves its models with pickle, which this project
never loads, so after fitting the model is stored as a pool of synthetic rows (Parquet, `pool_rows` of them) and
sampling draws from that pool; refit for fresh randomness.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.sources.io import atomic_path
from genesis_pipelines.engine.synthesis.generators.base import BaseGenerator, register

POOL_FILE = "pool.parquet"
_SDTYPE = {"numeric": "numerical", "integer": "numerical", "datetime": "datetime", "categorical": "categorical",
           "boolean": "boolean", "text": "categorical"}


def import_sdv():
    """The sdv package, or a GenesisError telling how to get it."""
    try:
        return importlib.import_module("sdv.single_table"), importlib.import_module("sdv.metadata")
    except ImportError:
        raise GenesisError("the sdv_* generators need SDV, an optional extra: pip install genesis-pipelines[sdv]") from None


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable pandas dtypes become numpy ones: SDV 2.0 expects those."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_integer_dtype(series) and series.isna().any() or str(series.dtype) == "Int64":
            out[column] = series.astype("float64")
        elif str(series.dtype) == "boolean" or pd.api.types.is_string_dtype(series):
            out[column] = series.astype(object).where(series.notna(), np.nan)
    return out


class _SdvPool(BaseGenerator):
    name: ClassVar[str]
    format: ClassVar[str] = "genesis.sdv_pool/1"
    files: ClassVar[tuple[str, ...]] = (POOL_FILE,)
    synthesizer: ClassVar[str]

    def __init__(self, pool_rows: int = 50_000, **synthesizer_settings):
        self.pool_rows = int(pool_rows)
        self.synthesizer_settings = synthesizer_settings
        self.pool: pd.DataFrame | None = None
        self.dtypes: dict[str, str] = {}
        self.rows_fitted = 0

    def _fit(self, table: pd.DataFrame, meta: TableMeta, *, device: str = "cpu", seed: int = 0) -> None:
        single_table, metadata_module = import_sdv()
        columns = [c for c in table.columns if meta.columns[c].sdtype != "id"]
        if not columns:
            raise GenesisError(f"table {meta.name!r}: no column for SDV to model")
        data = _plain(table[columns])
        metadata = metadata_module.Metadata.load_from_dict({"tables": {"t": {"columns": {
            c: {"sdtype": _SDTYPE.get(meta.columns[c].sdtype, "categorical")} for c in columns}}}})
        settings = dict(self.synthesizer_settings)
        if self.synthesizer != "GaussianCopulaSynthesizer":
            settings.setdefault("enable_gpu", device.startswith("cuda"))
        model = getattr(single_table, self.synthesizer)(metadata, **settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit({"t": data})
            sampled = model.sample(max(self.pool_rows, 1))
        sampled = sampled["t"] if isinstance(sampled, dict) else sampled
        self.dtypes = {c: str(table[c].dtype) for c in columns}
        self.pool = self._typed(sampled[columns])
        self.rows_fitted = len(table)

    def _typed(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.reset_index(drop=True).copy()
        for column, dtype in self.dtypes.items():
            try:
                out[column] = out[column].astype(dtype)
            except (TypeError, ValueError):
                pass  # keep SDV's dtype when the original cannot hold the value (e.g. floats for an Int column)
        return out

    @property
    def fitted(self) -> bool:
        return self.pool is not None

    def _sample(self, n: int, *, conditions: dict | pd.DataFrame | None = None, seed: int | None = None) -> pd.DataFrame:
        if isinstance(conditions, pd.DataFrame):
            raise GenesisError(f"{self.name} does not support per-row conditions")
        pool = self.pool
        for column, value in (conditions or {}).items():
            if column not in pool.columns:
                raise GenesisError(f"cannot condition on column {column!r}: the model does not have it")
            pool = pool[pool[column] == value]
        if len(pool) == 0 and n:
            raise GenesisError(f"impossible condition on columns {', '.join(conditions or {})}: no pooled row matches")
        rng = np.random.default_rng(seed)
        index = rng.permutation(len(pool))[:n] if n <= len(pool) else rng.integers(0, len(pool), n)
        return pool.iloc[index].reset_index(drop=True)

    def _state(self, directory: Path) -> dict:
        with atomic_path(directory / POOL_FILE) as tmp:
            self.pool.to_parquet(tmp, index=False)
        return {"dtypes": self.dtypes, "rows_fitted": self.rows_fitted, "pool_rows": len(self.pool)}

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> _SdvPool:
        model = cls(pool_rows=state["pool_rows"])
        model.dtypes, model.rows_fitted = state["dtypes"], state["rows_fitted"]
        model.pool = model._typed(pd.read_parquet(directory / POOL_FILE))
        return model

    def describe(self) -> dict:
        return {"method": self.name, "rows_fitted": self.rows_fitted, "backend": f"SDV {self.synthesizer}",
                "pool_rows": 0 if self.pool is None else len(self.pool)}


@register
class SdvGaussianCopula(_SdvPool):
    name: ClassVar[str] = "sdv_gaussian_copula"
    synthesizer: ClassVar[str] = "GaussianCopulaSynthesizer"


@register
class SdvCTGAN(_SdvPool):
    name: ClassVar[str] = "sdv_ctgan"
    synthesizer: ClassVar[str] = "CTGANSynthesizer"


@register
class SdvTVAE(_SdvPool):
    name: ClassVar[str] = "sdv_tvae"
    synthesizer: ClassVar[str] = "TVAESynthesizer"
