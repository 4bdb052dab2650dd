"""The nano-GPT's attention for one sorted sequence: a layers x heads grid of causal maps."""

from __future__ import annotations

from functools import partial

import numpy as np

from dikkat.i18n import Catalog
from dikkat.models.sorter import SEQUENCE_LENGTH, SortTrace
from dikkat.viz.render import figure_to_png, heatmap, new_figure

WIDTH_PX, HEIGHT_PX = 1200, 1400
INPUT_COLOR, ANSWER_COLOR = "#1a1a1a", "#c0392b"
GAMMA = 0.5  # a square-root colour scale separates the many small weights

TEXT = Catalog(
    {
        "title": {
            "tr": "Küçük GPT'nin dikkati: {letters} → {answer}",
            "en": "The tiny GPT's attention: {letters} → {answer}",
        },
        "layer": {"tr": "Katman {n}", "en": "Layer {n}"},
        "head": {"tr": "Kafa {n}", "en": "Head {n}"},
        "legend": {
            "tr": (
                "Satır: tahmin yapan konum · sütun: baktığı konum · beyaz: gelecek "
                "(maskeli)\nSiyah harfler: girdi · kırmızı harfler: modelin yazdığı cevap"
            ),
            "en": (
                "Row: position predicting · column: position attended to · white: future "
                "(masked)\nBlack letters: input · red letters: the answer the model wrote"
            ),
        },
        "weight": {"tr": "dikkat ağırlığı", "en": "attention weight"},
    }
)


def causal_mask(size: int) -> np.ndarray:
    """True above the diagonal: the future a causal model may not see."""
    return np.triu(np.ones((size, size), dtype=bool), k=1)


def gpt_attention_png(trace: SortTrace, *, answer: str | None = None, lang: str = "tr") -> bytes:
    """3x3 grid (layers x heads) of 11x11 causal attention maps labelled with the tokens."""
    t = partial(TEXT.text, lang=lang)
    attention = trace.attention.detach().float().cpu().numpy()  # (n_layer, nh, T, T)
    n_layer, n_head, size, _ = attention.shape
    tokens = list(trace.tokens)
    letters = "".join(tokens[:SEQUENCE_LENGTH])
    shown_answer = answer or "".join(tokens[SEQUENCE_LENGTH:]) + "…"
    colors = [INPUT_COLOR if i < SEQUENCE_LENGTH else ANSWER_COLOR for i in range(size)]
    mask = causal_mask(size)

    fig = new_figure(WIDTH_PX, HEIGHT_PX)
    fig.suptitle(t("title", letters=letters, answer=shown_answer), fontsize=26, fontweight="bold")
    axes = fig.subplots(n_layer, n_head, squeeze=False)
    image = None
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer, head]
            image = heatmap(
                ax,
                attention[layer, head],
                row_labels=tokens,
                col_labels=tokens,
                cmap="viridis",
                vmin=0.0,
                vmax=1.0,
                gamma=GAMMA,
                mask=mask,
                label_size=13,
                cell_lines=False,
                label_colors=colors,
            )
            ax.axhline(SEQUENCE_LENGTH - 0.5, color="white", linewidth=1.5, linestyle="--")
            ax.axvline(SEQUENCE_LENGTH - 0.5, color="white", linewidth=1.5, linestyle="--")
            if layer == 0:
                ax.set_title(t("head", n=head + 1), fontsize=20, fontweight="bold", pad=10)
            if head == 0:
                ax.set_ylabel(t("layer", n=layer + 1), fontsize=20, fontweight="bold")
    if image is not None:
        bar = fig.colorbar(
            image, ax=axes, orientation="horizontal", fraction=0.03, pad=0.02, aspect=50
        )
        bar.set_label(t("weight"), fontsize=15)
        bar.ax.tick_params(labelsize=13)
    fig.supxlabel(t("legend"), fontsize=15, color="#444444")
    return figure_to_png(fig)
