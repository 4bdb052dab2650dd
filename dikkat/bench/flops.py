"""What the encoder computes per text, and what the CPU could compute: achieved GFLOP/s against
the machine's fp32 peak.

FLOPs per text of T tokens through a BERT-like encoder of L layers, width d and N non-embedding
parameters: 2·N·T for the weight matrices (a multiply and an add per weight and token) plus
4·L·T²·d for attention's two T×T products (scores and the weighted sum). Embedding lookups,
softmax, LayerNorm and the small sentiment head are left out. The count is the useful work over a
text's own tokens: padding, and the masked cells of a packed row, are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EncoderShape", "fp32_peak"]

FMA_UNITS = 2  # fp32 FMA pipes per core assumed (Intel since Haswell, AMD since Zen 2)


@dataclass(frozen=True)
class EncoderShape:
    """The sizes of a BERT-like encoder that set its FLOPs, read from its transformers config."""

    layers: int
    hidden: int
    intermediate: int

    @classmethod
    def of(cls, config: Any) -> EncoderShape:
        hidden = int(config.hidden_size)
        return cls(
            layers=int(config.num_hidden_layers),
            hidden=hidden,
            intermediate=int(getattr(config, "intermediate_size", None) or 4 * hidden),
        )

    @property
    def non_embedding_params(self) -> int:
        """Weights and biases of every layer: Q, K, V, output, the two feed-forward matrices and
        two LayerNorms (multilingual-e5-small: 21.3M)."""
        d, ff = self.hidden, self.intermediate
        attention = 4 * (d * d + d)
        feed_forward = d * ff + ff + ff * d + d
        return self.layers * (attention + feed_forward + 2 * 2 * d)

    def flops_per_text(self, tokens: Sequence[int]) -> dict[str, float]:
        """Mean FLOPs per text over texts of these token counts: the linear part, attention's."""
        counts = np.asarray(tokens, dtype=np.float64)
        linear = 2.0 * self.non_embedding_params * float(counts.mean())
        attention = 4.0 * self.layers * self.hidden * float((counts**2).mean())
        return {"linear": linear, "attention": attention, "total": linear + attention}


def _cpuinfo() -> tuple[str, list[float], set[str]]:
    """Model name, every core's `cpu MHz` and the flags from /proc/cpuinfo (empty when absent)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "", [], set()
    fields = [tuple(part.strip() for part in line.split(":", 1)) for line in lines if ":" in line]
    model = next((value for key, value in fields if key == "model name"), "")
    mhz = [float(value) for key, value in fields if key == "cpu MHz"]
    flags = next((set(value.split()) for key, value in fields if key == "flags"), set())
    return model, mhz, flags


def _max_mhz() -> float | None:
    """The highest clock the kernel reports (cpufreq's cpuinfo_max_freq, what lscpu shows as
    `CPU max MHz`); None in VMs, which often have no cpufreq."""
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()
        return int(khz) / 1000.0
    except (OSError, ValueError):
        return None


def fp32_peak(cores: int) -> dict[str, Any]:
    """The fp32 peak of `cores` cores: cores x clock x FLOPs per cycle, where a cycle is taken
    to give FMA_UNITS fused multiply-adds (2 FLOPs each) over 8 fp32 lanes (AVX2) per core.

    AVX2+FMA is the assumption even where the flags show AVX-512: whether a core has 512-bit
    FMA pipes (twice the figure) or splits them in two 256-bit halves is not in /proc/cpuinfo,
    and the figure would then hold only for kernels that use AVX-512. Each logical CPU counts
    as a core (an SMT sibling shares its core's FMA pipes: the real peak is then half).
    """
    model, mhz, flags = _cpuinfo()
    clock, source = _max_mhz(), "cpufreq cpuinfo_max_freq"
    if clock is None:
        clock, source = (max(mhz), "/proc/cpuinfo cpu MHz") if mhz else (None, "unknown")
    lanes = 8 if {"avx2", "fma"} <= flags else 4  # without AVX2+FMA: 128-bit SSE, no FMA
    per_cycle = FMA_UNITS * lanes * 2
    gflops = cores * clock / 1000.0 * per_cycle if clock else None
    return {
        "cpu": model,
        "cores": cores,
        "clock_ghz": round(clock / 1000.0, 3) if clock else None,
        "clock_source": source,
        "simd": "avx2+fma" if lanes == 8 else "sse",
        "avx512f": "avx512f" in flags,
        "flops_per_cycle_per_core": per_cycle,
        "gflops": round(gflops, 1) if gflops else None,
        "assumption": f"{FMA_UNITS} FMA units x {lanes} fp32 lanes x 2 FLOPs per core and"
        " cycle; each logical CPU a core; the clock as reported (no boost or throttling)",
    }
