"""/embed: embeddings made visible: the worked example, the encoder's vectors for words, and one
word in two sentences."""

from __future__ import annotations

from dikkat.bot.i18n import t
from dikkat.bot.types import Reply, Request
from dikkat.bot.validation import InvalidInput, clean_text
from dikkat.inference.backend import InferenceBackend
from dikkat.viz.embedding_example import embedding_example_png
from dikkat.viz.embedding_text import embedding_example_text
from dikkat.viz.word_vectors import word_in_context_png, word_vectors_png

MAX_WORDS = 10
MAX_WORD_CHARS = 40
MAX_SENTENCE_CHARS = 300


class EmbedCommands:
    """Replies with numbers and a picture; every model call goes through the service."""

    def __init__(self, service: InferenceBackend) -> None:
        self.service = service

    async def embed(self, request: Request, lang: str) -> Reply:
        """No argument: the worked example; words: their vectors; `a | b`: a word in context."""
        argument, _ = clean_text(request.args)
        if not argument:
            text = await self.service.render(embedding_example_text, lang)
            image = await self.service.render(embedding_example_png, lang)
            return Reply(text, image=image, image_name="embed.png")
        if "|" in argument:
            return await self._in_context(argument, lang)
        return await self._words(argument, lang)

    async def _words(self, argument: str, lang: str) -> Reply:
        words = [word for word in argument.split() if _has_letters(word)]
        if len(words) > MAX_WORDS:
            raise InvalidInput("embed_too_many")
        if len(words) < 2 or any(len(word) > MAX_WORD_CHARS for word in words):
            raise InvalidInput("embed_usage")
        table = await self.service.word_table(tuple(words))
        image = await self.service.render(
            word_vectors_png, table.words, table.input_vectors, table.contextual, lang=lang
        )
        nearest = [
            t("embed_nearest", lang, word=word, other=other, cosine=similarity)
            for word, other, similarity in table.nearest()
        ]
        pieces = ", ".join(
            f"{word} = {' + '.join(parts)}"
            for word, parts in zip(table.words, table.pieces, strict=True)
        )
        caption = t(
            "embed_words_caption",
            lang,
            dim=table.contextual.shape[1],
            nearest="\n".join(nearest),
            pieces=pieces,
        )
        return Reply(caption, image=image, image_name="embed-words.png")

    async def _in_context(self, argument: str, lang: str) -> Reply:
        parts = [part.strip()[:MAX_SENTENCE_CHARS] for part in argument.split("|")]
        if len(parts) != 2 or not all(_has_letters(part) for part in parts):
            raise InvalidInput("embed_usage")
        compared = await self.service.word_in_context(*parts)
        if compared is None:
            raise InvalidInput("embed_no_shared_word")
        image = await self.service.render(
            word_in_context_png, compared.word, compared.cosines, lang=lang
        )
        caption = t("embed_context_caption", lang, word=compared.word, **compared.cosines)
        return Reply(caption, image=image, image_name="embed-context.png")


def _has_letters(text: str) -> bool:
    """Whether `text` has a letter or a digit (emoji and punctuation alone have nothing)."""
    return any(ch.isalnum() for ch in text)
