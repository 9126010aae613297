"""Autoregressive generator: p(row) = prod_j p(column_j | columns before j), one softmax head per column.

Every column is a token (see _ar_codec.py). Each column has an embedding; column j's head is a small MLP
over the concatenated embeddings of the columns before it, so every column's conditional trains in one
pass per batch. Only nn.Embedding / nn.Linear: the DP variant trains the same model with Opacus. Regularised
against memorisation by weight decay (weight matrices only) and early stopping on a validation split; the
learning rate follows a one-cycle schedule whose decay always runs to the end, also when early stopping cuts
training short, because a model stopped at a high rate samples off-calibrated marginals. Dropout is off by
default (it is on the hidden layers only when set): a dropout-trained softmax is miscalibrated at eval
time (on Adult it put the first column's marginal 3 points off). Temperature / top-p at sampling trade
fidelity for privacy.

Conditional sampling: the fixed columns' tokens are forced. When they are a prefix of the column order the
draw is exact; otherwise every output row is picked from `condition_candidates` draws by importance
weight p(fixed values | earlier columns) (sampling-importance-resampling), so no retraining is needed.
Put columns that are always conditioned on (a child's parent columns) first with `first_columns`.
"""

from __future__ import annotations

import math
import secrets
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from genesis_pipelines.engine.core.errors import GenesisError, ModelError
from genesis_pipelines.engine.core.schema import ColumnMeta, TableMeta
from genesis_pipelines.engine.privacy import record_guard
from genesis_pipelines.engine.sources.io import atomic_path
from genesis_pipelines.engine.synthesis.generators._ar_codec import CategoricalCodec, NumericCodec, codec_from_dict
from genesis_pipelines.engine.synthesis.generators.base import PARENT_FEATURE_PREFIX, BaseGenerator, register
from genesis_pipelines.engine.synthesis.generators.dp_domain import default_delta
from genesis_pipelines.engine.synthesis.generators.free_text import STRING_KINDS, fit_text, sample_text
from genesis_pipelines.engine.synthesis.transform import has_exceptions

WEIGHTS = "autoregressive.safetensors"
_CHUNK = 65_536


class ARModel(nn.Module):
    """Column embeddings -> per-column hidden layer over the earlier columns' embeddings -> softmax head.

    Column j's hidden layer reads the prefix x[:, :width(j)] of [1, e_0, e_1, ...]: no masks, every layer
    a plain nn.Linear (Opacus-compatible), and about half the work of a masked full-width layer.
    """

    def __init__(self, sizes: list[int], emb_dims: list[int], hidden: int, dropout: float):
        super().__init__()
        self.sizes, self.emb_dims, self.hidden = list(sizes), list(emb_dims), hidden
        self.offsets = [1 + int(v) for v in np.concatenate([[0], np.cumsum(emb_dims)])]  # 1: a constant input
        self.embeddings = nn.ModuleList(nn.Embedding(s, d) for s, d in zip(sizes, emb_dims))
        self.hidden_layers = nn.ModuleList(nn.Linear(self.offsets[j], hidden) for j in range(len(sizes)))
        self.heads = nn.ModuleList(nn.Linear(hidden, s) for s in sizes)
        self.dropout = nn.Dropout(dropout)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(len(tokens), 1, device=tokens.device)
        return torch.cat([ones] + [e(tokens[:, j]) for j, e in enumerate(self.embeddings)], dim=1)

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        x = self.embed(tokens)
        return [head(self.dropout(torch.relu(layer(x[:, :self.offsets[j]]))))
                for j, (layer, head) in enumerate(zip(self.hidden_layers, self.heads))]

    def logits_for(self, x: torch.Tensor, j: int) -> torch.Tensor:
        return self.heads[j](torch.relu(self.hidden_layers[j](x[:, :self.offsets[j]])))


def _cosine(progress: float) -> float:
    """1 -> ~0 along half a cosine as progress goes 0 -> 1."""
    return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on the weight matrices only: a decayed head bias would pull every marginal towards uniform."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        (plain if name.endswith("bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


