"""What the bot needs from inference, whichever process runs the models (in-process or Ray)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np

from dikkat.inference.sentiment import SentimentResult
from dikkat.inference.service import EncoderAttention
from dikkat.models.explain import ExplainTrace
from dikkat.models.sorter import SortTrace
from dikkat.models.word_vectors import WordInContext, WordTable

T = TypeVar("T")
C = TypeVar("C", bound=type)


class InferenceBackend(Protocol):
    """The models behind the Router: answers, traces for pictures, and a render thread."""

    @property
    def feature_key(self) -> str:
        """The running encoder's feature key (encoder id, pooling, max length, prefix)."""
        ...

    async def sentiment(self, text: str) -> SentimentResult:
        """Label and probabilities of one cleaned text."""
        ...

    async def sort(self, letters: str) -> str:
        """Sorted version of six validated letters."""
        ...

    async def sort_trace(self, letters: str) -> SortTrace:
        """Sorted sequence plus the nano-GPT's attention maps."""
        ...

    async def explain(self, letters: str) -> ExplainTrace:
        """Every intermediate tensor of the nano-GPT's forward pass."""
        ...

    async def encoder_attention(self, text: str) -> EncoderAttention:
        """The encoder's attention over the first tokens of `text`."""
        ...

    async def word_table(self, words: tuple[str, ...]) -> WordTable:
        """Each word's input and contextual embedding (every word encoded on its own)."""
        ...

    async def word_in_context(self, first: str, second: str) -> WordInContext | None:
        """A word the two sentences share, its vectors compared; None if they share none."""
        ...

    def recent_features(self, text_hash: str) -> np.ndarray | None:
        """Features this process computed for the text with this hash, if still remembered."""
        ...

    async def render(self, draw: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a figure-drawing function off the event loop."""
        ...


# The model calls a remote backend forwards (async, not `render`: figures are drawn locally).
MODEL_CALLS: tuple[str, ...] = tuple(
    name
    for name, member in vars(InferenceBackend).items()
    if inspect.iscoroutinefunction(member) and name != "render"
)


def forwards_model_calls(cls: C) -> C:
    """Give `cls` every model call of InferenceBackend as `await self._call(name, *args)`, with
    the protocol's docstring (the Ray backend and the Ray replica forward them)."""
    for name in MODEL_CALLS:

        async def call(self: Any, *args: Any, _name: str = name) -> Any:
            return await self._call(_name, *args)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = getattr(InferenceBackend, name).__doc__
        setattr(cls, name, call)
    return cls
