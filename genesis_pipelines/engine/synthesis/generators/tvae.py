"""TVAE (Xu et al. 2019): a variational autoencoder over the mode-specific encoding, written for this project.

Gaussian likelihood with a learned scale for every tanh scalar (sigma itself is the parameter, kept in [0.01, 1]),
cross-entropy for every softmax span (one segment-wise log-softmax for all of them), KL to a standard normal prior.
Early stopping on the loss of a held-out share of the training rows. Sampling needs only the decoder and the scales:
scalars get their sigma's noise, and every softmax span (category, mode, null) is drawn from its categorical rather
than read by argmax, which would never emit a rare category or a minor mode.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from genesis_pipelines.engine.synthesis.generators.base import register
from genesis_pipelines.engine.synthesis.generators.neural import (
    EarlyStopping,
    NeuralGenerator,
    SegmentLayout,
    adam,
    gumbel,
)

MIN_VALIDATION_ROWS = 50
SIGMA_INIT, SIGMA_MIN, SIGMA_MAX = 0.1, 0.01, 1.0


def _mlp(dims: list[int]) -> nn.Sequential:
    layers = []
    for i, o in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(i, o), nn.ReLU()]
    return nn.Sequential(*layers)


class Decoder(nn.Module):
    def __init__(self, embedding_dim: int, hidden: tuple[int, ...], data_dim: int, n_scalars: int):
        super().__init__()
        self.body = nn.Sequential(_mlp([embedding_dim, *hidden]), nn.Linear(hidden[-1] if hidden else embedding_dim, data_dim))
        # the scales come from a Linear on a constant input, so DP-SGD (per-sample gradients) covers them too.
        # Linear in sigma itself (not its log), as in the TVAE paper's code: Adam moves it by ~lr a step, so a scalar
        # that is reconstructed well reaches the 0.01 floor within a couple of epochs and its loss weight grows with it.
        self.sigma_head = nn.Linear(1, max(n_scalars, 1))
        nn.init.zeros_(self.sigma_head.weight)
        nn.init.constant_(self.sigma_head.bias, SIGMA_INIT)

    def sigma(self, n: int, device) -> torch.Tensor:
        return self.sigma_head(torch.ones((n, 1), device=device)).clamp(SIGMA_MIN, SIGMA_MAX)

    @torch.no_grad()
    def clamp_sigma_(self) -> None:
        """Keep sigma = weight + bias inside [SIGMA_MIN, SIGMA_MAX] after a step, so no scale sits where the clamp
        in `sigma` cuts its gradient."""
        head = self.sigma_head
        head.bias.copy_((head.weight[:, 0] + head.bias).clamp(SIGMA_MIN, SIGMA_MAX) - head.weight[:, 0])

    def forward(self, z):
        return self.body(z)


class VAE(nn.Module):
    """Encoder + decoder; forward returns the per-row loss (what DP-SGD clips per sample)."""

    def __init__(self, data_dim: int, embedding_dim: int, compress: tuple[int, ...], decompress: tuple[int, ...],
                 n_scalars: int, loss_factor: float):
        super().__init__()
        self.encoder = _mlp([data_dim, *compress])
        last = compress[-1] if compress else data_dim
        self.mu, self.logvar = nn.Linear(last, embedding_dim), nn.Linear(last, embedding_dim)
        self.decoder = Decoder(embedding_dim, decompress, data_dim, n_scalars)
        self.loss_factor = loss_factor
        self.layout: SegmentLayout | None = None

    def forward(self, x, deterministic: bool = False):
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu if deterministic else mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        out = self.decoder(z)
        layout = self.layout
        sigma = self.decoder.sigma(len(x), x.device)[:, : len(layout.tanh)]
        scalar = (((x[:, layout.tanh] - torch.tanh(out[:, layout.tanh])) ** 2) / (2 * sigma ** 2) + sigma.log()).sum(1)
        categorical = -(x[:, layout.soft] * layout.log_softmax(out[:, layout.soft])).sum(1)
        kld = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
        return self.loss_factor * (scalar + categorical) + kld


@register
class TVAEGenerator(NeuralGenerator):
    name: ClassVar[str] = "tvae"
    format: ClassVar[str] = "genesis.tvae/2"  # 2: sigma, not log sigma

    def __init__(self, *, epochs: int = 300, batch_size: int = 500, embedding_dim: int = 128,
                 compress_dims: tuple[int, ...] | list[int] = (128, 128), decompress_dims: tuple[int, ...] | list[int] = (128, 128),
                 lr: float = 1e-3, weight_decay: float = 1e-5, loss_factor: float = 2.0, validation_fraction: float = 0.1,
                 patience: int | None = 10, progress: bool = True, threads: int | None = None, max_condition_tries: int = 20):
        super().__init__(epochs=epochs, batch_size=batch_size, patience=patience, progress=progress, threads=threads,
                         max_condition_tries=max_condition_tries)
        self.embedding_dim, self.compress_dims, self.decompress_dims = int(embedding_dim), tuple(compress_dims), tuple(decompress_dims)
        self.lr, self.weight_decay, self.loss_factor = float(lr), float(weight_decay), float(loss_factor)
        self.validation_fraction = float(validation_fraction)

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "embedding_dim": self.embedding_dim, "compress_dims": list(self.compress_dims),
                "decompress_dims": list(self.decompress_dims), "lr": self.lr, "weight_decay": self.weight_decay,
                "loss_factor": self.loss_factor, "validation_fraction": self.validation_fraction}

    def _build_vae(self) -> VAE:
        vae = VAE(self.transformer.dim, self.embedding_dim, self.compress_dims, self.decompress_dims,
                  len(self.transformer.tanh_index), self.loss_factor)
        vae.layout = self.layout
        return vae

    def _build_sampling_net(self) -> Decoder:
        return Decoder(self.embedding_dim, self.decompress_dims, self.transformer.dim, len(self.transformer.tanh_index))

    def _split(self, matrix: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        n = len(matrix)
        n_val = int(n * self.validation_fraction) if self.patience is not None else 0
        if n_val < MIN_VALIDATION_ROWS:
            return matrix, None
        order = torch.as_tensor(np.random.default_rng([seed, 5]).permutation(n), device=matrix.device)
        return matrix[order[n_val:]], matrix[order[:n_val]]

    def _train(self, matrix: torch.Tensor, *, table_name: str, seed: int) -> None:
        train, validation = self._split(matrix, seed)
        vae = self._build_vae().to(matrix.device)
        optimizer = adam(vae.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        stopper = EarlyStopping(self.patience if validation is not None else None)
        batch = min(self.batch_size, len(train))
        steps = max(1, len(train) // batch)
        history, epochs_run = [], 0
        bar = self._epochs(table_name)
        started = time.perf_counter()
        for epoch in bar:
            vae.train()
            order = torch.randperm(len(train), device=matrix.device)
            total = 0.0
            for step in range(steps):
                loss = vae(train[order[step * batch:(step + 1) * batch]]).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                vae.decoder.clamp_sigma_()
                total += float(loss.detach())
            losses = {"loss": total / steps}
            if validation is not None:
                vae.eval()
                with torch.no_grad():
                    losses["validation_loss"] = float(vae(validation, deterministic=True).mean())
            epochs_run = epoch + 1
            history.append(losses)
            self._log_epoch(bar, epoch, losses)
            if validation is not None and stopper.update(losses["validation_loss"], epoch, vae):
                break
        bar.close()
        stopper.restore(vae)
        self.net = vae.decoder
        self.training = {"epochs_run": epochs_run, "best_epoch": stopper.best_epoch + 1 if stopper.best_state else epochs_run,
                         "early_stopped": epochs_run < self.epochs, "final_losses": {k: round(v, 5) for k, v in history[-1].items()},
                         "steps_per_epoch": steps, "batch_size": batch,
                         "seconds_per_epoch": round((time.perf_counter() - started) / max(epochs_run, 1), 4)}

    def _generate(self, n: int, generator: torch.Generator, condition) -> torch.Tensor:
        layout, device = self.layout, self.device
        out = self.net(torch.randn((n, self.embedding_dim), device=device, generator=generator))
        scalars = torch.tanh(out[:, layout.tanh])
        noise = torch.randn(scalars.shape, device=device, generator=generator)
        scalars = (scalars + noise * self.net.sigma(n, device)[:, : len(layout.tanh)]).clamp(-1, 1)
        # softmax spans: a draw from each categorical (Gumbel-max; the decoder's argmax then reads the draw)
        soft = out[:, layout.soft]
        return layout.combine(scalars, soft + gumbel(soft.shape, device, generator))