@contextmanager
def _threads(n: int):
    """Small matrices: one thread avoids OpenMP spin-waits that cost 10x CPU on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _filter_logits(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    logits = logits / max(temperature, 1e-4)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, -1).cumsum(-1)
        drop = cum - torch.softmax(sorted_logits, -1) >= top_p  # keep the smallest set whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


@register
class AutoregressiveGenerator(BaseGenerator):
    name: ClassVar[str] = "autoregressive"
    format: ClassVar[str] = "genesis.autoregressive/1"
    files: ClassVar[tuple[str, ...]] = (WEIGHTS,)
    dp: ClassVar[bool] = False

    def __init__(self, max_bins: int = 100, min_count: int = 5, emb_dim: int = 16, hidden: int = 128,
                 dropout: float = 0.0, weight_decay: float = 0.1, lr: float = 3e-3, batch_size: int = 1024,
                 max_epochs: int | None = None, max_steps: int = 2000, patience: int = 4, max_training_seconds: float = 3600.0,
                 validation_fraction: float = 0.1, anneal_fraction: float = 0.4, order: str = "cardinality", first_columns: list[str] | None = None,
                 temperature: float = 1.0, top_p: float = 1.0, condition_candidates: int = 16,
                 guard_copies: bool = True, max_fit_rows: int = 1_000_000, threads: int = 1):
        if order not in ("cardinality", "table"):
            raise GenesisError(f"autoregressive: order must be 'cardinality' or 'table', not {order!r}")
        self.settings = dict(max_bins=int(max_bins), min_count=int(min_count), emb_dim=int(emb_dim), hidden=int(hidden),
                             dropout=float(dropout), weight_decay=float(weight_decay), lr=float(lr),
                             batch_size=int(batch_size), max_epochs=None if max_epochs is None else int(max_epochs), max_steps=int(max_steps), patience=int(patience),
                             max_training_seconds=float(max_training_seconds),
                             validation_fraction=float(validation_fraction), anneal_fraction=float(anneal_fraction), order=order,
                             first_columns=list(first_columns or []), condition_candidates=int(condition_candidates),
                             guard_copies=bool(guard_copies), max_fit_rows=int(max_fit_rows), threads=int(threads))
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.columns: list[str] = []  # output order (the table's)
        self.order: list[str] = []  # model order
        self.codecs: dict = {}
        self.text: dict[str, dict] = {}
        self.metas: dict[str, dict] = {}
        self.model: ARModel | None = None
        self.guard_salt, self.guard_digests, self.guard_columns = "", set(), []
        self.stats: dict = {}

    # -------------------------------------------------------------- fit

    def _column_order(self, table: pd.DataFrame) -> list[str]:
        modelled = [c for c in self.columns if c in self.codecs]
        first = [c for c in self.settings["first_columns"] if c in self.codecs]
        missing = [c for c in self.settings["first_columns"] if c not in self.codecs]
        if missing:
            raise GenesisError(f"autoregressive: first_columns names {missing}, which are not modelled columns")
        # the relational layer's parent features (relational.model.FEATURE_PREFIX) are always conditioned on:
        # first in the order, so a child's draw given its parent is exact rather than importance-resampled
        first += [c for c in modelled if c.startswith(PARENT_FEATURE_PREFIX) and c not in first]
        rest = [c for c in modelled if c not in first]
        if self.settings["order"] == "cardinality":
            rest.sort(key=lambda c: self.codecs[c].size)  # stable: ties keep table order
        return first + rest

    def _fit(self, table: pd.DataFrame, meta: TableMeta, *, device: str = "cpu", seed: int = 0) -> None:
        started = time.perf_counter()
        s = self.settings
        if len(table) > s["max_fit_rows"]:
            table = table.sample(s["max_fit_rows"], random_state=seed)
        table = table.reset_index(drop=True)
        self.columns = [c for c in table.columns if meta.columns[c].sdtype != "id"]
        self.metas = {c: meta.columns[c].model_dump(mode="json") for c in self.columns}
        self._fit_codecs(table, meta, seed)
        self.order = self._column_order(table)
        tokens = np.column_stack([self.codecs[c].encode(table[c]) for c in self.order]) if self.order \
            else np.zeros((len(table), 0), np.int64)
        self._init_guard(table, meta)
        with torch.random.fork_rng(devices=[]), _threads(s["threads"]):
            torch.manual_seed(seed)
            self._train(torch.as_tensor(tokens), np.random.default_rng(seed), device)
        self.stats["rows_fitted"] = len(table)
        self.stats["fit_seconds"] = round(time.perf_counter() - started, 2)

    def _fit_codecs(self, table: pd.DataFrame, meta: TableMeta, seed: int) -> None:
        s = self.settings
        self.codecs, self.text = {}, {}
        for column in self.columns:
            cmeta, series = meta.columns[column], table[column]
            if cmeta.sdtype in STRING_KINDS:
                self.text[column] = fit_text(series, cmeta.sdtype)
            elif cmeta.sdtype in ("numeric", "integer", "datetime") and not has_exceptions(series, cmeta):
                self.codecs[column] = NumericCodec.fit(series, cmeta, s["max_bins"], s["min_count"])
            else:  # categories, and typed columns with exceptions (codes among numbers, +-inf) as their values
                self.codecs[column] = CategoricalCodec.fit(series, cmeta.model_copy(update={"sdtype": "categorical"})
                                                           if cmeta.sdtype != "boolean" else cmeta, s["min_count"])

    def _emb_dims(self) -> list[int]:
        """Small vocabularies get small embeddings (fastai's rule), capped; wide tables get narrower ones."""
        cap = max(2, min(self.settings["emb_dim"], 2048 // max(len(self.order), 1)))
        return [int(min(cap, max(2, round(1.6 * self.codecs[c].size ** 0.56)))) for c in self.order]

    def _make_model(self) -> ARModel:
        return ARModel([self.codecs[c].size for c in self.order], self._emb_dims(), self.settings["hidden"],
                       self.settings["dropout"])

    def _split(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        perm = rng.permutation(n)
        n_val = int(round(n * self.settings["validation_fraction"])) if n >= 20 else 0
        return perm[n_val:], perm[:n_val]

    def _train(self, tokens: torch.Tensor, rng: np.random.Generator, device: str) -> None:
        s = self.settings
        self.model = self._make_model()
        if not self.order:
            self.stats.update(epochs=0, train_loss=None, val_loss=None)
            return
        train_idx, val_idx = self._split(len(tokens), rng)
        train, val = tokens[train_idx].to(device), tokens[val_idx].to(device)
        model = self.model.to(device)
        optimizer = torch.optim.AdamW(_param_groups(model, s["weight_decay"]), lr=s["lr"])
        batch = max(8, min(s["batch_size"], len(train) // 4 or 8))
        steps_per_epoch = max(1, math.ceil(len(train) / batch))
        # about 500 optimiser steps, at least 15 passes (Adult: 15 epochs of 35 steps); on large tables the passes are
        # sized by rows: at most `max_steps` steps (337k flights: 7 epochs of 297 steps), at least one pass
        passes = max(1, min(15, math.ceil(s["max_steps"] / steps_per_epoch)))
        max_epochs = s["max_epochs"] or int(min(300, max(passes, math.ceil(500 / steps_per_epoch))))
        warmup = max(1.0, 0.1 * max_epochs)
        patience = max(s["patience"], math.ceil(0.1 * max_epochs))  # small validation sets are noisy
        # learning rate (one-cycle): a linear warm-up, then a cosine decay to ~0 at max_epochs. A model stopped
        # while the rate is high samples badly calibrated marginals, so when the validation loss stops improving
        # the decay is compressed into a share of the epochs so far, and training ends there. Epochs and steps decide;
        # `max_training_seconds` is only a fail-safe, and the model metadata says when it stopped training.
        anneal_from, anneal_len, anneal_lr = None, 0, s["lr"]
        best, best_state, bad, history = float("inf"), None, 0, []
        wall_clock_stop = False
        started = time.perf_counter()
        epoch = 0
        for epoch in range(1, max_epochs + 1):
            model.train()
            perm = torch.randperm(len(train), device=device)
            total = 0.0
            for i, start in enumerate(range(0, len(train), batch)):
                t = epoch - 1 + i / steps_per_epoch
                if t < warmup:
                    lr = s["lr"] * (0.04 + 0.96 * t / warmup)
                elif anneal_from is None:
                    lr = s["lr"] * _cosine((t - warmup) / max(max_epochs - warmup, 1e-6))
                else:
                    lr = anneal_lr * _cosine((t - anneal_from) / anneal_len)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x = train[perm[start:start + batch]]
                loss = self._loss(model, x)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(x)
            train_loss = total / max(len(train), 1)
            val_loss = self._evaluate(model, val) if len(val) else train_loss
            history.append((train_loss, val_loss))
            if val_loss < best - 1e-4:
                best, bad = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif epoch > warmup:  # the learning rate still climbs during warm-up: no verdict yet
                bad += 1
            elapsed = time.perf_counter() - started
            if anneal_from is not None:
                if epoch >= anneal_from + anneal_len:
                    break
            else:
                planned = max(2, math.ceil(s["anneal_fraction"] * epoch))
                if bad >= patience:
                    anneal_from, anneal_lr = epoch, optimizer.param_groups[0]["lr"]
                    anneal_len = max(0, min(planned, max_epochs - epoch))
                    if anneal_len == 0:
                        break
            if elapsed > s["max_training_seconds"]:
                wall_clock_stop = True
                warnings.warn(f"autoregressive: training stopped by its fail-safe of {s['max_training_seconds']:g} s "
                              f"after {epoch} of {max_epochs} epochs; the result depends on the machine's speed "
                              "(raise max_training_seconds or lower max_epochs)", RuntimeWarning, stacklevel=2)
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        self.model = model.to("cpu").eval()
        self.stats.update(epochs=epoch, anneal_from_epoch=anneal_from, best_epoch=int(np.argmin([h[1] for h in history])) + 1,
                          train_loss=round(history[-1][0], 4), val_loss=round(best, 4),
                          train_seconds=round(time.perf_counter() - started, 2), rows_validation=int(len(val)),
                          planned_epochs=max_epochs, stopped_by_wall_clock=wall_clock_stop)

    @staticmethod
    def _loss(model: ARModel, x: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        return sum(nn.functional.cross_entropy(column_logits, x[:, j]) for j, column_logits in enumerate(logits))

    def _evaluate(self, model: ARModel, val: torch.Tensor) -> float:
        model.eval()
        with torch.no_grad():
            return float(sum(float(self._loss(model, val[i:i + 8192])) * len(val[i:i + 8192])
                             for i in range(0, len(val), 8192)) / len(val))

    # -------------------------------------------------------------- copy guard

    def _guard_meta(self) -> TableMeta:
        return TableMeta(name="t", row_count=0, columns={c: ColumnMeta(**m) for c, m in self.metas.items()})

    def _init_guard(self, table: pd.DataFrame, meta: TableMeta) -> None:
        """Salted digests of the unique training records, so sampled copies can be redrawn (no raw rows kept)."""
        self.guard_salt, self.guard_digests, self.guard_columns = secrets.token_hex(8), set(), []
        if not self.settings["guard_copies"]:
            return
        gmeta = self._guard_meta()
        self.guard_columns = record_guard.record_columns(gmeta, set())
        self.guard_digests = record_guard.RecordDigests(
            record_guard.unique_record_digests(table, self.guard_columns, gmeta, self.guard_salt))

    # -------------------------------------------------------------- sample

    def _fixed_tokens(self, conditions: pd.DataFrame) -> dict[int, np.ndarray]:
        fixed = {}
        for column in conditions.columns:
            if column in self.text:
                raise GenesisError(f"cannot condition on free-text column {column!r}")
            if column not in self.codecs:
                raise GenesisError(f"cannot condition on column {column!r}: the model does not have it")
            codec = self.codecs[column]
            uniques = pd.unique(conditions[column])
            lookup = {}
            for value in uniques:
                try:
                    token = codec.token_of(value, column)
                except GenesisError:
                    # a synthetic parent's value this child never saw: the relational layer still needs a row,
                    # so a parent feature falls back to the commonest token; a caller's own condition errors
                    if not column.startswith(PARENT_FEATURE_PREFIX):
                        raise
                    token = 0
                lookup[value if not pd.isna(value) else None] = token
            fixed[self.order.index(column)] = np.asarray(
                [lookup[None if pd.isna(v) else v] for v in conditions[column]], dtype=np.int64)
        return fixed

    def _draw_tokens(self, n: int, fixed: dict[int, np.ndarray], gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Sequential draw; returns tokens (n, C) and log p(fixed tokens | earlier columns) per row."""
        model, c = self.model, len(self.order)
        tokens = torch.zeros(n, c, dtype=torch.long)
        logw = torch.zeros(n)
        x = torch.zeros(n, model.offsets[-1])
        x[:, 0] = 1.0
        with torch.no_grad():
            for j in range(c):
                if j in fixed:
                    tok = torch.as_tensor(fixed[j])
                    if any(k < j for k in range(c) if k not in fixed):  # weight only matters after a free column
                        logw += torch.log_softmax(model.logits_for(x, j), -1).gather(1, tok[:, None])[:, 0]
                else:
                    logits = _filter_logits(model.logits_for(x, j), self.temperature, self.top_p)
                    tok = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[:, 0]
                tokens[:, j] = tok
                x[:, model.offsets[j]:model.offsets[j + 1]] = model.embeddings[j](tok)
        return tokens.numpy(), logw.numpy()

    def _sample_tokens(self, n: int, fixed: dict[int, np.ndarray], gen: torch.Generator,
                       rng: np.random.Generator) -> np.ndarray:
        if not fixed or set(fixed) == set(range(len(fixed))):  # no condition, or a prefix: exact
            return self._draw_tokens(n, fixed, gen)[0]
        k = max(1, self.settings["condition_candidates"])
        tiled = {j: np.repeat(t, k) for j, t in fixed.items()}
        tokens, logw = self._draw_tokens(n * k, tiled, gen)
        # Gumbel-max: one candidate per row with probability proportional to its importance weight
        scores = logw.reshape(n, k) + rng.gumbel(size=(n, k))
        pick = np.arange(n) * k + scores.argmax(1)
        return tokens[pick]

    def _decode(self, tokens: np.ndarray, n: int, rng: np.random.Generator) -> pd.DataFrame:
        out: dict[str, pd.Series] = {}
        for column in self.columns:
            if column in self.text:
                out[column] = self._sample_text(column, n, rng)
            else:
                out[column] = self.codecs[column].decode(tokens[:, self.order.index(column)], rng).reset_index(drop=True)
        return pd.DataFrame(out, columns=self.columns, index=pd.RangeIndex(n))

    def _sample_rows(self, conditions: pd.DataFrame | None, n: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(int(seed))
        parts = []
        for start in range(0, max(n, 1), _CHUNK):
            m = min(_CHUNK, n - start)
            cond = conditions.iloc[start:start + m] if conditions is not None else None
            fixed = self._fixed_tokens(cond) if cond is not None else {}
            part = self._decode(self._sample_tokens(m, fixed, gen, rng), m, rng)
            if cond is not None:
                for column in cond.columns:  # the caller's exact values, not a value drawn from their bin
                    part[column] = pd.Series(cond[column].to_numpy(), dtype=part[column].dtype) if m else part[column]
            parts.append(part)
        return pd.concat(parts, ignore_index=True)

    @property
    def fitted(self) -> bool:
        return self.model is not None

    def _sample(self, n: int, *, conditions: dict | pd.DataFrame | None = None, seed: int | None = None) -> pd.DataFrame:
        if isinstance(conditions, dict):
            conditions = pd.DataFrame({k: [v] * n for k, v in conditions.items()}) if conditions else None
        elif isinstance(conditions, pd.DataFrame):
            n = len(conditions)
            conditions = conditions.reset_index(drop=True) if len(conditions.columns) else None
        seed = int(np.random.default_rng(seed).integers(0, 2**31 - 1)) if seed is None else int(seed)
        with _threads(self.settings["threads"]):
            return self._sample_guarded(conditions, n, seed)

    def _sample_guarded(self, conditions: pd.DataFrame | None, n: int, seed: int) -> pd.DataFrame:
        body = self._sample_rows(conditions, n, seed)
        return record_guard.redraw_copies(lambda m, cond, s: self._sample_rows(cond, m, s), body, conditions,
                                          self.guard_columns, self._guard_meta(), self.guard_salt, self.guard_digests,
                                          seed)

    def _sample_text(self, column: str, n: int, rng: np.random.Generator) -> pd.Series:
        return sample_text(self.text[column], n, rng)

    # -------------------------------------------------------------- persistence

    def _state(self, directory: Path) -> dict:
        from safetensors.torch import save_file

        with atomic_path(directory / WEIGHTS) as tmp:
            save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(tmp))
        return {
            "settings": self.settings, "temperature": self.temperature,
            "top_p": self.top_p, "columns": self.columns, "order": self.order, "metas": self.metas,
            "codecs": {c: codec.to_dict() for c, codec in self.codecs.items()}, "text": self.text,
            "emb_dims": self.model.emb_dims if self.model else None, "stats": self.stats,
            "guard": {"salt": self.guard_salt, "columns": self.guard_columns, "digests": sorted(self.guard_digests)},
        }

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> AutoregressiveGenerator:
        from safetensors.torch import load_file

        model = cls(**state["settings"], temperature=state["temperature"], top_p=state["top_p"])
        model.columns, model.order, model.metas = state["columns"], state["order"], state["metas"]
        model.codecs = {c: codec_from_dict(d) for c, d in state["codecs"].items()}
        model.text, model.stats = state["text"], state["stats"]
        guard = state["guard"]
        model.guard_salt, model.guard_columns, model.guard_digests = guard["salt"], guard["columns"], record_guard.RecordDigests(guard["digests"])
        net = ARModel([model.codecs[c].size for c in model.order], state["emb_dims"], model.settings["hidden"],
                      model.settings["dropout"])
        net.load_state_dict(load_file(str(directory / WEIGHTS)))
        model.model = net.eval()
        return model

    def describe(self) -> dict:
        return {
            "method": self.name,
            "column_order": list(self.order),
            "columns_modelled": len(self.codecs),
            "text_columns": len(self.text),
            "tokens_per_column": {c: codec.describe() for c, codec in self.codecs.items()},
            "parameters": int(sum(p.numel() for p in self.model.parameters())) if self.model else 0,
            "temperature": self.temperature,
            "top_p": self.top_p,
            **self.stats,
        }


@register
class DPAutoregressiveGenerator(AutoregressiveGenerator):
    """The same model trained with DP-SGD (Opacus) to a target (epsilon, delta).

    Data-dependent choices would leak outside the DP guarantee, so here: category sets come from the
    `categories` setting or from noisy counts above a stability threshold (an (epsilon, delta)-DP release
    that spends `discretization_share` of epsilon); numeric bins are equal-width between `bounds` from the
    settings (required for numeric columns: the min and max of the data are not private); no exact-value
    tokens, no early stopping on a validation split, a fixed number of epochs. The copy guard stays on
    (it only ever removes rows), which is post-processing that reads the data: switch it off with
    guard_copies=False for a pure DP release.
    """

    name: ClassVar[str] = "dp_autoregressive"
    dp: ClassVar[bool] = True

    def __init__(self, epsilon: float = 3.0, delta: float | None = None, max_grad_norm: float = 1.0,
                 epochs: int = 10, bounds: dict | None = None, categories: dict | None = None,
                 discretization_share: float = 0.1, dp_bins: int = 32, steps: int | None = None, **settings):
        settings.setdefault("max_epochs", epochs)
        if steps is not None and int(steps) < 1:
            raise GenesisError("dp_autoregressive: steps (the DP-SGD step budget) must be >= 1")
        super().__init__(**settings)
        self.settings.update(epsilon=float(epsilon), delta=None if delta is None else float(delta),
                             max_grad_norm=float(max_grad_norm), bounds=dict(bounds or {}),
                             categories={k: [str(v) for v in vs] for k, vs in (categories or {}).items()},
                             discretization_share=float(discretization_share), dp_bins=int(dp_bins),
                             steps=None if steps is None else int(steps))

    def _dp_codecs(self, table: pd.DataFrame, meta: TableMeta, rng: np.random.Generator) -> None:
        s = self.settings
        n = len(table)
        delta = s["delta"] or default_delta(n)  # min(1e-6, 1/(10 n)): well below 1/n
        discrete = [c for c in self.codecs if isinstance(self.codecs[c], CategoricalCodec) and c not in s["categories"]]
        eps_col = s["epsilon"] * s["discretization_share"] / max(len(discrete), 1)
        for column, codec in list(self.codecs.items()):
            cmeta = meta.columns[column]
            if isinstance(codec, NumericCodec):
                if column not in s["bounds"]:
                    raise GenesisError(f"dp_autoregressive: numeric column {column!r} needs bounds in the settings "
                                       "(its real min and max are not private)")
                lo, hi = (float(v) for v in (_numeric_bound(b, cmeta.sdtype) for b in s["bounds"][column]))
                self.codecs[column] = NumericCodec(cmeta.sdtype, [], np.linspace(lo, hi, s["dp_bins"] + 1).tolist(), True,
                                                   None, cmeta.sdtype == "integer", cmeta.datetime_format, (lo, hi))
            elif column in s["categories"]:
                self.codecs[column] = CategoricalCodec(cmeta.sdtype, s["categories"][column], [], True)
            else:
                counts = CategoricalCodec._keys(table[column].dropna(), cmeta.sdtype).value_counts()
                noisy = counts.to_numpy() + rng.laplace(0.0, 1.0 / eps_col, len(counts))
                threshold = 1.0 + np.log(1.0 / delta) / eps_col  # stability-based histogram: rare labels never surface
                kept = [str(c) for c, v in zip(counts.index, noisy) if v >= threshold]
                if not kept:  # every label too rare to release: say so instead of an all-"other" column
                    raise GenesisError(f"dp_autoregressive: table {meta.name!r} column {column!r}: no category has enough "
                                       f"rows to pass the DP selection (about {threshold:.0f} needed at this epsilon); "
                                       f"declare its categories in the settings, categories: {{{column}: [...]}}, or raise epsilon")
                self.codecs[column] = CategoricalCodec(cmeta.sdtype, kept, [], True)
        self.stats["dp_delta"] = delta

    def _fit_codecs(self, table: pd.DataFrame, meta: TableMeta, seed: int) -> None:
        super()._fit_codecs(table, meta, seed)  # then every data-fitted choice is replaced by a private one
        self._dp_codecs(table, meta, np.random.default_rng(seed + 1))

    def _train(self, tokens: torch.Tensor, rng: np.random.Generator, device: str) -> None:
        from torch.utils.data import DataLoader, TensorDataset

        from genesis_pipelines.engine.synthesis.generators.dp_neural import (
            accounted_steps,
            charge_skipped_step,
            dp_sgd_epoch,
            dp_sgd_private,
        )
        s = self.settings
        self.model = self._make_model()
        started = time.perf_counter()
        batch = max(8, min(s["batch_size"], len(tokens) // 4 or 8))
        loader = DataLoader(TensorDataset(tokens), batch_size=batch, shuffle=True)
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=s["lr"], weight_decay=s["weight_decay"])
        # a step budget (`steps`, else max_epochs x batches per epoch), the noise calibrated for exactly that many
        engine, model, optimizer, loader, plan = dp_sgd_private(
            self.model, optimizer, loader, epochs=s["max_epochs"], steps=s.get("steps"),
            target_epsilon=s["epsilon"] * (1 - s["discretization_share"]), target_delta=self.stats["dp_delta"],
            max_grad_norm=s["max_grad_norm"])
        model.train()
        loss_value = float("nan")
        with warnings.catch_warnings():  # Opacus' hooks on the embeddings warn on every step
            warnings.filterwarnings("ignore", message="Full backward hook")
            for epoch in range(plan["epochs"]):
                total, rows = 0.0, 0
                for (x,) in dp_sgd_epoch(loader, plan, epoch):
                    if not len(x):
                        charge_skipped_step(engine, plan)
                        continue
                    loss = self._loss(model, x)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total, rows = total + loss.item() * len(x), rows + len(x)
                loss_value = total / max(rows, 1)
        if hasattr(model, "remove_hooks"):
            model.remove_hooks()  # sampling needs no per-sample gradients
        self.model = model._module.eval() if hasattr(model, "_module") else model.eval()
        if accounted_steps(engine) != plan["steps"]:
            raise ModelError(f"dp_autoregressive: DP-SGD accounted {accounted_steps(engine)} steps, not the "
                             f"{plan['steps']} of its step budget; the model is discarded")
        epsilon_sgd = float(engine.get_epsilon(self.stats["dp_delta"]))  # the accountant's value for the steps taken
        spent = epsilon_sgd + s["epsilon"] * s["discretization_share"]
        self.stats.update(epochs=plan["epochs"], steps=plan["steps"], sample_rate=plan["sample_rate"],
                          noise_multiplier=plan["noise_multiplier"], epsilon_sgd=epsilon_sgd,
                          train_loss=round(loss_value, 4), val_loss=None,
                          epsilon_spent=float(spent), train_seconds=round(time.perf_counter() - started, 2),
                          # for the privacy ledger's RDP composition: DP-SGD's history, and the pure-DP discretization
                          rdp_history=[[float(x) for x in step] for step in getattr(engine.accountant, "history", [])],
                          rdp_delta=self.stats["dp_delta"], rdp_epsilon_other=s["epsilon"] * s["discretization_share"],
                          rdp_delta_other=0.0)


def _numeric_bound(value, sdtype: str) -> float:
    from genesis_pipelines.engine.synthesis.transform import as_numbers
    return float(as_numbers(pd.Series([value]), sdtype)[0])
