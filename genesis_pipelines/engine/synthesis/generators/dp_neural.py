"""Differentially private CTGAN and TVAE: DP-SGD through Opacus (RDP accountant) plus a leak-free encoding.

What reads the real rows, and under which guarantee:
- the network weights: DP-SGD with per-sample clipping and Gaussian noise calibrated by Opacus to the SGD share
  of (epsilon, delta). DP-TVAE trains encoder and decoder privately; DP-CTGAN trains the discriminator privately
  and the generator only sees discriminator outputs (post-processing). PacGAN packing, the conditional vector
  (training-by-sampling is not a Poisson sample) and the gradient penalty are dropped: DP-CTGAN uses the plain
  GAN loss, as in DP-GAN / Opacus' DCGAN example.
- the encoding (data_transformer in private mode): bounds and category sets from the settings (public), or from
  dp_mechanisms with the preprocessing share of the budget; min-max scaling inside the bounds instead of a
  mixture; every column gets a null output, so even the presence of nulls is not read.
- nothing else: no early stopping or validation split (they would read real rows outside DP-SGD); free text is
  generated from a data-independent length profile.
The row count, column names and semantic types (the schema) are treated as public.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
import time
import warnings
from typing import ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from genesis_pipelines.engine.core.errors import GenesisError, ModelError
from genesis_pipelines.engine.core.schema import TableMeta
from genesis_pipelines.engine.synthesis.generators.base import register
from genesis_pipelines.engine.synthesis.generators.ctgan import CTGANGenerator, Discriminator
from genesis_pipelines.engine.synthesis.generators.data_transformer import DataTransformer
from genesis_pipelines.engine.synthesis.generators.dp_domain import default_delta
from genesis_pipelines.engine.synthesis.generators.neural import LOG
from genesis_pipelines.engine.synthesis.generators.tvae import TVAEGenerator


@functools.lru_cache(maxsize=256)
def noise_multiplier(target_epsilon: float, target_delta: float, sample_rate: float, steps: int) -> float:
    """Opacus' RDP noise search for a step budget (a deterministic bisection, seconds of CPU): cached, so a model
    trained again with the same settings and row count does not search again."""
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=target_delta,
                                          sample_rate=sample_rate, steps=steps, accountant="rdp"))


def dp_sgd_private(module: nn.Module, optimizer, loader: DataLoader, *, epochs: int, steps: int | None,
                   target_epsilon: float, target_delta: float, max_grad_norm: float):
    """Opacus DP-SGD (RDP accountant) for a step budget: `steps` Poisson-sampled batches (sample rate 1 / batches per
    epoch, as Opacus sets it), or `epochs` x batches per epoch when steps is None; the noise multiplier is calibrated
    for exactly that many steps, so the accountant's epsilon after them is at most the target (within Opacus'
    0.01 tolerance below it). Returns (engine, module, optimizer, loader, plan); the plan is public (it depends on
    the row count, the schema and the settings only)."""
    from opacus import PrivacyEngine  # imported here: only the DP generators need it

    batches = len(loader)
    planned = int(steps) if steps is not None else int(epochs) * batches
    if planned < 1:
        raise GenesisError("DP-SGD: the step budget must be at least one step")
    sample_rate = 1.0 / batches
    noise = noise_multiplier(float(target_epsilon), float(target_delta), sample_rate, planned)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # secure RNG and functorch notices
        engine = PrivacyEngine(accountant="rdp")
        module, optimizer, loader = engine.make_private(module=module, optimizer=optimizer, data_loader=loader,
                                                        noise_multiplier=noise, max_grad_norm=max_grad_norm)
    plan = {"steps": planned, "sample_rate": sample_rate, "noise_multiplier": noise, "batches_per_epoch": batches,
            "epochs": math.ceil(planned / batches)}
    return engine, module, optimizer, loader, plan


def dp_sgd_epoch(loader: DataLoader, plan: dict, epoch: int):
    """The batches of one epoch of the step budget: all of them, and in the last epoch only those left."""
    return itertools.islice(loader, max(0, min(plan["batches_per_epoch"], plan["steps"] - epoch * plan["batches_per_epoch"])))


def charge_skipped_step(engine, plan: dict) -> None:
    """A sampled batch too small to train on still counts: the accountant is charged one step for it."""
    engine.accountant.step(noise_multiplier=plan["noise_multiplier"], sample_rate=plan["sample_rate"])


def accounted_steps(engine) -> int:
    return int(sum(step[2] for step in getattr(engine.accountant, "history", [])))


class DifferentialPrivacy:
    """Budget bookkeeping shared by the DP generators (a mixin in front of the plain generator)."""

    private: ClassVar[bool] = True

    def _init_dp(self, epsilon, delta, max_grad_norm, bounds, categories, preprocessing_share, steps) -> None:
        if not epsilon or epsilon <= 0:
            raise GenesisError(f"generator {self.name!r}: epsilon must be > 0")
        if delta is not None and not 0 < delta < 1:
            raise GenesisError(f"generator {self.name!r}: delta must be in (0, 1)")
        if not 0 < preprocessing_share < 1:
            raise GenesisError(f"generator {self.name!r}: preprocessing_share must be in (0, 1)")
        self.epsilon, self.delta, self.max_grad_norm = float(epsilon), delta, float(max_grad_norm)
        self.bounds, self.categories = dict(bounds or {}), dict(categories or {})
        self.preprocessing_share = float(preprocessing_share)
        if steps is not None and int(steps) < 1:
            raise GenesisError(f"generator {self.name!r}: steps (the DP-SGD step budget) must be >= 1")
        self.steps = None if steps is None else int(steps)  # None: epochs x batches per epoch
        self.plan: dict = {}
        self.patience = None  # early stopping would read held-out real rows outside DP-SGD
        self.privacy: dict = {}

    def _dp_hyperparameters(self) -> dict:
        return {"epsilon": self.epsilon, "delta": self.delta, "max_grad_norm": self.max_grad_norm,
                "bounds": self.bounds, "categories": self.categories, "preprocessing_share": self.preprocessing_share,
                "steps": self.steps}

    def _fit_transformer(self, table, meta: TableMeta, seed: int) -> DataTransformer:
        delta = self.delta if self.delta is not None else default_delta(len(table))
        columns = [c for c in table.columns if c in meta.columns and meta.columns[c].sdtype != "id"]
        need = DataTransformer.columns_needing_dp(meta, columns, self.bounds, self.categories)
        needs_delta = any(DataTransformer.is_discrete(c, meta, None, True, self.categories) for c in need)
        eps_pre = self.epsilon * self.preprocessing_share if need else 0.0
        delta_pre = delta * self.preprocessing_share if needs_delta else 0.0
        if need:
            LOG.warning("%s on table %s: %d column(s) have no bounds / categories in the settings; they are estimated with "
                        "epsilon %.4g each (give them in the spec for better fidelity)", self.name, meta.name, len(need),
                        eps_pre / len(need))
        transformer = DataTransformer().fit(table, meta, seed=seed, private=True, bounds=self.bounds,
                                            categories=self.categories, epsilon=eps_pre, delta=delta_pre)
        self.privacy = {"epsilon_target": self.epsilon, "delta_target": delta, "epsilon_preprocessing": eps_pre,
                        "delta_preprocessing": delta_pre, "epsilon_sgd_target": self.epsilon - eps_pre,
                        "delta_sgd": delta - delta_pre, "dp_estimated_columns": need,
                        "public_columns": [c for c in columns if c not in need]}
        return transformer

    def _private(self, module: nn.Module, optimizer, matrix: torch.Tensor, batch: int):
        loader = DataLoader(TensorDataset(matrix.detach().cpu()), batch_size=batch)
        engine, module, optimizer, loader, self.plan = dp_sgd_private(
            module, optimizer, loader, epochs=self.epochs, steps=self.steps,
            target_epsilon=self.privacy["epsilon_sgd_target"], target_delta=self.privacy["delta_sgd"],
            max_grad_norm=self.max_grad_norm)
        self.privacy["noise_multiplier"] = round(self.plan["noise_multiplier"], 5)
        self.privacy["sample_rate"] = round(self.plan["sample_rate"], 6)
        self.privacy["steps"] = self.plan["steps"]
        return engine, module, optimizer, loader

    def _dp_bar(self, table_name: str):
        show = self.progress and sys.stderr.isatty()
        return tqdm(range(self.plan["epochs"]), desc=f"{self.name} {table_name}", unit="epoch", disable=not show, leave=False)

    def _account(self, engine, table_name: str) -> None:
        if accounted_steps(engine) != self.plan["steps"]:  # the budget is a number of steps: never more, never fewer
            raise ModelError(f"table {table_name!r}: DP-SGD accounted {accounted_steps(engine)} steps, not the "
                             f"{self.plan['steps']} of its step budget; the model is discarded")
        spent_sgd = float(engine.get_epsilon(self.privacy["delta_sgd"]))
        if spent_sgd > self.privacy["epsilon_sgd_target"] + 1e-9:
            raise ModelError(f"table {table_name!r}: DP-SGD spent epsilon {spent_sgd:.4f} above its target "
                             f"{self.privacy['epsilon_sgd_target']:.4f}; the model is discarded")
        self.privacy.update({
            "epsilon_sgd": spent_sgd,  # the accountant's own value for the steps taken
            "epsilon_spent": round(spent_sgd + self.privacy["epsilon_preprocessing"], 6),
            "delta_spent": self.privacy["delta_sgd"] + self.privacy["delta_preprocessing"],
            "accountant": "rdp (opacus)", "max_grad_norm": self.max_grad_norm,
            # (noise multiplier, sample rate, steps): lets the privacy ledger compose several trainings by RDP
            "rdp_history": [[float(x) for x in step] for step in getattr(engine.accountant, "history", [])],
        })
        if self.privacy["epsilon_spent"] > self.epsilon + 1e-9:
            raise ModelError(f"table {table_name!r}: total epsilon above the target; the model is discarded")

    def _guarantee(self, trained: str) -> str:
        p = self.privacy
        return (f"({p['epsilon_spent']:.4g}, {p['delta_spent']:.3g})-differential privacy for adding or removing one row "
                f"of this table, by basic composition of: DP-SGD on {trained} ({p['steps']} steps, Poisson sample rate "
                f"{p['sample_rate']:.4g}, noise multiplier {p['noise_multiplier']:.4g}; Opacus, RDP accountant, epsilon "
                f"{p['epsilon_sgd']:.4g}, delta {p['delta_sgd']:.3g}, clipping norm {self.max_grad_norm}); "
                f"DP estimates of bounds / category sets for {len(p['dp_estimated_columns'])} column(s) (epsilon "
                f"{p['epsilon_preprocessing']:.4g}, delta {p['delta_preprocessing']:.3g}); bounds and categories of the other "
                f"columns come from the settings and are public. Not covered: the row count, column names and semantic "
                f"types, which are treated as public. Sampling is post-processing and spends nothing more.")

    def _dp_extra(self) -> dict:
        return {"privacy": self.privacy}

    def _dp_restore(self, extra: dict) -> None:
        self.privacy = extra.get("privacy", {})

    def _dp_describe(self, out: dict, trained: str) -> dict:
        if self.privacy.get("epsilon_spent") is not None:
            out.update({k: v for k, v in self.privacy.items() if k not in ("public_columns",)})
            out["dp_guarantee"] = self._guarantee(trained)
        return out


def _quiet(epochs):
    """Opacus' hooks make torch warn on every backward that no input needs a gradient: expected here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ff]ull backward hook.*")
        yield from epochs


