"""glibc's malloc tuned for inference: each batch's activations reuse heap memory.

glibc hands out blocks above its mmap threshold (128 KiB until it adapts) as fresh mappings and
unmaps them when freed, so every batch's activations were zero-filled page by page again. With
CTranslate2's threads it often never adapted: 466,871 page faults per 512 texts, and int8 ran
at 245-270 instead of 330-345 texts/s (fp32 about 5% slower).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # the most glibc's own adaptation would reach
TRIM_THRESHOLD_BYTES = 128 << 20  # freed memory kept at the heap's top before it is returned


@functools.cache
def keep_activations_in_heap() -> bool:
    """Set glibc's mmap and trim thresholds once per process; False where libc is not glibc."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not applied:
        log.info("malloc thresholds not set: mallopt refused them")
    return applied
