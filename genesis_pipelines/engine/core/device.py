"""Which torch device trains the models, and what a training run cost (seconds, peak memory).

torch is imported lazily: the copula path and the Dagster definitions load without it.
"""

from __future__ import annotations

import logging
import re
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from genesis_pipelines.engine.core.errors import SpecError

TRAINING_LOGGER = "genesis_pipelines.training"  # generators log epoch losses here; the model asset forwards it
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return None
    return torch


def resolve_device(device: str = "auto") -> str:
    """`auto` -> `cuda` when a CUDA GPU is visible, else `cpu`; an explicit CUDA device must exist.

    `cpu`, and `auto` on a machine without an NVIDIA driver, answer without importing torch (~6 CPU s): a copula
    table's training step in its own process (the multiprocess executor, a pod per step) never loads it."""
    device = (device or "auto").strip().lower()
    if not _DEVICE.match(device):
        raise SpecError(f"device {device!r} is not one of auto, cpu, cuda, cuda:N")
    if not may_use_cuda(device):
        return "cpu"
    torch = _torch()
    has_cuda = bool(torch is not None and torch.cuda.is_available())
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device.startswith("cuda"):
        if not has_cuda:
            raise SpecError(f"device {device!r} was asked for, but no CUDA GPU is available here: use auto or cpu")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise SpecError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    return device


@dataclass
class TrainingCost:
    device: str
    seconds: float = 0.0
    peak_memory_bytes: int = 0
    memory_kind: str = field(default="")

    def as_metadata(self) -> dict:
        return {"device": self.device, "training_seconds": round(self.seconds, 2),
                "peak_memory_mib": round(self.peak_memory_bytes / 2**20, 1), "peak_memory_kind": self.memory_kind}


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # kilobytes on Linux, bytes on macOS


@contextmanager
def measure_training(device: str) -> Iterator[TrainingCost]:
    """Wall time and peak memory of the block: CUDA's max allocated on a GPU, the process's peak RSS on CPU.

    Peak RSS is the process's high-water mark since it started, so on CPU it bounds the training from above.
    """
    cost = TrainingCost(device=device)
    torch = _torch() if device.startswith("cuda") else None
    if torch is not None:
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - started
        if torch is not None:
            cost.peak_memory_bytes, cost.memory_kind = int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
        else:
            cost.peak_memory_bytes, cost.memory_kind = _peak_rss_bytes(), "process_peak_rss"


@contextmanager
def forward_training_log(emit) -> Iterator[None]:
    """Send records of the training logger to `emit(message)` (e.g. Dagster's context.log.info) for the block."""

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                emit(record.getMessage())
            except Exception:  # a logging failure must never fail training
                pass

    logger = logging.getLogger(TRAINING_LOGGER)
    handler = _Forward(level=logging.INFO)
    previous = logger.level
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def may_use_cuda(device: str = "auto") -> bool:
    """Whether training on this `device` setting may land on a GPU, without importing torch (for definitions load,
    where it decides the `gpu` pool): an explicit cuda device, or auto on a machine with an NVIDIA driver."""
    import os
    from pathlib import Path

    device = (device or "auto").strip().lower()
    if device.startswith("cuda"):
        return True
    if device != "auto" or os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists() or any(Path("/proc/driver/nvidia/gpus").glob("*"))
