"""The console frontend: a REPL on a terminal, a line-by-line answerer on a pipe."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

from dikkat.bot.router import Router
from dikkat.bot.types import Reply, Request
from dikkat.bot.validation import split_command

PROMPT = "dikkat> "


class ConsoleFrontend:
    """Turns lines into Requests and Replies into printed text (images are saved as PNG files)."""

    def __init__(
        self,
        router: Router,
        *,
        image_dir: Path,
        lang: str | None = None,
        user_id: str = "console",
        out: TextIO | None = None,
    ) -> None:
        self.router = router
        self.image_dir = image_dir
        self.lang = lang
        self.user_id = user_id
        self.out = out or sys.stdout

    def request_for(self, line: str) -> Request | None:
        """A Request for one input line; plain text asks for its sentiment; blank lines none."""
        command, args, _ = split_command(line)
        if command is None:
            if not args:
                return None
            command = "sentiment"
        return Request("console", self.user_id, "console", command or "help", args, self.lang)

    async def answer(self, line: str) -> str | None:
        """The rendered reply to one line, or None for a blank line."""
        request = self.request_for(line)
        if request is None:
            return None
        return self.render(await self.router.handle(request))

    def render(self, reply: Reply) -> str:
        """Reply text, then where the image was saved."""
        parts = [reply.text]
        if reply.image is not None:
            self.image_dir.mkdir(parents=True, exist_ok=True)
            path = self.image_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{reply.image_name}"
            path.write_bytes(reply.image)
            parts.append(f"🖼  {path}")
        return "\n".join(parts)

    async def run(self, stdin: TextIO | None = None) -> None:
        """Answer every line until end of input (Ctrl-D) or /quit."""
        stdin = stdin or sys.stdin
        interactive = stdin.isatty()
        while True:
            if interactive:
                self.out.write(PROMPT)
                self.out.flush()
            line = await asyncio.to_thread(stdin.readline)
            if not line or line.strip() in ("/quit", "/exit"):
                break
            rendered = await self.answer(line)
            if rendered is not None:
                self.out.write(rendered + "\n")
                self.out.flush()
