"""One PNG that lays out the classic 3-token self-attention example step by step."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from dikkat.i18n import Catalog
from dikkat.models.worked_example import WorkedExample, worked_example
from dikkat.viz.render import figure_to_png, fmt_number, heatmap, new_figure

WIDTH_PX, HEIGHT_PX = 1200, 2000

TEXT = Catalog(
    {
        "title": {
            "tr": "Self-attention adım adım: 3 girdi, 4 → 3 boyut",
            "en": "Self-attention step by step: 3 inputs, 4 → 3 dimensions",
        },
        "step1": {
            "tr": "1 · Girdiler X ve öğrenilen ağırlıklar",
            "en": "1 · Inputs X and the learned weights",
        },
        "step2": {
            "tr": "2 · Her girdinin anahtarı, sorgusu ve değeri",
            "en": "2 · Every input's key, query and value",
        },
        "step3": {
            "tr": "3 · Skorlar Q·Kᵀ, sonra her satıra softmax",
            "en": "3 · Scores Q·Kᵀ, then softmax over each row",
        },
        "step4": {
            "tr": "4 · Değerleri softmax ağırlıklarıyla topla → çıktılar",
            "en": "4 · Sum the values weighted by the softmax → outputs",
        },
        "step5": {
            "tr": "5 · Gerçek transformer'lar skorları √d = √3 ≈ 1.73'e böler",
            "en": "5 · Real transformers divide the scores by √d = √3 ≈ 1.73",
        },
        "inputs": {"tr": "Girdiler X", "en": "Inputs X"},
        "keys": {"tr": "Anahtarlar K", "en": "Keys K"},
        "queries": {"tr": "Sorgular Q", "en": "Queries Q"},
        "values": {"tr": "Değerler V", "en": "Values V"},
        "scores": {"tr": "Skorlar Q·Kᵀ", "en": "Scores Q·Kᵀ"},
        "softmax": {"tr": "softmax (tam)", "en": "softmax (exact)"},
        "rounded": {"tr": "softmax (yuvarlatılmış)", "en": "softmax (rounded)"},
        "weighted": {"tr": "Ağırlıklı değerler (girdi 1)", "en": "Weighted values (input 1)"},
        "outputs": {"tr": "Çıktılar (tam)", "en": "Outputs (exact)"},
        "outputs_rounded": {"tr": "Çıktılar (yuvarlatılmış)", "en": "Outputs (rounded)"},
        "scaled_scores": {"tr": "Skorlar / √3", "en": "Scores / √3"},
        "scaled_softmax": {"tr": "softmax", "en": "softmax"},
        "scaled_outputs": {"tr": "Çıktılar", "en": "Outputs"},
        "footer": {
            "tr": "Satırlar: sorgu (bakan girdi) · Sütunlar: anahtar (bakılan girdi)",
            "en": "Rows: query (the input looking) · Columns: key (the input looked at)",
        },
    }
)

SUB = "₁₂₃₄"
STEP_SIZE = 20
ANNOT = 17
LABEL = 17
TITLE = 16


# Colour scales shared by the panels of one kind, so equal numbers look equal across steps.
SCORES = {"cmap": "Reds", "vmin": 0, "vmax": 20}
WEIGHTS = {"cmap": "Blues", "vmin": 0, "vmax": 1.2}
OUTPUTS = {"cmap": "Purples", "vmin": 0, "vmax": 12}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _names(letter: str, n: int = 3) -> list[str]:
    return [f"{letter}{SUB[i]}" for i in range(n)]


def worked_example_png(lang: str = "tr", example: WorkedExample | None = None) -> bytes:
    """The steps (inputs, K/Q/V, scores, softmax, weighted values, outputs, scaling) as one PNG."""
    t = partial(TEXT.text, lang=lang)
    ex = example or worked_example()
    fig = new_figure(WIDTH_PX, HEIGHT_PX)
    fig.suptitle(t("title"), fontsize=24, fontweight="bold")
    rows = fig.subfigures(5, 1, height_ratios=[1.15, 0.95, 0.95, 1.1, 0.95], hspace=0.02)
    ints, one, two = fmt_number(0), fmt_number(1), fmt_number(2)
    xs, ks, qs, vs = _names("x"), _names("k"), _names("q"), _names("v")
    opts = dict(annot_size=ANNOT, label_size=LABEL, title_size=TITLE)

    # 1: inputs and weights
    rows[0].suptitle(t("step1"), fontsize=STEP_SIZE, x=0.02, ha="left", color="#0b3d91")
    axes = rows[0].subplots(1, 4, width_ratios=[4, 3, 3, 3])
    heatmap(
        axes[0],
        _np(ex.inputs),
        title=t("inputs"),
        row_labels=xs,
        fmt=ints,
        cmap="Greys",
        vmin=0,
        vmax=5,
        **opts,
    )
    for ax, name, w, cmap in (
        (axes[1], "W_K", ex.w_key, "Oranges"),
        (axes[2], "W_Q", ex.w_query, "Greens"),
        (axes[3], "W_V", ex.w_value, "Purples"),
    ):
        heatmap(ax, _np(w), title=name, fmt=ints, cmap=cmap, vmin=0, vmax=6, **opts)

    # 2: keys, queries, values
    rows[1].suptitle(t("step2"), fontsize=STEP_SIZE, x=0.02, ha="left", color="#0b3d91")
    axes = rows[1].subplots(1, 3)
    for ax, key, names, m, cmap, formula in (
        (axes[0], "keys", ks, ex.keys, "Oranges", "X·W_K"),
        (axes[1], "queries", qs, ex.queries, "Greens", "X·W_Q"),
        (axes[2], "values", vs, ex.values, "Purples", "X·W_V"),
    ):
        title = f"{t(key)} = {formula}"
        heatmap(
            ax, _np(m), title=title, row_labels=names, fmt=ints, cmap=cmap, vmin=0, vmax=12, **opts
        )

    # 3: scores and softmax
    rows[2].suptitle(t("step3"), fontsize=STEP_SIZE, x=0.02, ha="left", color="#0b3d91")
    axes = rows[2].subplots(1, 3)
    heatmap(
        axes[0],
        _np(ex.scores),
        title=t("scores"),
        row_labels=qs,
        col_labels=ks,
        fmt=ints,
        **SCORES,
        **opts,
    )
    heatmap(
        axes[1],
        _np(ex.exact.weights),
        title=t("softmax"),
        row_labels=qs,
        col_labels=ks,
        fmt=two,
        **WEIGHTS,
        **opts,
    )
    heatmap(
        axes[2],
        _np(ex.rounded.weights),
        title=t("rounded"),
        row_labels=qs,
        col_labels=ks,
        fmt=one,
        **WEIGHTS,
        **opts,
    )

    # 4: weighted values for input 1, outputs
    rows[3].suptitle(t("step4"), fontsize=STEP_SIZE, x=0.02, ha="left", color="#0b3d91")
    axes = rows[3].subplots(1, 3, width_ratios=[1.25, 1, 1])
    weights = _np(ex.exact.weights)[0]
    first = np.vstack([_np(ex.exact.weighted[0]), _np(ex.exact.outputs[0])[None, :]])  # (4, 3)
    labels = [f"{w:.2f}·{v}" for w, v in zip(weights, vs, strict=True)] + ["Σ = y₁"]
    heatmap(
        axes[0],
        first,
        title=t("weighted"),
        row_labels=labels,
        fmt=two,
        **OUTPUTS,
        **opts,
    )
    axes[0].axhline(2.5, color="#333333", linewidth=2.5)
    ys = _names("y")
    heatmap(
        axes[1],
        _np(ex.exact.outputs),
        title=t("outputs"),
        row_labels=ys,
        fmt=two,
        **OUTPUTS,
        **opts,
    )
    heatmap(
        axes[2],
        _np(ex.rounded.outputs),
        title=t("outputs_rounded"),
        row_labels=ys,
        fmt=one,
        **OUTPUTS,
        **opts,
    )

    # 5: scaled variant
    rows[4].suptitle(t("step5"), fontsize=STEP_SIZE, x=0.02, ha="left", color="#0b3d91")
    axes = rows[4].subplots(1, 3)
    heatmap(
        axes[0],
        _np(ex.scaled.scores),
        title=t("scaled_scores"),
        row_labels=qs,
        col_labels=ks,
        fmt=two,
        cmap="Reds",
        vmin=0,
        vmax=20 / ex.scale,
        **opts,
    )
    heatmap(
        axes[1],
        _np(ex.scaled.weights),
        title=t("scaled_softmax"),
        row_labels=qs,
        col_labels=ks,
        fmt=two,
        **WEIGHTS,
        **opts,
    )
    heatmap(
        axes[2],
        _np(ex.scaled.outputs),
        title=t("scaled_outputs"),
        row_labels=ys,
        fmt=two,
        **OUTPUTS,
        **opts,
    )
    rows[4].supxlabel(t("footer"), fontsize=14, color="#555555")
    return figure_to_png(fig)
