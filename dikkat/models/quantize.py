"""Int8 weights for the frozen encoder on CPU: torch's dynamic quantization of every nn.Linear.

Each Linear keeps its weights as int8 (one scale per tensor) and quantizes its input at run time
with a scale taken from the whole batch, so a text's vector moves slightly with its batch-mates
(quantization noise: cosine about 0.98 to the fp32 vector on multilingual-e5-small). Embeddings,
LayerNorm and attention stay in float32. No new dependency: it is torch's own `torch.ao` path.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from torch import nn

__all__ = ["PRECISIONS", "Precision", "int8_supported", "quantize_int8"]

Precision = Literal["fp32", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "int8")


def int8_supported() -> bool:
    """Whether this torch build has a CPU int8 kernel engine (fbgemm/x86 or qnnpack on ARM)."""
    return any(engine != "none" for engine in torch.backends.quantized.supported_engines)


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replace every nn.Linear of a CPU model with its dynamically quantized int8 version, in
    place (the float weights are released), and return the model."""
    with warnings.catch_warnings():
        # torch announces a move of this API to torchao; it is still the one in torch itself
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated")
        warnings.filterwarnings("ignore", ".*quantized tensor creation functions")
        return torch.ao.quantization.quantize_dynamic(
            model, {nn.Linear}, dtype=torch.qint8, inplace=True
        )
