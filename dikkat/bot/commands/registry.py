"""Every command declared once: its text argument, rights, limits and help in each language.

The Router (dispatch, rights, rate limits), /help, the platform menus and both chat adapters
(Telegram handlers, Discord slash commands and their options) all read `COMMANDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dikkat.i18n import Catalog


@dataclass(frozen=True)
class Argument:
    """The command's one text argument (a Discord option), described in each language."""

    required: bool
    help: Mapping[str, str]


@dataclass(frozen=True)
class Command:
    """A command; its handler is the method `name` of the Router's `group` of commands."""

    name: str
    group: str
    help: Mapping[str, str]
    argument: Argument | None = None
    admin: bool = False  # only configured admins (and the local console) may run it
    limited: bool = True  # counted by the per-user rate limiter
    private: bool = False  # answered to the caller only where a platform can (Discord)


SIX_LETTERS = Argument(
    True, {"tr": "A, B, C'den 6 harf: CBABBC", "en": "six letters over A, B and C, e.g. CBABBC"}
)

# In the order /help and the platform menus list them.
COMMANDS: tuple[Command, ...] = (
    Command(
        "start", "account", {"tr": "Dikkat'i tanıtır", "en": "introduces Dikkat"}, limited=False
    ),
    Command(
        "help", "account", {"tr": "bu listeyi gösterir", "en": "shows this list"}, limited=False
    ),
    Command(
        "sentiment",
        "sentiment",
        {
            "tr": "Türkçe bir metnin duygusunu söyler — /sentiment Kargo çok hızlı geldi",
            "en": "tells the sentiment of Turkish text — /sentiment Kargo çok hızlı geldi",
        },
        Argument(True, {"tr": "Türkçe bir cümle", "en": "a Turkish sentence"}),
    ),
    Command(
        "sort",
        "sort",
        {
            "tr": "6 harfi (A, B, C) küçük bir GPT ile sıralar — /sort CBABBC",
            "en": "sorts 6 letters (A, B, C) with a tiny GPT — /sort CBABBC",
        },
        SIX_LETTERS,
    ),
    Command(
        "attention",
        "attention",
        {
            "tr": (
                "dikkat mekanizmasını resimle gösterir — /attention, /attention CBABBC veya "
                "/attention Bu film harika"
            ),
            "en": (
                "shows self-attention as a picture — /attention, /attention CBABBC or /attention "
                "Bu film harika"
            ),
        },
        Argument(
            False,
            {
                "tr": "CBABBC gibi harfler ya da bir cümle; boş: adım adım örnek",
                "en": "letters like CBABBC or a sentence; empty for the worked example",
            },
        ),
    ),
    Command(
        "explain",
        "attention",
        {
            "tr": "küçük GPT'nin bir girdi için adım adım çalışması — /explain CBABBC",
            "en": "the tiny GPT's forward pass step by step — /explain CBABBC",
        },
        SIX_LETTERS,
    ),
    Command(
        "embed",
        "embed",
        {
            "tr": (
                "kelimelerin sayılara dönüşmesini gösterir — /embed, /embed harika berbat masa "
                "veya /embed Bu film harika! | Telefonum bozuldu, harika!"
            ),
            "en": (
                "shows how words become numbers — /embed, /embed harika berbat masa or "
                "/embed Bu film harika! | Telefonum bozuldu, harika!"
            ),
        },
        Argument(
            False,
            {
                "tr": "kelimeler ya da | ile ayrılmış iki cümle; boş: adım adım örnek",
                "en": "words, or two sentences split by |; empty for the worked example",
            },
        ),
    ),
    Command(
        "lang",
        "account",
        {"tr": "dili değiştirir — /lang en", "en": "changes the language — /lang tr"},
        Argument(False, {"tr": "tr ya da en", "en": "tr or en"}),
        limited=False,
    ),
    Command(
        "forget",
        "account",
        {
            "tr": "sizinle ilgili kayıtlı her şeyi siler — /forget",
            "en": "deletes everything stored about you — /forget",
        },
        limited=False,
        private=True,
    ),
    Command(
        "retrain",
        "admin",
        {
            "tr": "duygu modelini geri bildirimlerle yeniden eğitir — /retrain",
            "en": "retrains the sentiment head from feedback — /retrain",
        },
        admin=True,
        private=True,
    ),
    Command(
        "models",
        "admin",
        {"tr": "model sürümlerini listeler — /models", "en": "lists model versions — /models"},
        admin=True,
        private=True,
    ),
    Command(
        "rollback",
        "admin",
        {
            "tr": "eski bir model sürümünü etkinleştirir — /rollback 2",
            "en": "activates an older model version — /rollback 2",
        },
        Argument(True, {"tr": "dönülecek model sürümü", "en": "the model version to go back to"}),
        admin=True,
        private=True,
    ),
    Command(
        "stats",
        "admin",
        {
            "tr": "tahmin ve geri bildirim sayıları — /stats",
            "en": "prediction and feedback counts — /stats",
        },
        admin=True,
        private=True,
    ),
)
BY_NAME: Mapping[str, Command] = {command.name: command for command in COMMANDS}
COMMAND_HELP = Catalog({command.name: command.help for command in COMMANDS})
ARGUMENT_HELP = Catalog(
    {command.name: command.argument.help for command in COMMANDS if command.argument}
)
