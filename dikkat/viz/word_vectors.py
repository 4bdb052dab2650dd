"""The encoder's word embeddings made visible: cosine tables of input and contextual vectors and
a 2-D projection; and one word in two sentences."""

from __future__ import annotations

from functools import partial

import numpy as np

from dikkat.i18n import Catalog
from dikkat.models.word_vectors import cosine_matrix, pca_2d
from dikkat.viz.render import displayable, figure_to_png, fmt_number, heatmap, new_figure

TEXT = Catalog(
    {
        "inputs": {
            "tr": "Girdi gömmeleri (bağlamdan önce)",
            "en": "Input embeddings (before context)",
        },
        "contextual": {
            "tr": "Bağlamsal gömmeler (son katman)",
            "en": "Contextual embeddings (last layer)",
        },
        "plane": {
            "tr": "Bağlamsal gömmeler 2 boyutta (PCA)",
            "en": "Contextual embeddings in 2-D (PCA)",
        },
        "pc": {"tr": "bileşen {n}", "en": "component {n}"},
        "pair_title": {
            "tr": "“{word}” iki cümlede: kosinüs benzerlikleri",
            "en": "“{word}” in two sentences: cosine similarities",
        },
        "input_pair": {
            "tr": "girdi gömmesi: 1. cümle – 2. cümle",
            "en": "input embedding: sentence 1 – sentence 2",
        },
        "context_pair": {
            "tr": "bağlamsal: 1. cümle – 2. cümle",
            "en": "contextual: sentence 1 – sentence 2",
        },
        "first_alone": {
            "tr": "bağlamsal: 1. cümle – kelime tek başına",
            "en": "contextual: sentence 1 – the word alone",
        },
        "second_alone": {
            "tr": "bağlamsal: 2. cümle – kelime tek başına",
            "en": "contextual: sentence 2 – the word alone",
        },
    }
)


def word_vectors_png(
    words: list[str], inputs: np.ndarray, contextual: np.ndarray, lang: str = "tr"
) -> bytes:
    """Cosine similarity of the words' input and contextual embeddings side by side, and the
    contextual ones projected on their first two principal components."""
    t = partial(TEXT.text, lang=lang)
    labels = [displayable(word) for word in words]
    fig = new_figure(1500, 560)
    left, middle, right = fig.subplots(1, 3, width_ratios=[1, 1, 1.05])
    annotate = len(words) <= 10
    for ax, vectors, title in ((left, inputs, t("inputs")), (middle, contextual, t("contextual"))):
        heatmap(
            ax,
            cosine_matrix(vectors),
            title=title,
            row_labels=labels,
            col_labels=labels,
            fmt=fmt_number(2, strip=True) if annotate else None,
            diverging=True,
            vmax=1.0,
            annot_size=11,
            label_size=12,
        )
        ax.tick_params(axis="x", labelrotation=60)
    points = pca_2d(contextual)
    right.scatter(points[:, 0], points[:, 1], s=60, color="#0b3d91")
    for (x, y), label in zip(points, labels, strict=True):
        right.annotate(label, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=13)
    right.set_title(t("plane"), fontsize=14)
    right.set_xlabel(t("pc", n=1))
    right.set_ylabel(t("pc", n=2))
    right.margins(x=0.3, y=0.2)
    right.grid(alpha=0.3)
    return figure_to_png(fig)


def word_in_context_png(word: str, cosines: dict[str, float], lang: str = "tr") -> bytes:
    """One bar per comparison (keys: input_pair, context_pair, first_alone, second_alone)."""
    t = partial(TEXT.text, lang=lang)
    names = [t(key) for key in cosines]
    values = list(cosines.values())
    fig = new_figure(1000, 420)
    ax = fig.subplots()
    colours = ["#9db4d6" if key == "input_pair" else "#0b3d91" for key in cosines]
    bars = ax.barh(names[::-1], values[::-1], color=colours[::-1])
    for bar, value in zip(bars, values[::-1], strict=True):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{value:.2f}",
                va="center", fontsize=13)  # fmt: skip
    ax.set_xlim(min(0.0, min(values)) - 0.05, 1.12)
    ax.set_title(t("pair_title", word=displayable(word)), fontsize=16)
    ax.tick_params(labelsize=12)
    ax.grid(axis="x", alpha=0.3)
    return figure_to_png(fig)
