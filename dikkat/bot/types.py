"""Request and Reply: the only things the Router sees and returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    """One command from any platform, already stripped of platform objects."""

    platform: str
    user_id: str
    chat_id: str
    command: str
    args: str = ""
    lang: str | None = None


@dataclass(frozen=True)
class Button:
    """A button under a reply; `data` comes back in a Feedback when it is pressed."""

    label: str
    data: str


@dataclass(frozen=True)
class Reply:
    """What the bot answers: text, an optional PNG, optional buttons."""

    text: str
    image: bytes | None = None
    buttons: tuple[Button, ...] = field(default_factory=tuple)
    private: bool = False
    image_name: str = "dikkat.png"


@dataclass(frozen=True)
class ButtonPress:
    """A button press coming back from a platform."""

    platform: str
    user_id: str
    chat_id: str
    data: str
    lang: str | None = None
