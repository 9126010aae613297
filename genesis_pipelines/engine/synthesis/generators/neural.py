"""Shared machinery of the torch generators (CTGAN, TVAE, their DP variants).

Seeds and threads, devices, progress and epoch logging, early stopping, segment-wise softmax over the encoded
layout, conditional sampling by rejection, and persistence as safetensors weights plus a JSON manifest.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from genesis_pipelines.engine.core.device import resolve_device
from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.sources.io import atomic_path
from genesis_pipelines.engine.synthesis.generators.base import BaseGenerator
from genesis_pipelines.engine.synthesis.generators.data_transformer import DataTransformer
from genesis_pipelines.engine.synthesis.transform import as_numbers

LOG = logging.getLogger("genesis_pipelines.training")
WEIGHTS = "weights.safetensors"
SAMPLE_CHUNK = 50_000
MAX_TRY_ROWS = 200_000


def torch_device(device: str | None) -> torch.device:
    """The torch device of a device setting (None: cpu), checked once, by core.device.resolve_device."""
    return torch.device(resolve_device(device or "cpu"))


@contextmanager
def torch_threads(threads: int | None):
    """Intra-op threads for the duration of a fit; small dense nets gain nothing past a handful."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads or min(os.cpu_count() or 1, 8))))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SegmentLayout:
    """Index tensors that let one vectorised op act on every tanh scalar and every softmax span at once."""

    def __init__(self, transformer: DataTransformer, device: torch.device):
        spans = transformer.softmax_spans
        self.dim = transformer.dim
        self.tanh = torch.as_tensor(transformer.tanh_index, dtype=torch.long, device=device)
        soft = [np.arange(s.start, s.start + s.width) for s in spans]
        self.soft = torch.as_tensor(np.concatenate(soft) if soft else np.zeros(0, dtype="int64"), dtype=torch.long, device=device)
        seg = [np.full(s.width, i) for i, s in enumerate(spans)]
        self.segment = torch.as_tensor(np.concatenate(seg) if seg else np.zeros(0, dtype="int64"), dtype=torch.long, device=device)
        self.n_segments = len(spans)
        order = torch.cat([self.tanh, self.soft])
        self.restore = torch.empty_like(order)
        self.restore[order] = torch.arange(len(order), device=device)

    def log_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Log-softmax within each span of `logits` (the softmax dims only, in layout order)."""
        index = self.segment.expand(len(logits), -1)
        peak = torch.full((len(logits), self.n_segments), -torch.inf, device=logits.device, dtype=logits.dtype)
        peak = peak.scatter_reduce(1, index, logits.detach(), "amax").gather(1, index)
        shifted = logits - peak
        total = torch.zeros((len(logits), self.n_segments), device=logits.device, dtype=logits.dtype).scatter_add(1, index, shifted.exp())
        return shifted - total.log().gather(1, index)

    def combine(self, tanh_part: torch.Tensor, soft_part: torch.Tensor) -> torch.Tensor:
        return torch.cat([tanh_part, soft_part], dim=1)[:, self.restore]


def gumbel(shape, device, generator: torch.Generator | None = None) -> torch.Tensor:
    u = torch.rand(shape, device=device, generator=generator)
    return -torch.log(-torch.log(u + 1e-20) + 1e-20)


def adam(params, **kwargs) -> torch.optim.Adam:
    """Fused Adam: one kernel per step instead of a dozen parameter-sized ops (a third of a CTGAN step on CPU)."""
    return torch.optim.Adam(params, fused=True, **kwargs)


class EarlyStopping:
    """Keeps the best weights by a validation signal (lower is better); stops after `patience` epochs without gain."""

    def __init__(self, patience: int | None, min_delta: float = 1e-4):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_state, self.best_epoch, self.bad = math.inf, None, 0, 0

    def update(self, value: float, epoch: int, module: torch.nn.Module) -> bool:
        """True when training should stop."""
        if self.patience is None:
            return False
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad = value, epoch, 0
            self.best_state = copy.deepcopy(module.state_dict())
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self, module: torch.nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)


class NeuralGenerator(BaseGenerator):
    """Base of the torch generators: subclasses build `self.net` (what sampling needs) and implement
    `_train(matrix, device, seed)` and `_generate(n, generator, condition)`."""

    files: ClassVar[tuple[str, ...]] = (WEIGHTS,)
    private: ClassVar[bool] = False

    def __init__(self, *, epochs: int = 300, batch_size: int = 500, patience: int | None = 10, progress: bool = True,
                 threads: int | None = None, max_condition_tries: int = 20):
        if epochs < 1 or batch_size < 2:
            raise GenesisError(f"generator {self.name!r}: epochs must be >= 1 and batch_size >= 2")
        self.epochs, self.batch_size, self.patience = int(epochs), int(batch_size), patience
        self.progress, self.threads, self.max_condition_tries = progress, threads, int(max_condition_tries)
        self.transformer: DataTransformer | None = None
        self.net: torch.nn.Module | None = None
        self.device = torch.device("cpu")
        self.layout: SegmentLayout | None = None
        self.training: dict = {}

    # -------------------------------------------------------------- hyper-parameters and fitting

    def hyperparameters(self) -> dict:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "patience": self.patience,
                "threads": self.threads, "max_condition_tries": self.max_condition_tries}

    def _fit_transformer(self, table: pd.DataFrame, meta: TableMeta, seed: int) -> DataTransformer:
        return DataTransformer().fit(table, meta, seed=seed)

    def _fit(self, table: pd.DataFrame, meta: TableMeta, *, device: str = "cpu", seed: int = 0) -> None:
        self.device = torch_device(device)
        started = time.perf_counter()
        torch.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        with torch_threads(self.threads):
            self.transformer = self._fit_transformer(table, meta, seed)
            matrix = torch.as_tensor(self.transformer.transform(table, seed=seed), device=self.device)
            self.layout = SegmentLayout(self.transformer, self.device)
            self._train(matrix, table_name=meta.name, seed=seed)
        self.training.update({
            "rows_fitted": len(table), "device": str(self.device), "training_seconds": round(time.perf_counter() - started, 3),
            "parameters": int(sum(p.numel() for p in self.net.parameters())),
        })
        if self.device.type == "cuda":
            self.training["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        self.net.eval()

    def _epochs(self, table_name: str):
        show = self.progress and sys.stderr.isatty()
        return tqdm(range(self.epochs), desc=f"{self.name} {table_name}", unit="epoch", disable=not show, leave=False)

    def _log_epoch(self, bar, epoch: int, losses: dict[str, float]) -> None:
        text = ", ".join(f"{k} {v:.4f}" for k, v in losses.items())
        LOG.info("%s epoch %d/%d: %s", self.name, epoch + 1, self.epochs, text)
        bar.set_postfix({k: round(v, 4) for k, v in losses.items()}, refresh=False)

    # -------------------------------------------------------------- sampling

    @property
    def fitted(self) -> bool:
        return self.net is not None and self.transformer is not None

    def _torch_generator(self, seed: int | None) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
        return generator

    @torch.no_grad()
    def _matrix(self, n: int, generator: torch.Generator, condition: tuple[int, int] | None = None) -> np.ndarray:
        self.net.eval()
        parts = [self._generate(min(SAMPLE_CHUNK, n - start), generator, condition).cpu().numpy()
                 for start in range(0, n, SAMPLE_CHUNK)]
        return np.concatenate(parts) if parts else np.zeros((0, self.transformer.dim), dtype="float32")

    def _sample(self, n: int, *, conditions: dict | pd.DataFrame | None = None, seed: int | None = None) -> pd.DataFrame:
        if isinstance(conditions, pd.DataFrame):
            parts = []
            for _, group in conditions.groupby(list(conditions.columns), sort=False, dropna=False):
                part = self.sample(len(group), conditions=group.iloc[0].to_dict(), seed=None if seed is None else seed + len(parts))
                part.index = group.index
                parts.append(part)
            return pd.concat(parts).loc[conditions.index].reset_index(drop=True) if parts else self.sample(0)
        generator = self._torch_generator(seed)
        decode_seed = None if seed is None else [int(seed), 1]
        if not conditions:
            return self.transformer.inverse_transform(self._matrix(int(n), generator), seed=decode_seed)
        return self._sample_conditioned(int(n), dict(conditions), generator, decode_seed)

    def _condition_checks(self, conditions: dict) -> list:
        """Per condition: (column, kind, target) where kind is 'code' (a one-hot slot) or 'number'; errors name the column."""
        tr, checks = self.transformer, []
        for column, value in conditions.items():
            if column in tr.text:
                raise GenesisError(f"cannot condition on free-text column {column!r}")
            if column not in tr.codecs:
                raise GenesisError(f"cannot condition on column {column!r}: the model does not have it")
            codec = tr.codecs[column]
            is_null = value is None or (not isinstance(value, str) and pd.isna(value))
            if codec["kind"] == "discrete":
                code = tr.category_code(column, value)
                if code is None:
                    raise GenesisError(f"impossible condition on column {column!r}: the value was never seen in training")
                checks.append((column, "code", code))
            elif is_null:
                if not codec["has_null"]:
                    raise GenesisError(f"impossible condition on column {column!r}: the column had no nulls in training")
                checks.append((column, "null", None))
            else:
                try:
                    number = float(as_numbers(pd.Series([value]), codec["sdtype"])[0])
                except (TypeError, ValueError):
                    raise GenesisError(f"condition on column {column!r}: the value is not a {codec['sdtype']}") from None
                if not codec["low"] <= number <= codec["high"]:
                    raise GenesisError(f"impossible condition on column {column!r}: the value is outside the range seen in training")
                checks.append((column, "number", number))
        return checks

    def _accept(self, matrix: np.ndarray, checks: list) -> np.ndarray:
        tr, ok = self.transformer, np.ones(len(matrix), dtype=bool)
        for column, kind, target in checks:
            codec = tr.codecs[column]
            if kind == "code":
                span = tr.span_of(column, "category")
                ok &= (matrix[:, span.start:span.start + span.width].argmax(axis=1) == target) if span else True
                continue
            null_span = tr.span_of(column, "null")
            null = matrix[:, null_span.start:null_span.start + 2].argmax(axis=1) == 1 if null_span else np.zeros(len(matrix), bool)
            if kind == "null":
                ok &= null
                continue
            means, stds = np.asarray(codec["means"]), np.asarray(codec["stds"])
            span = tr.span_of(column, "mode")
            mode = matrix[:, span.start:span.start + span.width].argmax(axis=1) if span else np.zeros(len(matrix), dtype="int64")
            values = np.clip(matrix[:, tr.span_of(column, "value").start], -1, 1) * 4 * stds[mode] + means[mode]
            tolerance = max(0.01 * (codec["high"] - codec["low"]), 0.5 if codec["integer"] else 0.0)
            ok &= ~null & (np.abs(values - target) <= tolerance)
        return ok

    def _sample_conditioned(self, n: int, conditions: dict, generator: torch.Generator, decode_seed) -> pd.DataFrame:
        """Rejection sampling with a bounded number of tries (CTGAN also steers with its conditional vector)."""
        checks = self._condition_checks(conditions)
        steer = next(((self.transformer.span_of(c, "category"), t) for c, k, t in checks
                      if k == "code" and self.transformer.span_of(c, "category") is not None), None)
        kept, have, made, tries = [], 0, 0, 0
        while have < n and tries < self.max_condition_tries:
            rate = have / made if made else 1.0
            size = int(min(MAX_TRY_ROWS, max(4096, 100 * n), max(256, math.ceil((n - have) / max(rate, 1e-3) * 1.2))))
            batch = self._matrix(size, generator, steer)
            accepted = batch[self._accept(batch, checks)]
            kept.append(accepted[: n - have])
            have, made, tries = have + len(kept[-1]), made + size, tries + 1
        if have == 0 and n > 0:
            names = ", ".join(repr(c) for c in conditions)
            raise GenesisError(f"impossible condition on column(s) {names}: the model never generated it in {tries} tries ({made} rows)")
        if have < n:
            LOG.warning("%s: conditions on %d column(s) accepted %d of %d rows after %d tries; the rest have the "
                        "condition columns set directly", self.name, len(conditions), have, n, tries)
            kept.append(self._matrix(n - have, generator, steer))
        matrix = np.concatenate(kept) if kept else np.zeros((0, self.transformer.dim), dtype="float32")
        out = self.transformer.inverse_transform(matrix, seed=decode_seed)
        for column, value in conditions.items():
            if len(out):
                out[column] = pd.Series([value] * len(out), dtype=out[column].dtype)
        return out

    # -------------------------------------------------------------- persistence

    def _state(self, directory: Path) -> dict:
        weights = {k: v.detach().to("cpu").contiguous() for k, v in self.net.state_dict().items()}
        with atomic_path(directory / WEIGHTS) as tmp:
            save_file(weights, str(tmp))
        return {"hyperparameters": self.hyperparameters(), "transformer": self.transformer.to_dict(),
                "training": self.training, "extra": self._extra_state(), "describe": self.describe()}

    def _extra_state(self) -> dict:
        return {}

    def _restore_extra(self, extra: dict) -> None:
        pass

    @classmethod
    def _from_state(cls, state: dict, directory: Path, device: str = "auto") -> NeuralGenerator:
        model = cls(**state["hyperparameters"])
        model.transformer = DataTransformer.from_dict(state["transformer"])
        model.training = state["training"]
        model._restore_extra(state.get("extra", {}))
        model.device = torch_device(device)
        model.layout = SegmentLayout(model.transformer, model.device)
        model.net = model._build_sampling_net().to(model.device)
        model.net.load_state_dict(load_file(str(directory / WEIGHTS), device="cpu"))
        model.net.to(model.device).eval()
        return model

    def describe(self) -> dict:
        out = {"method": self.name, **{k: v for k, v in self.training.items() if k != "history"}}
        if self.transformer is not None:
            out.update(self.transformer.describe())
        return out
