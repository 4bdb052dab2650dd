"""/sort: six letters over {A, B, C} sorted by the nano-GPT."""

from __future__ import annotations

from dikkat.bot.i18n import t
from dikkat.bot.types import Reply, Request
from dikkat.bot.validation import parse_sort_input
from dikkat.inference.backend import InferenceBackend


class SortCommands:
    """The sorter's reply: the letters and the model's answer."""

    def __init__(self, service: InferenceBackend) -> None:
        self.service = service

    async def sort(self, request: Request, lang: str) -> Reply:
        """Sorts six letters over {A, B, C} with the nano-GPT."""
        letters = parse_sort_input(request.args)
        answer = await self.service.sort(letters)
        return Reply(t("sort_result", lang, letters=letters, answer=answer))
