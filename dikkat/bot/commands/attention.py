"""/attention and /explain: self-attention shown with real numbers and pictures."""

from __future__ import annotations

import asyncio
import re

from dikkat.bot.i18n import LABEL_EMOJI, LABEL_NAMES, t
from dikkat.bot.types import Reply, Request
from dikkat.bot.validation import InvalidInput, clean_text, parse_sort_input
from dikkat.inference.backend import InferenceBackend
from dikkat.viz.encoder_attention import encoder_attention_png
from dikkat.viz.explain import explain_trace_png
from dikkat.viz.explain_text import (
    encoder_attention_caption,
    explain_caption,
    gpt_attention_caption,
    worked_example_text,
)
from dikkat.viz.gpt_attention import gpt_attention_png
from dikkat.viz.worked_example import worked_example_png

_SORT_LIKE = re.compile(r"[ABCabc\s,]+")


class AttentionCommands:
    """Replies with a picture rendered on the service's render thread."""

    def __init__(self, service: InferenceBackend) -> None:
        self.service = service

    async def attention(self, request: Request, lang: str) -> Reply:
        """No argument: the worked example; six letters: the nano-GPT; text: the encoder."""
        argument = request.args.strip()
        if not argument:
            image = await self.service.render(worked_example_png, lang)
            return Reply(worked_example_text(lang), image=image, image_name="attention.png")
        if _SORT_LIKE.fullmatch(argument):
            try:
                letters = parse_sort_input(argument)
            except InvalidInput:
                raise InvalidInput("attention_usage") from None
            return await self._sorter_attention(letters, lang)
        text, _ = clean_text(argument)
        if not text:
            raise InvalidInput("attention_usage")
        return await self._encoder_attention(text, lang)

    async def _sorter_attention(self, letters: str, lang: str) -> Reply:
        trace = await self.service.sort_trace(letters)
        image = await self.service.render(gpt_attention_png, trace, answer=trace.answer, lang=lang)
        caption = gpt_attention_caption(letters, trace.answer, lang)
        return Reply(caption, image=image, image_name=f"attention-{letters}.png")

    async def _encoder_attention(self, text: str, lang: str) -> Reply:
        seen, result = await asyncio.gather(
            self.service.encoder_attention(text), self.service.sentiment(text)
        )
        n_layers, n_heads = seen.attention.shape[:2]
        title = text if len(text) <= 60 else text[:57] + "…"
        image = await self.service.render(
            encoder_attention_png, seen.tokens, seen.attention, title=title, lang=lang
        )
        caption = encoder_attention_caption(
            len(seen.tokens), seen.total_tokens, n_layers=n_layers, n_heads=n_heads, lang=lang
        )
        verdict = t(
            "attention_sentiment",
            lang,
            emoji=LABEL_EMOJI[result.label],
            label=LABEL_NAMES.text(result.label, lang),
            confidence=round(100 * result.probabilities[result.label]),
        )
        return Reply(f"{caption}\n{verdict}", image=image, image_name="attention-encoder.png")

    async def explain(self, request: Request, lang: str) -> Reply:
        """A one-page walkthrough of the nano-GPT's forward pass for six letters."""
        try:
            letters = parse_sort_input(request.args)
        except InvalidInput:
            raise InvalidInput("explain_usage") from None
        trace = await self.service.explain(letters)
        image = await self.service.render(explain_trace_png, trace, lang=lang)
        return Reply(
            explain_caption(letters, trace.answer, lang),
            image=image,
            image_name=f"explain-{letters}.png",
        )
