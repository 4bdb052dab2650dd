"""The encoder precisions: fp32 (torch) and int8 (CTranslate2, CPU only), and which one `auto`
picks for an encoder: int8 only where it was measured to keep the head's quality."""

from __future__ import annotations

from typing import Literal

__all__ = ["PRECISIONS", "PRECISION_SETTINGS", "Precision", "PrecisionSetting", "chosen_precision"]

Precision = Literal["fp32", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "int8")
PrecisionSetting = Literal["auto", "fp32", "int8"]
PRECISION_SETTINGS: tuple[str, ...] = ("auto", *PRECISIONS)

# int8 within 0.005 macro-F1 of fp32 on every set (README, "Encoder precision"; 30 seeds):
# e5-small with all 12 layers (worst -0.0019) and with its first 10 (worst -0.0037). The English
# MiniLM loses 0.011 on tweets; hub models such as BERTurk were never measured here.
INT8_WITHIN_BOUND = frozenset({"multilingual-e5-small-q4", "multilingual-e5-small-q4-10layers"})


def chosen_precision(setting: PrecisionSetting, encoder_id: str) -> Precision:
    """The precision `setting` gives `encoder_id`: `auto` is int8 where int8 keeps quality."""
    if setting not in PRECISION_SETTINGS:
        raise ValueError(f"precision must be one of {PRECISION_SETTINGS}, not {setting!r}")
    if setting == "auto":
        return "int8" if encoder_id in INT8_WITHIN_BOUND else "fp32"
    return setting
