"""Texts that go with the attention figures, in Turkish and English: plain strings, phone-sized."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import torch

from dikkat.i18n import Catalog
from dikkat.models.worked_example import WorkedExample, worked_example

SUB = "₁₂₃₄₅₆₇₈₉"
CAPTION_LIMIT = 1024  # Telegram's limit for a photo caption


def _num(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text.lstrip("-") if float(text) == 0 else text


def _vec(values: Iterable[float], decimals: int = 0) -> str:
    return "[" + ", ".join(_num(float(v), decimals) for v in values) + "]"


def _rows(name: str, matrix: torch.Tensor, decimals: int = 0) -> str:
    """'k = [0, 1, 1] [4, 4, 0] [2, 3, 1]': one matrix on one short line."""
    return f"{name} = " + " ".join(_vec(row.tolist(), decimals) for row in matrix)


def _per_row(prefix: str, matrix: torch.Tensor, decimals: int, arrow: str = " = ") -> list[str]:
    """'y₁ = [1.94, 6.68, 1.60]', one line per row."""
    return [
        f"{prefix}{SUB[i]}{arrow}{_vec(row.tolist(), decimals)}" for i, row in enumerate(matrix)
    ]


TEXT = Catalog(
    {
        "title": {"tr": "🧮 Self-attention adım adım", "en": "🧮 Self-attention step by step"},
        "intro": {
            "tr": (
                "3 girdi, her biri 4 sayı. Öğrenilen 3 ağırlık matrisi (W_K, W_Q, W_V) her girdiyi "
                "3 boyuta taşır."
            ),
            "en": (
                "3 inputs of 4 numbers each. Three learned weight matrices (W_K, W_Q, W_V) take "
                "every input to 3 dimensions."
            ),
        },
        "inputs": {"tr": "1. Girdiler", "en": "1. Inputs"},
        "kqv": {
            "tr": "2. Anahtar k = x·W_K, sorgu q = x·W_Q, değer v = x·W_V",
            "en": "2. Key k = x·W_K, query q = x·W_Q, value v = x·W_V",
        },
        "scores": {
            "tr": "3. Skorlar: her sorgu × her anahtar (Q·Kᵀ)",
            "en": "3. Scores: every query × every key (Q·Kᵀ)",
        },
        "softmax": {
            "tr": "4. softmax: her satır 0–1 arası ağırlıklara dönüşür, toplamı 1",
            "en": "4. softmax: each row becomes weights between 0 and 1 that sum to 1",
        },
        "weighted": {
            "tr": "5. Değerler bu ağırlıklarla toplanır. Girdi 1 için:",
            "en": "5. The values are summed with these weights. For input 1:",
        },
        "outputs": {"tr": "6. Çıktılar", "en": "6. Outputs"},
        "rounded": {
            "tr": "🔎 Resimlerde sık görülen yuvarlatılmış softmax {w} ile:",
            "en": "🔎 With the rounded softmax often shown in illustrations, {w}:",
        },
        "scaled": {
            "tr": (
                "📏 Gerçek transformer'lar skorları √d = √3 ≈ {s:.2f} sayısına böler; böylece "
                "softmax fazla keskinleşmez:"
            ),
            "en": (
                "📏 Real transformers divide the scores by √d = √3 ≈ {s:.2f}, "
                "so the softmax is not too sharp:"
            ),
        },
        "scaled_scores": {"tr": "Skorlar / √3:", "en": "Scores / √3:"},
        "scaled_softmax": {"tr": "softmax ve çıktılar:", "en": "softmax and outputs:"},
        "worked_caption": {
            "tr": (
                "Self-attention adım adım: girdiler → anahtar/sorgu/değer → skorlar Q·Kᵀ → softmax "
                "→ ağırlıklı değerler → çıktılar, en altta √d ile ölçekli hali."
            ),
            "en": (
                "Self-attention step by step: inputs → keys/queries/values → scores Q·Kᵀ → softmax "
                "→ weighted values → outputs, and at the bottom the √d-scaled version."
            ),
        },
        "gpt_caption": {
            "tr": (
                "🔤 {letters} → {answer}\nKüçük GPT'nin 3 katman × 3 kafa dikkat haritası. Her "
                "karede satır tahmin yapan konum, sütun baktığı konumdur; beyaz üçgen gelecektir, "
                "model onu göremez. Kırmızı harfler modelin yazdığı cevap."
            ),
            "en": (
                "🔤 {letters} → {answer}\nThe tiny GPT's attention, 3 layers × 3 heads. In each "
                "square the row is the position predicting and the column the position it looks "
                "at; the white triangle is the future, which the model cannot see. Red letters are "
                "the answer the model wrote."
            ),
        },
        "encoder_caption": {
            "tr": (
                "👀 Kodlayıcının dikkati: katman {layer}/{n_layers}, {n_heads} kafanın ortalaması "
                "ve altında her kafa ayrı. Satır bakan token, sütun bakılan token."
            ),
            "en": (
                "👀 The encoder's attention: layer {layer}/{n_layers}, "
                "the mean of {n_heads} heads, and every head below. "
                "Row: token attending, column: token attended to."
            ),
        },
        "encoder_capped": {
            "tr": (
                "\n✂️ Metin uzun: yalnızca ilk {shown} token gösteriliyor (toplam: {total}; [CLS] "
                "ve [SEP] dahil)."
            ),
            "en": (
                "\n✂️ Long input: only the first {shown} of {total} tokens are shown ([CLS] and "
                "[SEP] included)."
            ),
        },
        "explain_caption": {
            "tr": (
                "🔬 {letters} → {answer}: küçük GPT'nin bir ileri geçişi, gerçek sayılarla. "
                "Yukarıdan aşağı: token ve konum gömmeleri → LayerNorm → Q, K, V → skorlar ve "
                "softmax → izdüşüm ve artık bağlantı → MLP → bloklar 2 ve 3 → son LayerNorm → "
                "logitler → softmax → tahmin edilen harf. Mavi negatif, kırmızı pozitif."
            ),
            "en": (
                "🔬 {letters} → {answer}: one forward pass of the tiny GPT, with the real numbers. "
                "Top to bottom: token and position embeddings → LayerNorm → Q, K, V → scores and "
                "softmax → projection and residual → MLP → blocks 2 and 3 → final LayerNorm → "
                "logits → softmax → the predicted letter. Blue is negative, red positive."
            ),
        },
    }
)


def worked_example_text(lang: str = "tr", example: WorkedExample | None = None) -> str:
    """The classic 3-token example as a step-by-step message with compact numbers."""
    t = partial(TEXT.text, lang=lang)
    ex = example or worked_example()
    weights = ex.exact.weights[0].tolist()
    terms = " + ".join(f"{_num(w, 2)}·v{SUB[j]}" for j, w in enumerate(weights))
    parts = [_vec(row.tolist(), 2) for row in ex.exact.weighted[0]]
    rounded = " ".join(_vec(row.tolist(), 1) for row in ex.rounded.weights)
    lines = [
        t("title"),
        t("intro"),
        "",
        t("inputs"),
        *_per_row("x", ex.inputs, 0),
        "",
        t("kqv"),
        _rows("k", ex.keys),
        _rows("q", ex.queries),
        _rows("v", ex.values),
        "",
        t("scores"),
        *_per_row("q", ex.scores, 0, " → "),
        "",
        t("softmax"),
        *_per_row("q", ex.exact.weights, 2, " → "),
        "",
        t("weighted"),
        f"y₁ = {terms}",
        f"   = {parts[0]}",
        *(f"   + {part}" for part in parts[1:]),
        f"   = {_vec(ex.exact.outputs[0].tolist(), 2)}",
        "",
        t("outputs"),
        *_per_row("y", ex.exact.outputs, 2),
        "",
        t("rounded", w=rounded),
        *_per_row("y", ex.rounded.outputs, 1),
        "",
        t("scaled", s=ex.scale),
        t("scaled_scores"),
        *_per_row("q", ex.scaled.scores, 2, " → "),
        t("scaled_softmax"),
        *_per_row("q", ex.scaled.weights, 2, " → "),
        *_per_row("y", ex.scaled.outputs, 2),
    ]
    return "\n".join(lines)


def worked_example_caption(lang: str = "tr") -> str:
    """Short caption for the worked-example image (the numbers come in the message)."""
    return TEXT.text("worked_caption", lang)


def gpt_attention_caption(letters: str, answer: str, lang: str = "tr") -> str:
    """Caption for the nano-GPT's 3x3 attention grid."""
    return TEXT.text("gpt_caption", lang, letters=letters, answer=answer)


def encoder_attention_caption(
    shown_tokens: int,
    total_tokens: int,
    *,
    n_layers: int,
    n_heads: int,
    layer: int | None = None,
    lang: str = "tr",
) -> str:
    """Caption for the encoder heatmap; says so when the input was capped to shown_tokens.

    layer is 0-based as in encoder_attention_png (None: the last)."""
    layer = (n_layers - 1 if layer is None else layer % n_layers) + 1
    text = TEXT.text("encoder_caption", lang, layer=layer, n_layers=n_layers, n_heads=n_heads)
    if total_tokens > shown_tokens:
        text += TEXT.text("encoder_capped", lang, shown=shown_tokens, total=total_tokens)
    return text


def explain_caption(letters: str, answer: str, lang: str = "tr") -> str:
    """Caption for the /explain walkthrough image."""
    return TEXT.text("explain_caption", lang, letters=letters, answer=answer)
