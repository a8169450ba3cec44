"""Device, seeds and precision of the neural methods.

* **Device**: CUDA when present, CPU otherwise (``select_device``).
* **Seeds**: ``seeded`` seeds torch for a block and restores the caller's random state.
* **Precision** (``precision``): ``auto`` = bf16 autocast on a GPU, float32 on the CPU
  (deterministic); ``bf16`` = bf16 autocast on either (on a CPU with AMX / AVX512-BF16 msml's
  cached training step ran 1.3x and inference 2x faster, ``results/msml_speed.md``; weights,
  optimizer state, losses and the state cache stay float32); ``fp32`` = float32 everywhere.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def select_device(device: str = "auto") -> torch.device:
    """``"auto"``: the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available; "
                         "use 'cpu' or 'auto'")
    return device


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Seed torch for the block and restore the caller's random state afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed) % 2**63)
        yield


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    return precision


def autocast(device: torch.device, precision: str = "auto"):
    """The autocast context of ``precision`` on ``device``: bf16 on a GPU unless "fp32";
    bf16 on the CPU only when asked ("bf16"); otherwise float32 (no context)."""
    kind = torch.device(device).type
    if check_precision(precision) == "fp32" or (kind != "cuda" and precision == "auto"):
        return contextlib.nullcontext()
    return torch.autocast(kind, dtype=torch.bfloat16)
