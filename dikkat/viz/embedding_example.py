"""One PNG for the word-embedding example: the 4 tokens in the plane before and after, the loss."""

from __future__ import annotations

from functools import partial

import numpy as np
from matplotlib.axes import Axes

from dikkat.i18n import Catalog
from dikkat.models.embedding_example import EmbeddingExample, Snapshot, train_embedding_example
from dikkat.viz.render import figure_to_png, fmt_number, new_figure

WIDTH_PX, HEIGHT_PX = 1200, 1150

TEXT = Catalog(
    {
        "title": {
            "tr": "Gömmeler (embeddings) adım adım: her token 2 sayı",
            "en": "Embeddings step by step: 2 numbers per token",
        },
        "subtitle": {
            "tr": "Eğitim cümleleri: “Troll 2 is great!” ve “Gymkata is great!” · ! = <end>",
            "en": "Training sentences: “Troll 2 is great!” and “Gymkata is great!” · ! = <end>",
        },
        "before": {
            "tr": "1 · Eğitimden önce (rastgele, tohum {seed})",
            "en": "1 · Before training (random, seed {seed})",
        },
        "after": {
            "tr": "2 · {epochs} tur geri yayılımdan sonra",
            "en": "2 · After {epochs} epochs of backpropagation",
        },
        "loss": {
            "tr": "3 · Kayıp (çapraz entropi), her tur",
            "en": "3 · Loss (cross-entropy) per epoch",
        },
        "next": {
            "tr": "4 · “is” sözcüğünden sonra ne gelir?",
            "en": "4 · What comes after “is”?",
        },
        "x": {"tr": "1. sayı (nöron 1)", "en": "number 1 (neuron 1)"},
        "y": {"tr": "2. sayı (nöron 2)", "en": "number 2 (neuron 2)"},
        "epoch": {"tr": "tur", "en": "epoch"},
        "probability": {"tr": "olasılık", "en": "probability"},
        "untrained": {"tr": "eğitimden önce", "en": "before training"},
        "trained": {"tr": "eğitimden sonra", "en": "after training"},
        "start": {"tr": "başlangıç", "en": "start"},
        "footer": {
            "tr": (
                "Ağa Troll 2 ile Gymkata'nın film olduğu söylenmedi: aynı şekilde kullanıldıkları "
                "için yakınlaştılar."
            ),
            "en": (
                "Nobody told the network that Troll 2 and Gymkata are films: they ended up close "
                "because they are used the same way."
            ),
        },
    }
)

COLORS = {"Troll 2": "#d62728", "is": "#1f77b4", "great": "#2ca02c", "Gymkata": "#9467bd"}
PAIR = ("Troll 2", "Gymkata")  # the two tokens used the same way
STEP_SIZE = 18
LABEL = 15
TICKS = 12
BLUE = "#0b3d91"


def _limits(*snapshots: Snapshot) -> tuple[tuple[float, float], tuple[float, float]]:
    """One square window that holds every point of every snapshot, so both panels compare."""
    points = np.vstack([s.embeddings.numpy() for s in snapshots])  # (n, 2)
    centre = (points.max(0) + points.min(0)) / 2
    half = (points.max(0) - points.min(0)).max() / 2 + 1.0  # room for labels
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def _label_above(snapshot: Snapshot, token: str) -> bool:
    """Label above the point unless the nearest other token is above it: close pairs stay
    readable, and centred labels stay inside the panel."""
    others = [t for t in snapshot.tokens if t != token]
    nearest = min(others, key=lambda other: snapshot.distance(token, other))
    return snapshot.embedding(token)[1] >= snapshot.embedding(nearest)[1]


