"""CTGAN (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN"), written for this project in torch.

Conditional vector with training-by-sampling (each step picks a discrete column uniformly and a category by
log-frequency, then real rows holding it), PacGAN discriminator, WGAN-GP loss, residual generator, Gumbel-softmax
outputs. The hot path is vectorised: one segment-wise softmax for every discrete output, one gather for the
conditional loss, and the training-by-sampling draws for a whole epoch at once.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.synthesis.generators.base import register
from genesis_pipelines.engine.synthesis.generators.neural import EarlyStopping, NeuralGenerator, adam, gumbel

VALIDATION_ROWS = 2000


class Residual(nn.Module):
    def __init__(self, i: int, o: int):
        super().__init__()
        self.fc, self.bn = nn.Linear(i, o), nn.BatchNorm1d(o)

    def forward(self, x):
        return torch.cat([torch.relu(self.bn(self.fc(x))), x], dim=1)


class ResidualGenerator(nn.Module):
    def __init__(self, input_dim: int, hidden: tuple[int, ...], data_dim: int):
        super().__init__()
        layers, dim = [], input_dim
        for width in hidden:
            layers.append(Residual(dim, width))
            dim += width
        self.body = nn.Sequential(*layers, nn.Linear(dim, data_dim))

    def forward(self, x):
        return self.body(x)


class Discriminator(nn.Module):
    def __init__(self, input_dim: int, hidden: tuple[int, ...], pac: int):
        super().__init__()
        self.pac = pac
        layers, dim = [], input_dim * pac
        for width in hidden:
            layers += [nn.Linear(dim, width), nn.LeakyReLU(0.2), nn.Dropout(0.5)]
            dim = width
        self.body = nn.Sequential(*layers, nn.Linear(dim, 1))

    def forward(self, x):
        return self.body(x.reshape(-1, x.shape[1] * self.pac))


class ConditionSampler:
    """Training-by-sampling over the discrete columns, vectorised with numpy."""

    def __init__(self, matrix: np.ndarray, spans, freqs: list[np.ndarray]):
        self.widths = np.asarray([s.width for s in spans])
        self.offsets = np.concatenate([[0], np.cumsum(self.widths)])  # global category id = offsets[k] + code
        self.dims = np.concatenate([np.arange(s.start, s.start + s.width) for s in spans])  # id -> data dim
        self.n_columns, self.n_categories = len(spans), int(self.offsets[-1])
        codes = np.stack([matrix[:, s.start:s.start + s.width].argmax(axis=1) for s in spans], axis=1)
        ids = codes + self.offsets[:-1]
        # rows sorted by category id, per column; start and count of each id's block
        self.rows = np.concatenate([np.argsort(ids[:, k], kind="stable") for k in range(self.n_columns)])
        self.counts = np.bincount(ids.ravel(), minlength=self.n_categories)
        self.starts = np.empty(self.n_categories, dtype="int64")
        for k in range(self.n_columns):
            block = self.counts[self.offsets[k]:self.offsets[k + 1]]
            self.starts[self.offsets[k]:self.offsets[k + 1]] = k * len(matrix) + np.concatenate([[0], np.cumsum(block)[:-1]])
        counts = self.counts
        self.train_cum = self._cumulative(np.log1p(counts.astype("float64")))
        self.sample_cum = self._cumulative(np.concatenate(freqs).astype("float64") if freqs else counts.astype("float64"))

    def _cumulative(self, weights: np.ndarray) -> np.ndarray:
        """Column k's categories own (k, k + 1), split by weight: one searchsorted draws for every row."""
        cum = np.empty(self.n_categories)
        for k in range(self.n_columns):
            w = weights[self.offsets[k]:self.offsets[k + 1]]
            w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))
            cum[self.offsets[k]:self.offsets[k + 1]] = k + np.cumsum(w)
        return cum

    def _draw_ids(self, n: int, cum: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        column = rng.integers(0, self.n_columns, n)
        ids = np.searchsorted(cum, column + rng.random(n), side="right")
        return np.clip(ids, self.offsets[column], self.offsets[column + 1] - 1)

    def training_batch(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Category ids (for the conditional vector) and real rows that hold them."""
        ids = self._draw_ids(n, self.train_cum, rng)
        rows = self.rows[self.starts[ids] + (rng.random(n) * self.counts[ids]).astype("int64")]
        return ids, rows

    def sampling_ids(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._draw_ids(n, self.sample_cum, rng)


class CTGANNet(nn.Module):
    """What sampling needs: the generator and the fixed conditional-vector tables."""

    def __init__(self, embedding_dim: int, cond_dim: int, hidden: tuple[int, ...], data_dim: int):
        super().__init__()
        self.embedding_dim, self.cond_dim = embedding_dim, cond_dim
        self.generator = ResidualGenerator(embedding_dim + cond_dim, hidden, data_dim)
        self.register_buffer("sample_cum", torch.zeros(0, dtype=torch.float64))


@register
class CTGANGenerator(NeuralGenerator):
    name: ClassVar[str] = "ctgan"
    format: ClassVar[str] = "genesis.ctgan/1"

    def __init__(self, *, epochs: int = 300, batch_size: int = 500, embedding_dim: int = 128,
                 generator_dim: tuple[int, ...] | list[int] = (256, 256), discriminator_dim: tuple[int, ...] | list[int] = (256, 256),
                 generator_lr: float = 2e-4, discriminator_lr: float = 2e-4, weight_decay: float = 1e-6,
                 discriminator_steps: int = 1, pac: int = 10, tau: float = 0.2, gradient_penalty: float = 10.0,
                 patience: int | None = 10, progress: bool = True, threads: int | None = None, max_condition_tries: int = 20):
        super().__init__(epochs=epochs, batch_size=batch_size, patience=patience, progress=progress, threads=threads,
                         max_condition_tries=max_condition_tries)
        self.embedding_dim, self.generator_dim, self.discriminator_dim = int(embedding_dim), tuple(generator_dim), tuple(discriminator_dim)
        self.generator_lr, self.discriminator_lr, self.weight_decay = float(generator_lr), float(discriminator_lr), float(weight_decay)
        self.discriminator_steps, self.pac, self.tau, self.gradient_penalty = int(discriminator_steps), int(pac), float(tau), float(gradient_penalty)
        if self.pac < 1 or self.batch_size < self.pac:
            raise GenesisError(f"generator {self.name!r}: pac must be >= 1 and at most batch_size")
        self.conditional = True
        self.sampler_info: dict | None = None  # JSON: category offsets and data dims of the conditional vector

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "embedding_dim": self.embedding_dim, "generator_dim": list(self.generator_dim),
                "discriminator_dim": list(self.discriminator_dim), "generator_lr": self.generator_lr,
                "discriminator_lr": self.discriminator_lr, "weight_decay": self.weight_decay,
                "discriminator_steps": self.discriminator_steps, "pac": self.pac, "tau": self.tau,
                "gradient_penalty": self.gradient_penalty}

    # -------------------------------------------------------------- building

    def _cond_dim(self) -> int:
        return sum(s.width for s in self.transformer.category_spans) if self.conditional else 0

    def _build_sampling_net(self) -> CTGANNet:
        net = CTGANNet(self.embedding_dim, self._cond_dim(), self.generator_dim, self.transformer.dim)
        if self.sampler_info:
            net.sample_cum = torch.as_tensor(self.sampler_info["sample_cum"], dtype=torch.float64)
        return net

    def _extra_state(self) -> dict:
        return {"sampler": self.sampler_info, "conditional": self.conditional}

    def _restore_extra(self, extra: dict) -> None:
        self.sampler_info, self.conditional = extra.get("sampler"), extra.get("conditional", True)

    def _activate(self, raw: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        layout = self.layout
        logits = raw[:, layout.soft]
        soft = layout.log_softmax((logits + gumbel(logits.shape, raw.device, generator)) / self.tau).exp()
        return layout.combine(torch.tanh(raw[:, layout.tanh]), soft)

    def _cond_loss(self, raw: torch.Tensor, target_dims: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the conditioned column's output against the asked category."""
        logp = torch.zeros_like(raw)
        logp = logp.index_copy(1, self.layout.soft, self.layout.log_softmax(raw[:, self.layout.soft]))
        return -logp.gather(1, target_dims[:, None]).mean()

    # -------------------------------------------------------------- training

    def _train(self, matrix: torch.Tensor, *, table_name: str, seed: int) -> None:
        rng = np.random.default_rng([seed, 3])
        device, n = matrix.device, len(matrix)
        spans = self.transformer.category_spans if self.conditional else []
        sampler = None
        if spans:
            freqs = [np.asarray(self.transformer.codecs[s.column]["freqs"], dtype="float64") for s in spans]
            if any(len(f) != s.width for f, s in zip(freqs, spans)):
                freqs = []
            sampler = ConditionSampler(matrix.cpu().numpy(), spans, freqs)
            self.sampler_info = {"sample_cum": sampler.sample_cum.tolist(), "offsets": sampler.offsets.tolist(),
                                 "dims": sampler.dims.tolist()}
        self.net = self._build_sampling_net().to(device)
        cond_dim = self._cond_dim()
        batch = max(self.pac, (min(self.batch_size, max(n, self.pac)) // self.pac) * self.pac)
        critic = Discriminator(self.transformer.dim + cond_dim, self.discriminator_dim, self.pac).to(device)
        opt_g = adam(self.net.generator.parameters(), lr=self.generator_lr, betas=(0.5, 0.9), weight_decay=self.weight_decay)
        opt_d = adam(critic.parameters(), lr=self.discriminator_lr, betas=(0.5, 0.9), weight_decay=self.weight_decay)
        cond_dims = torch.as_tensor(sampler.dims, device=device) if sampler else None
        reference = matrix[torch.as_tensor(rng.permutation(n)[:VALIDATION_ROWS], device=device)]
        stopper = EarlyStopping(self.patience)
        steps = max(1, n // batch)
        history, epochs_run = [], 0
        bar = self._epochs(table_name)
        epoch_started = time.perf_counter()
        for epoch in bar:
            self.net.train()
            critic.train()
            d_total = g_total = 0.0
            for _ in range(steps):
                for _ in range(self.discriminator_steps):
                    cond, rows, _ = self._training_cond(sampler, batch, rng, device, cond_dims)
                    real = matrix[rows] if rows is not None else matrix[torch.randint(0, n, (batch,), device=device)]
                    with torch.no_grad():
                        fake = self._activate(self.net.generator(self._noise(batch, cond, device)))
                    real_in, fake_in = torch.cat([real, cond], 1), torch.cat([fake, cond], 1)
                    loss_d = critic(fake_in).mean() - critic(real_in).mean() + self._penalty(critic, real_in, fake_in)
                    opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    opt_d.step()
                cond, _, targets = self._training_cond(sampler, batch, rng, device, cond_dims, need_rows=False)
                raw = self.net.generator(self._noise(batch, cond, device))
                critic.requires_grad_(False)  # the generator step needs no critic weight gradients
                loss_g = -critic(torch.cat([self._activate(raw), cond], 1)).mean()
                if targets is not None:
                    loss_g = loss_g + self._cond_loss(raw, targets)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                critic.requires_grad_(True)
                d_total += float(loss_d.detach())
                g_total += float(loss_g.detach())
            epochs_run = epoch + 1
            fidelity = self._fidelity_gap(reference, seed + epoch) if self.patience is not None else float("nan")
            losses = {"generator_loss": g_total / steps, "discriminator_loss": d_total / steps, "fidelity_gap": fidelity}
            history.append(losses)
            self._log_epoch(bar, epoch, losses)
            if stopper.update(fidelity, epoch, self.net):
                break
        bar.close()
        stopper.restore(self.net)
        self.training = {"epochs_run": epochs_run, "best_epoch": stopper.best_epoch + 1 if stopper.best_state else epochs_run,
                         "early_stopped": epochs_run < self.epochs, "final_losses": {k: round(v, 5) for k, v in history[-1].items()},
                         "steps_per_epoch": steps, "batch_size": batch,
                         "seconds_per_epoch": round((time.perf_counter() - epoch_started) / max(epochs_run, 1), 4)}

    def _noise(self, n: int, cond: torch.Tensor, device, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn((n, self.embedding_dim), device=device, generator=generator)
        return torch.cat([z, cond], 1) if cond.shape[1] else z

    def _training_cond(self, sampler, n, rng, device, cond_dims, need_rows: bool = True):
        if sampler is None:
            return torch.zeros((n, 0), device=device), None, None
        ids, rows = sampler.training_batch(n, rng)
        ids_t = torch.as_tensor(ids, device=device)
        cond = torch.zeros((n, sampler.n_categories), device=device)
        cond[torch.arange(n, device=device), ids_t] = 1.0
        return cond, torch.as_tensor(rows, device=device) if need_rows else None, cond_dims[ids_t]

    def _penalty(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        if self.gradient_penalty <= 0:
            return torch.zeros((), device=real.device)
        alpha = torch.rand((len(real) // self.pac, 1, 1), device=real.device).expand(-1, self.pac, 1).reshape(-1, 1)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        grad = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)[0]
        norms = grad.reshape(-1, self.pac * real.shape[1]).norm(2, dim=1)
        return self.gradient_penalty * ((norms - 1) ** 2).mean()

    @torch.no_grad()
    def _fidelity_gap(self, reference: torch.Tensor, seed: int) -> float:
        """Cheap fidelity proxy: mean total-variation gap of every softmax span and quantile gap of every scalar."""
        self.net.eval()
        generated = self._generate(len(reference), self._torch_generator(seed), None)
        self.net.train()
        gaps = []
        layout = self.layout
        if len(layout.tanh):
            q = torch.linspace(0, 1, 21, device=reference.device)
            real_q = torch.quantile(reference[:, layout.tanh], q, dim=0)
            fake_q = torch.quantile(generated[:, layout.tanh], q, dim=0)
            gaps.append((real_q - fake_q).abs().mean(0) / 2)
        for span in self.transformer.softmax_spans:
            real_f = torch.bincount(reference[:, span.start:span.start + span.width].argmax(1), minlength=span.width).float()
            fake_f = torch.bincount(generated[:, span.start:span.start + span.width].argmax(1), minlength=span.width).float()
            gaps.append((0.5 * (real_f / len(reference) - fake_f / len(generated)).abs().sum())[None])
        return float(torch.cat(gaps).mean()) if gaps else 0.0

    # -------------------------------------------------------------- sampling

    def _generate(self, n: int, generator: torch.Generator, condition) -> torch.Tensor:
        device = self.device
        cond_dim = self._cond_dim()
        cond = torch.zeros((n, cond_dim), device=device)
        if cond_dim and n:
            if condition is not None:
                span, code = condition
                offsets = self.sampler_info["offsets"]
                k = [s.start for s in self.transformer.category_spans].index(span.start)
                cond[:, offsets[k] + code] = 1.0
            else:
                cum = self.net.sample_cum.to(device)
                n_columns = len(self.transformer.category_spans)
                column = torch.randint(0, n_columns, (n,), device=device, generator=generator)
                u = torch.rand(n, device=device, generator=generator, dtype=torch.float64)
                ids = torch.searchsorted(cum, column.double() + u, right=True)
                offsets = torch.as_tensor(self.sampler_info["offsets"], device=device)
                ids = torch.minimum(torch.maximum(ids, offsets[column]), offsets[column + 1] - 1)
                cond[torch.arange(n, device=device), ids] = 1.0
        raw = self.net.generator(self._noise(n, cond, device, generator))
        return self._activate(raw, generator)
