"""The Ray backend forwards every model call of the inference protocol to the replicas."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dikkat.inference.backend import MODEL_CALLS, InferenceBackend
from dikkat.scale.ray_serve import Served

pytest.importorskip("ray", reason="the Ray backend needs the `scale` extra")

from dikkat.scale.ray_backend import RayBackend  # noqa: E402


class FakeHandle:
    """Serve's application handle as RayBackend uses it: `call.remote(method, *args)`."""

    def __init__(self) -> None:
        self.call = self
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    def remote(self, method: str, *args: Any) -> asyncio.Future:
        self.sent.append((method, args))
        answer = asyncio.get_running_loop().create_future()
        answer.set_result(Served(f"{method}{args}", "replica-1", 3))
        return answer


async def test_every_model_call_goes_to_the_replicas_by_name() -> None:
    handle = FakeHandle()
    backend = RayBackend(handle, "key")
    try:
        for name in MODEL_CALLS:
            assert await getattr(backend, name)("a", "b") == f"{name}('a', 'b')"
    finally:
        await backend.close()
    assert [method for method, _ in handle.sent] == list(MODEL_CALLS)
    assert backend.served_by == {"replica-1": len(MODEL_CALLS)}
    assert backend.batch_sizes == [3] * len(MODEL_CALLS)
    assert {"sentiment", "encoder_attention", "word_in_context"} <= set(MODEL_CALLS)
    for name in MODEL_CALLS:
        assert getattr(RayBackend, name).__doc__ == getattr(InferenceBackend, name).__doc__