def _release(module, optimizer) -> None:
    """Drop Opacus hooks and per-sample gradients so the trained weights behave like a plain module."""
    module.remove_hooks() if hasattr(module, "remove_hooks") else None
    optimizer.zero_grad(set_to_none=True)


@register
class DPTVAEGenerator(DifferentialPrivacy, TVAEGenerator):
    name: ClassVar[str] = "dp_tvae"
    format: ClassVar[str] = "genesis.dp_tvae/2"  # 2: TVAE's sigma, not log sigma

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None, max_grad_norm: float = 1.0,
                 bounds: dict | None = None, categories: dict | None = None, preprocessing_share: float = 0.1,
                 steps: int | None = None, **settings):
        settings["patience"] = None
        super().__init__(**settings)
        self._init_dp(epsilon, delta, max_grad_norm, bounds, categories, preprocessing_share, steps)

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), **self._dp_hyperparameters()}

    def _train(self, matrix: torch.Tensor, *, table_name: str, seed: int) -> None:
        vae = self._build_vae().to(matrix.device)
        batch = min(self.batch_size, len(matrix))
        optimizer = torch.optim.Adam(vae.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        engine, private_vae, optimizer, loader = self._private(vae, optimizer, matrix, batch)
        started, history = time.perf_counter(), []
        bar = self._dp_bar(table_name)
        for epoch in _quiet(bar):
            private_vae.train()
            total, steps = 0.0, 0
            for (x,) in dp_sgd_epoch(loader, self.plan, epoch):
                if len(x) == 0:
                    charge_skipped_step(engine, self.plan)
                    continue
                loss = private_vae(x.to(matrix.device)).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                vae.decoder.clamp_sigma_()  # post-processing of the released weights: no privacy cost
                total, steps = total + float(loss.detach()), steps + 1
            history.append({"loss": total / max(steps, 1)})
            self._log_epoch(bar, epoch, history[-1])
        bar.close()
        _release(private_vae, optimizer)
        self._account(engine, table_name)
        self.net = vae.decoder
        self.training = {"epochs_run": self.plan["epochs"], "steps_run": self.plan["steps"], "early_stopped": False,
                         "final_losses": {"loss": round(history[-1]["loss"], 5)}, "batch_size": batch,
                         "seconds_per_epoch": round((time.perf_counter() - started) / self.plan["epochs"], 4)}

    def _extra_state(self) -> dict:
        return self._dp_extra()

    def _restore_extra(self, extra: dict) -> None:
        self._dp_restore(extra)

    def describe(self) -> dict:
        return self._dp_describe(super().describe(), "every weight of the encoder and decoder")


@register
class DPCTGANGenerator(DifferentialPrivacy, CTGANGenerator):
    name: ClassVar[str] = "dp_ctgan"
    format: ClassVar[str] = "genesis.dp_ctgan/1"

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None, max_grad_norm: float = 1.0,
                 bounds: dict | None = None, categories: dict | None = None, preprocessing_share: float = 0.1,
                 steps: int | None = None, **settings):
        settings.update(patience=None, pac=1, gradient_penalty=0.0)
        super().__init__(**settings)
        self.conditional = False
        self._init_dp(epsilon, delta, max_grad_norm, bounds, categories, preprocessing_share, steps)

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), **self._dp_hyperparameters()}

    def _train(self, matrix: torch.Tensor, *, table_name: str, seed: int) -> None:
        device = matrix.device
        self.net = self._build_sampling_net().to(device)
        critic = Discriminator(self.transformer.dim, self.discriminator_dim, pac=1).to(device)
        batch = min(self.batch_size, len(matrix))
        opt_g = torch.optim.Adam(self.net.generator.parameters(), lr=self.generator_lr, betas=(0.5, 0.9), weight_decay=self.weight_decay)
        opt_d = torch.optim.Adam(critic.parameters(), lr=self.discriminator_lr, betas=(0.5, 0.9), weight_decay=self.weight_decay)
        engine, private_critic, opt_d, loader = self._private(critic, opt_d, matrix, batch)
        bce = nn.BCEWithLogitsLoss()
        empty = torch.zeros((0, 0), device=device)
        started, history = time.perf_counter(), []
        bar = self._dp_bar(table_name)
        for epoch in _quiet(bar):
            self.net.train()
            private_critic.train()
            d_total = g_total = 0.0
            steps = 0
            for (real,) in dp_sgd_epoch(loader, self.plan, epoch):
                b = len(real)
                if b < 2:  # the generator's batch norm needs two rows; a Poisson batch this small is vanishingly rare
                    charge_skipped_step(engine, self.plan)
                    continue
                real = real.to(device)
                cond = empty.new_zeros((b, 0))
                with torch.no_grad():
                    fake = self._activate(self.net.generator(self._noise(b, cond, device)))
                # two passes of equal size: Opacus sums row i's real and fake gradients, then clips per row
                loss_d = bce(private_critic(real), torch.ones((b, 1), device=device)) + \
                    bce(private_critic(fake), torch.zeros((b, 1), device=device))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                private_critic.disable_hooks()
                loss_g = bce(private_critic(self._activate(self.net.generator(self._noise(b, cond, device)))),
                             torch.ones((b, 1), device=device))
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                opt_d.zero_grad(set_to_none=True)
                private_critic.enable_hooks()
                d_total, g_total, steps = d_total + float(loss_d.detach()), g_total + float(loss_g.detach()), steps + 1
            history.append({"generator_loss": g_total / max(steps, 1), "discriminator_loss": d_total / max(steps, 1)})
            self._log_epoch(bar, epoch, history[-1])
        bar.close()
        _release(private_critic, opt_d)
        self._account(engine, table_name)
        self.training = {"epochs_run": self.plan["epochs"], "steps_run": self.plan["steps"], "early_stopped": False,
                         "final_losses": {k: round(v, 5) for k, v in history[-1].items()},
                         "batch_size": batch, "seconds_per_epoch": round((time.perf_counter() - started) / self.plan["epochs"], 4)}

    def _extra_state(self) -> dict:
        return {**super()._extra_state(), **self._dp_extra()}

    def _restore_extra(self, extra: dict) -> None:
        super()._restore_extra(extra)
        self.conditional = False
        self._dp_restore(extra)

    def describe(self) -> dict:
        return self._dp_describe(super().describe(), "the discriminator (the generator learns only from its outputs)")
