"""Choosing the torch device: CUDA when available, else CPU, same code path."""

from __future__ import annotations

import torch


def resolve_device(setting: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; an explicit 'cuda' without a GPU is an error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"DIKKAT_DEVICE={setting} but no CUDA device is available")
    return device
