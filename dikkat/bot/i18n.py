"""Every message the bot says, in Turkish (default) and English."""

from __future__ import annotations

LANGUAGES = ("tr", "en")
DEFAULT_LANGUAGE = "tr"

MESSAGES: dict[str, dict[str, str]] = {
    "start": {
        "tr": (
            "Merhaba, ben Dikkat 👋 Transformer modellerini elinizin altına getiriyorum.\n"
            "Türkçe bir cümlenin duygusunu söyleyebilir, harfleri küçük bir GPT ile sıralayabilir "
            "ve dikkat (self-attention) mekanizmasını resimle gösterebilirim.\n"
            "Komutlar için /help yazın."
        ),
        "en": (
            "Hi, I'm Dikkat 👋 I put transformer models in your hands.\n"
            "I can tell the sentiment of a Turkish sentence, sort letters with a tiny GPT "
            "and show self-attention as a picture.\n"
            "Type /help for the commands."
        ),
    },
    "help_header": {"tr": "Komutlar:", "en": "Commands:"},
    "help_admin_header": {"tr": "Yönetici komutları:", "en": "Admin commands:"},
    "sort_usage": {
        "tr": (
            "Lütfen yalnızca A, B ve C harflerinden oluşan tam 6 harf gönderin.\n"
            "Örnek: /sort CBABBC"
        ),
        "en": "Please send exactly 6 letters, using only A, B and C.\nExample: /sort CBABBC",
    },
    "sort_result": {
        "tr": "🔤 {letters} → {answer}\n(85.584 parametreli küçük GPT sıraladı)",
        "en": "🔤 {letters} → {answer}\n(sorted by an 85,584-parameter tiny GPT)",
    },
    "unknown_command": {
        "tr": "Bu komutu tanımıyorum: /{command}. Komutların listesi için /help yazın.",
        "en": "I don't know the command /{command}. Type /help for the list of commands.",
    },
    "busy": {
        "tr": "Şu an çok yoğunum, lütfen birazdan tekrar deneyin. ⏳",
        "en": "I'm busy right now, please try again in a moment. ⏳",
    },
    "timeout": {
        "tr": "Bu istek çok uzun sürdü, lütfen tekrar deneyin.",
        "en": "That request took too long, please try again.",
    },
    "internal_error": {
        "tr": "Üzgünüm, bir şeyler ters gitti. Lütfen tekrar deneyin.",
        "en": "Sorry, something went wrong. Please try again.",
    },
    "unknown_button": {
        "tr": "Bu düğme artık geçerli değil.",
        "en": "This button is no longer valid.",
    },
    "unavailable": {
        "tr": "Bu özellik şu an kullanılamıyor.",
        "en": "This feature is not available right now.",
    },
}

COMMAND_HELP: dict[str, dict[str, str]] = {
    "start": {"tr": "Dikkat'i tanıtır", "en": "introduces Dikkat"},
    "help": {"tr": "bu listeyi gösterir", "en": "shows this list"},
    "sort": {
        "tr": "6 harfi (A, B, C) küçük bir GPT ile sıralar — /sort CBABBC",
        "en": "sorts 6 letters (A, B, C) with a tiny GPT — /sort CBABBC",
    },
}


def normalise_language(code: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """Map a client language code such as 'en-US' or 'tr' to a supported language."""
    if code:
        base = code.strip().lower().replace("_", "-").split("-")[0]
        if base in LANGUAGES:
            return base
        return "en"
    return default


def t(key: str, lang: str, **values: object) -> str:
    """The message `key` in `lang` (falling back to Turkish), formatted with `values`."""
    variants = MESSAGES[key]
    return variants.get(lang, variants[DEFAULT_LANGUAGE]).format(**values)
