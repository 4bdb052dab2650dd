"""The encoder's attention over a sentence: one layer, heads averaged, plus every head small."""

from __future__ import annotations

import textwrap
from functools import partial

import numpy as np

from dikkat.i18n import Catalog
from dikkat.viz.render import PixelLayout, displayable, figure_to_png, fmt_number, heatmap

WIDTH_PX = 1200
HEADS_PER_ROW = 4
ANNOTATE_MAX_TOKENS = 12  # write the weights into the cells up to this many tokens
GAMMA = 0.5  # square-root colour scale: [CLS]/[SEP] soak up attention, the rest stays visible

TEXT = Catalog(
    {
        "subtitle": {
            "tr": "Katman {layer}/{layers} · {heads} kafanın ortalaması · {n} token",
            "en": "Layer {layer}/{layers} · mean of {heads} heads · {n} tokens",
        },
        "heads": {
            "tr": "Katman {layer}: her kafa ayrı (renk ölçeği 0 – {top:g})",
            "en": "Layer {layer}: every head on its own (colour scale 0 – {top:g})",
        },
        "head": {"tr": "Kafa {n}", "en": "Head {n}"},
        "legend": {
            "tr": "Satır: bakan token · sütun: bakılan token · her satırın toplamı 1",
            "en": "Row: token attending · column: token attended to · each row sums to 1",
        },
    }
)


def cap_tokens(
    tokens: list[str], attention: np.ndarray, max_tokens: int
) -> tuple[list[str], np.ndarray, bool]:
    """Keep the first token ([CLS]), the first ones after it and the last ([SEP]); renormalise rows.

    attention is (layers, heads, T, T); returns (tokens, attention, capped)."""
    if max_tokens < 3:
        raise ValueError("max_tokens must be at least 3 ([CLS], one token, [SEP])")
    att = np.asarray(attention, dtype=np.float64)
    if att.ndim != 4 or att.shape[-1] != att.shape[-2] or att.shape[-1] != len(tokens):
        raise ValueError(f"attention of shape {att.shape} does not fit {len(tokens)} tokens")
    if len(tokens) <= max_tokens:
        return list(tokens), att, False
    keep = [*range(max_tokens - 1), len(tokens) - 1]
    sub = att[:, :, keep][:, :, :, keep]  # (L, H, N, N)
    totals = sub.sum(axis=-1, keepdims=True)
    sub = np.divide(sub, totals, out=np.full_like(sub, 1.0 / len(keep)), where=totals > 0)
    return [tokens[i] for i in keep], sub, True


def _top(values: np.ndarray) -> float:
    """Colour-scale top: the largest weight rounded up to a tenth (weights are at most 1)."""
    return min(1.0, max(0.1, float(np.ceil(values.max() * 10) / 10)))


def _label_px(tokens: list[str], size: float) -> float:
    return 16 + 0.62 * size * 100 / 72 * max(len(t) for t in tokens)


def encoder_attention_png(
    tokens: list[str],
    attention: np.ndarray,
    *,
    layer: int | None = None,
    title: str,
    lang: str = "tr",
) -> bytes:
    """The chosen layer (default: last) with heads averaged as one big labelled heatmap, then
    every head as a small multiple."""
    t = partial(TEXT.text, lang=lang)
    att = np.asarray(attention, dtype=np.float64)  # (L, H, T, T)
    n_layers, n_heads, size, _ = att.shape
    if len(tokens) != size:
        raise ValueError(f"{len(tokens)} tokens but attention over {size}")
    index = n_layers - 1 if layer is None else layer
    if not -n_layers <= index < n_layers:
        raise ValueError(f"layer {layer} out of range for {n_layers} layers")
    index %= n_layers
    chosen = att[index]  # (H, T, T)
    labels = [displayable(tok) for tok in tokens]
    label_size = 15 if size <= 16 else 12
    margin = _label_px(labels, label_size)
    upright = size <= ANNOTATE_MAX_TOKENS and max(len(label) for label in labels) <= 7
    top = 44 if upright else margin + 4  # column labels written across or rotated

    page = PixelLayout(WIDTH_PX)
    page.y += 6
    page.text(textwrap.fill(displayable(title), 52), size=24, fontweight="bold", after_px=6)
    subtitle = t("subtitle", layer=index + 1, layers=n_layers, heads=n_heads, n=size)
    page.text(subtitle, size=16, color="#444444", after_px=0)

    side = WIDTH_PX - margin - 110
    (big, bar) = page.row(side, [1, 0.03], top_px=top, left_px=margin, gap_px=14, right_px=60)
    annotate = size <= ANNOTATE_MAX_TOKENS
    mean = chosen.mean(axis=0)  # (T, T)
    heads_top = _top(chosen)
    image = heatmap(
        big,
        mean,
        row_labels=labels,
        col_labels=labels,
        cmap="viridis",
        vmin=0.0,
        vmax=_top(mean),
        gamma=GAMMA,
        fmt=fmt_number(2, strip=True) if annotate else None,
        annot_size=16 if size <= 8 else 13,
        label_size=label_size,
        cell_lines=annotate,
    )
    big.tick_params(axis="x", labelrotation=0 if upright else 90)
    colorbar = page.fig.colorbar(image, cax=bar)
    colorbar.ax.tick_params(labelsize=13)
    page.text(t("legend"), size=14, color="#444444", after_px=4)

    page.y += 16
    page.text(
        t("heads", layer=index + 1, top=heads_top),
        size=20,
        x_px=12,
        fontweight="bold",
        color="#0b3d91",
        after_px=0,
    )
    cell = (WIDTH_PX - 24 - 16 * (HEADS_PER_ROW - 1)) / HEADS_PER_ROW
    for start in range(0, n_heads, HEADS_PER_ROW):
        heads = list(range(start, min(start + HEADS_PER_ROW, n_heads)))
        axes = page.row(cell, [1] * HEADS_PER_ROW, top_px=36, left_px=12, right_px=12, gap_px=16)
        for ax, head in zip(axes, heads + [None] * HEADS_PER_ROW, strict=False):
            if head is None:
                ax.set_axis_off()
                continue
            heatmap(
                ax,
                chosen[head],
                title=t("head", n=head + 1),
                cmap="viridis",
                vmin=0.0,
                vmax=heads_top,
                gamma=GAMMA,
                cell_lines=False,
                title_size=16,
            )
    return figure_to_png(page.finish())
