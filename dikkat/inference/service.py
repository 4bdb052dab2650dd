"""InferenceService: owns the models and puts every model call behind a DynamicBatcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from dikkat.config import Settings
from dikkat.inference.batcher import DynamicBatcher
from dikkat.inference.sentiment import SentimentPipeline, SentimentResult
from dikkat.models.explain import ExplainTrace, explain_trace
from dikkat.models.head import SentimentHead
from dikkat.models.sorter import SEQUENCE_LENGTH, Sorter, SortTrace
from dikkat.models.word_vectors import MAX_TOKENS as WORD_VECTOR_TOKENS
from dikkat.models.word_vectors import WordInContext, WordTable, word_in_context, word_table

log = logging.getLogger(__name__)

SORT_COST = 2 * SEQUENCE_LENGTH
ATTENTION_MAX_TOKENS = 32
T = TypeVar("T")


@dataclass(frozen=True)
class EncoderAttention:
    """The encoder's attention over a (capped) sentence and whether it was capped."""

    tokens: list[str]
    attention: np.ndarray  # (layers, heads, T, T)
    total_tokens: int

    @property
    def capped(self) -> bool:
        """True when the sentence had more tokens than are shown."""
        return self.total_tokens > len(self.tokens)


class InferenceService:
    """Async facade over the models; every model call is batched on the model's worker thread."""

    def __init__(
        self,
        settings: Settings,
        sorter: Sorter,
        sentiment: SentimentPipeline,
    ) -> None:
        self.settings = settings
        self.sorter = sorter
        self.sentiment_pipeline = sentiment
        encoder = sentiment.encoder
        options: dict[str, Any] = dict(
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            default_timeout=settings.request_timeout_s,
        )
        self._sort = DynamicBatcher(sorter.sort_batch, name="sorter", **options)
        self._trace = DynamicBatcher(sorter.trace_batch, name="sorter_trace", **options)
        self._explain = DynamicBatcher(self._explain_batch, name="sorter_explain", **options)
        self._sentiment = DynamicBatcher(
            sentiment.predict_batch,
            name="sentiment",
            # a packing encoder keeps padding low for any mix of lengths: no batch need be held back
            min_padding_efficiency=0.0 if encoder.packs else settings.min_padding_efficiency,
            padded_tokens=encoder.padded_tokens,
            parallel_batches=encoder.parallel_batches,
            **options,
        )
        self._encoder_attention = DynamicBatcher(
            self._encoder_attention_batch, name="encoder_attention", **options
        )
        self._word_table = DynamicBatcher(self._word_table_batch, name="word_table", **options)
        self._word_in_context = DynamicBatcher(
            self._word_in_context_batch, name="word_in_context", **options
        )
        self._batchers: list[DynamicBatcher] = [
            self._sort, self._trace, self._explain, self._sentiment, self._encoder_attention,
            self._word_table, self._word_in_context,
        ]  # fmt: skip
        self._render = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")

    @property
    def batchers(self) -> list[DynamicBatcher]:
        """Every batcher, for metrics and benchmarks."""
        return list(self._batchers)

    @property
    def feature_key(self) -> str:
        """The feature key of the running encoder (encoder id, pooling, max length, prefix)."""
        return self.sentiment_pipeline.encoder.feature_key

    @property
    def head_version(self) -> int | None:
        """The sentiment head version serving now."""
        return self.sentiment_pipeline.head_version

    async def start(self) -> None:
        """Start every batcher's worker."""
        for batcher in self._batchers:
            await batcher.start()

    async def stop(self) -> None:
        """Finish what is queued, then stop every worker thread."""
        for batcher in self._batchers:
            await batcher.stop()
        self._render.shutdown(wait=True)

    async def sort(self, letters: str) -> str:
        """Sorted version of six validated letters."""
        return await self._sort.submit(letters, cost=SORT_COST)

    async def sort_trace(self, letters: str) -> SortTrace:
        """Sorted sequence plus the nano-GPT's attention maps."""
        return await self._trace.submit(letters, cost=SORT_COST)

    async def explain(self, letters: str) -> ExplainTrace:
        """Every intermediate tensor of the nano-GPT's forward pass for six letters."""
        return await self._explain.submit(letters, cost=SORT_COST)

    def _explain_batch(self, batch: list[str]) -> list[ExplainTrace]:
        return [explain_trace(self.sorter.model, letters) for letters in batch]

    async def sentiment(self, text: str) -> SentimentResult:
        """Label and probabilities of one cleaned text (long texts are truncated, and say so)."""
        self._sentiment.check_capacity()  # refuse before tokenizing: "busy" must be instant
        tokens = self.sentiment_pipeline.tokenize(text)
        return await self._sentiment.submit(tokens, cost=tokens.cost)

    async def encoder_attention(self, text: str) -> EncoderAttention:
        """The encoder's attention over the first tokens of `text`."""
        return await self._encoder_attention.submit(text, cost=ATTENTION_MAX_TOKENS)

    def _encoder_attention_batch(self, texts: list[str]) -> list[EncoderAttention]:
        encoder = self.sentiment_pipeline.encoder
        results = []
        for text in texts:
            tokens, attention = encoder.attentions(text, ATTENTION_MAX_TOKENS)
            total = encoder.token_count(text)
            results.append(EncoderAttention(tokens, attention, total))
        return results

    async def word_table(self, words: tuple[str, ...]) -> WordTable:
        """Each word's input and contextual embedding (every word encoded on its own)."""
        return await self._word_table.submit(words, cost=WORD_VECTOR_TOKENS * len(words))

    def _word_table_batch(self, batch: list[tuple[str, ...]]) -> list[WordTable]:
        return [word_table(self.sentiment_pipeline.encoder, words) for words in batch]

    async def word_in_context(self, first: str, second: str) -> WordInContext | None:
        """A word the two sentences share, its vectors compared; None if they share none."""
        return await self._word_in_context.submit((first, second), cost=3 * WORD_VECTOR_TOKENS)

    def _word_in_context_batch(self, batch: list[tuple[str, str]]) -> list[WordInContext | None]:
        encoder = self.sentiment_pipeline.encoder
        return [word_in_context(encoder, first, second) for first, second in batch]

    def swap_head(self, head: SentimentHead, version: int | None) -> None:
        """Hot-swap the sentiment head; batches already running finish with the old one."""
        self.sentiment_pipeline.swap(head, version)
        log.info("sentiment head version %s is serving", version)

    def recent_features(self, text_hash: str) -> np.ndarray | None:
        """The features of the text with this hash from when it was last classified, if still
        remembered."""
        return self.sentiment_pipeline.recent.get(text_hash)

    async def render(self, draw: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a figure-drawing function on the render thread, never on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._render, lambda: draw(*args, **kwargs))
