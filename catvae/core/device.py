"""Which device a command runs on, and whether it has fast bf16 arithmetic.

``accelerator=auto`` picks a CUDA GPU when one is present, else the CPU. bf16 mixed precision is
the default only where the hardware does bf16 matrix products natively (CUDA GPUs from Ampere on;
CPUs with AVX512-BF16 or AMX): there it trains about 1.5–2× faster than fp32 at the same quality
(see the README's performance section); elsewhere bf16 would be emulated and slower.
"""

from __future__ import annotations

import torch

from catvae.core.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda")


def resolve_device(accelerator: str = "auto", key: str = "trainer.accelerator") -> torch.device:
    """``auto`` → CUDA if available else CPU; ``gpu``/``cuda`` → CUDA (a ConfigError where there is none)."""
    if accelerator not in ACCELERATORS:
        raise ConfigError(key, accelerator, f"one of {', '.join(ACCELERATORS)}")
    if accelerator == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator == "auto":
        return torch.device("cpu")
    raise ConfigError(key, accelerator, "auto or cpu: this machine has no CUDA GPU")


def fast_bf16(device: torch.device) -> bool:
    """True where bf16 matrix products run natively (not emulated) on ``device``."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def auto_precision(accelerator: str = "auto") -> str:
    """Lightning's precision for ``trainer.precision=auto``: ``bf16-mixed`` where bf16 is fast, else ``32-true``."""
    try:
        device = resolve_device(accelerator)
    except ConfigError:
        return "32-true"  # the accelerator itself is refused where it is checked
    return "bf16-mixed" if fast_bf16(device) else "32-true"
