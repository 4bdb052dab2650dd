"""The console frontend: a REPL on a terminal, a line-by-line answerer on a pipe."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from dikkat.aio import unless_stopped
from dikkat.bot.router import Router
from dikkat.bot.types import Button, ButtonPress, Reply, Request, parse_id, printable
from dikkat.bot.validation import split_command

PROMPT = "dikkat> "
PLATFORM = "console"


class ConsoleFrontend:
    """Turns lines into Requests and Replies into printed text (images are saved as PNG files).

    After a reply with buttons, typing a button's number presses it.
    """

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
        self._buttons: tuple[Button, ...] = ()
        router.set_notifier(PLATFORM, self.notify)

    async def notify(self, chat_id: str, reply: Reply) -> None:
        """A message outside a request (a /retrain result): printed when it comes."""
        self.out.write(self._shown(reply) + "\n")
        self.out.flush()

    def request_for(self, line: str) -> Request | None:
        """A Request for one input line; plain text asks for its sentiment; blank lines none."""
        command, args, _ = split_command(line)
        if command is None:
            if not args:
                return None
            command = "sentiment"
        return Request(PLATFORM, self.user_id, PLATFORM, command or "help", args, self.lang)

    async def answer(self, line: str) -> str | None:
        """The rendered reply to one line (a button press if it is a shown button's number)."""
        choice = parse_id(line)
        if choice is not None and choice <= len(self._buttons):
            button = self._buttons[choice - 1]
            self._buttons = ()
            press = ButtonPress(PLATFORM, self.user_id, PLATFORM, button.data, self.lang)
            return self.render(await self.router.handle_button(press))
        request = self.request_for(line)
        if request is None:
            return None
        return self.render(await self.router.handle(request))

    def render(self, reply: Reply) -> str:
        """Reply text (without control characters), where the image went, the buttons."""
        parts = [self._shown(reply)]
        self._buttons = reply.buttons
        if reply.buttons:
            parts.append("  ".join(f"[{i}] {b.label}" for i, b in enumerate(reply.buttons, 1)))
        return "\n".join(parts)

    def _shown(self, reply: Reply) -> str:
        """The text, and where its image was saved."""
        parts = [printable(reply.text)]
        if reply.image is not None:
            self.image_dir.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = self.image_dir / f"{stamp}-{time.monotonic_ns() % 10**6}-{reply.image_name}"
            path.write_bytes(reply.image)
            parts.append(f"🖼  {path}")
        return "\n".join(parts)

    async def run(self, stdin: TextIO | None = None, stop: asyncio.Event | None = None) -> None:
        """Answer every line until end of input (Ctrl-D), /quit or `stop` (SIGTERM): a stop
        ends the reading, and the answer being written is finished first."""
        stdin = stdin or sys.stdin
        interactive = stdin.isatty()
        lines = _line_reader(stdin)
        stop = stop or asyncio.Event()
        while not stop.is_set():
            if interactive:
                self.out.write(PROMPT)
                self.out.flush()
            next_line = asyncio.ensure_future(lines.get())
            if not await unless_stopped(next_line, stop):
                break
            line = next_line.result()
            if line is None or line.strip() in ("/quit", "/exit"):
                break
            rendered = await self.answer(line)
            if rendered is not None:
                self.out.write(rendered + "\n")
                self.out.flush()


def _line_reader(stdin: TextIO) -> asyncio.Queue[str | None]:
    """Lines from a daemon thread (None at the end), so a pending read never blocks exit."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1)

    def read() -> None:
        while True:
            line = stdin.readline()
            asyncio.run_coroutine_threadsafe(queue.put(line or None), loop).result()
            if not line:
                return

    threading.Thread(target=read, name="console-stdin", daemon=True).start()
    return queue