def _plane(ax: Axes, snapshot: Snapshot, *, title: str, limits, start: Snapshot | None) -> None:
    """The tokens as points; the film pair joined by a dashed line with its distance."""
    a, b = (snapshot.embedding(token) for token in PAIR)
    ax.plot([a[0], b[0]], [a[1], b[1]], linestyle="--", color="#777777", linewidth=1.5, zorder=1)
    distance = fmt_number(2)(snapshot.distance(*PAIR))
    ax.text(
        0.97,
        0.03,
        f"{PAIR[0]} ↔ {PAIR[1]}: {distance}",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=LABEL,
        color="#333333",
        bbox={"boxstyle": "round", "facecolor": "#f2f2f2", "edgecolor": "#cccccc"},
    )
    for token in snapshot.tokens:
        x, y = snapshot.embedding(token)
        color = COLORS.get(token, "#333333")
        if start is not None:  # where the token began: a faint point and an arrow
            x0, y0 = start.embedding(token)
            ax.scatter([x0], [y0], s=70, color=color, alpha=0.25, zorder=2, linewidths=0)
            ax.annotate(
                "",
                (x, y),
                xytext=(x0, y0),
                arrowprops={"arrowstyle": "->", "color": color, "alpha": 0.4, "linewidth": 1.2},
                zorder=2,
            )
        ax.scatter([x], [y], s=140, color=color, zorder=3, edgecolors="white", linewidths=1.5)
        above = _label_above(snapshot, token)
        ax.annotate(
            token,
            (x, y),
            xytext=(0, 10 if above else -10),
            textcoords="offset points",
            ha="center",
            va="bottom" if above else "top",
            fontsize=LABEL,
            fontweight="bold",
            color=color,
            zorder=4,
        )
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_aspect("equal")
    ax.axhline(0, color="#dddddd", linewidth=1, zorder=0)
    ax.axvline(0, color="#dddddd", linewidth=1, zorder=0)
    ax.tick_params(labelsize=TICKS)
    ax.set_title(title, fontsize=STEP_SIZE, loc="left", color=BLUE, pad=10)


def _loss(ax: Axes, losses: tuple[float, ...], t) -> None:
    epochs = np.arange(len(losses))
    ax.plot(epochs, losses, color="#d62728", linewidth=2.5)
    for epoch in (0, len(losses) - 1):
        ax.annotate(
            fmt_number(3)(losses[epoch]),
            (epoch, losses[epoch]),
            xytext=(8, 8),
            textcoords="offset points",
            ha="left" if epoch == 0 else "right",
            fontsize=LABEL - 1,
        )
    ax.set_xlabel(t("epoch"), fontsize=LABEL - 1)
    ax.set_ylim(0, max(losses) * 1.15)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=TICKS)
    ax.set_title(t("loss"), fontsize=STEP_SIZE, loc="left", color=BLUE, pad=10)


def _next_after(ax: Axes, ex: EmbeddingExample, token: str, t) -> None:
    """Grouped bars: P(next | token) for every output, before and after training."""
    positions = np.arange(len(ex.outputs))
    width = 0.38
    for shift, snapshot, key, color, fmt in (
        (-width / 2, ex.initial, "untrained", "#aaaaaa", fmt_number(2)),
        (width / 2, ex.final, "trained", BLUE, fmt_number(3)),
    ):
        values = snapshot.probabilities[ex.tokens.index(token)].numpy()
        bars = ax.bar(positions + shift, values, width, color=color, label=t(key))
        for bar, value in zip(bars, values, strict=True):
            if value < 0.01:
                continue  # a bar too small to see needs no number either
            ax.annotate(
                fmt(float(value)),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=TICKS - 1,
            )
    ax.set_xticks(positions, list(ex.outputs))
    ax.set_ylim(0, 1.15)
    ax.set_ylabel(t("probability"), fontsize=LABEL - 1)
    ax.tick_params(labelsize=TICKS)
    ax.legend(loc="upper left", fontsize=TICKS, frameon=False)
    ax.set_title(t("next"), fontsize=STEP_SIZE, loc="left", color=BLUE, pad=10)


def embedding_example_png(lang: str = "tr", example: EmbeddingExample | None = None) -> bytes:
    """The tokens in the 2-D plane before and after training, the loss curve, the answer
    after `is` before and after, as one PNG."""
    t = partial(TEXT.text, lang=lang)
    ex = example or train_embedding_example()
    fig = new_figure(WIDTH_PX, HEIGHT_PX)
    fig.suptitle(t("title"), fontsize=24, fontweight="bold")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.45, 1])
    top.suptitle(t("subtitle"), fontsize=16, color="#333333")
    limits = _limits(ex.initial, ex.final)
    before, after = top.subplots(1, 2)
    _plane(before, ex.initial, title=t("before", seed=ex.seed), limits=limits, start=None)
    _plane(after, ex.final, title=t("after", epochs=ex.epochs), limits=limits, start=ex.initial)
    for ax in (before, after):
        ax.set_xlabel(t("x"), fontsize=LABEL - 2)
    before.set_ylabel(t("y"), fontsize=LABEL - 2)
    loss, bars = bottom.subplots(1, 2, width_ratios=[1, 1.2])
    _loss(loss, ex.losses, t)
    _next_after(bars, ex, "is", t)
    bottom.supxlabel(t("footer"), fontsize=14, color="#555555")
    return figure_to_png(fig)
