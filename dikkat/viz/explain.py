"""`/explain`: a one-page walkthrough PNG of the nano-GPT forward pass (models/explain.py)."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.image import AxesImage

from dikkat.i18n import Catalog
from dikkat.models.explain import ExplainTrace
from dikkat.models.sorter import ALPHABET, SEQUENCE_LENGTH
from dikkat.viz.render import PixelLayout, figure_to_png, fmt_number, heatmap

WIDTH_PX = 1200
STEP_COLOR = "#0b3d91"
ANSWER_COLOR = "#c0392b"

TEXT = Catalog(
    {
        "title": {
            "tr": "Küçük GPT'nin içi: {letters} → {answer}",
            "en": "Inside the tiny GPT: {letters} → {answer}",
        },
        "subtitle": {
            "tr": (
                "11 token (6 girdi + cevabın ilk 5 harfi) · her token 48 sayılık bir vektör · 3 "
                "blok, 3 kafa"
            ),
            "en": (
                "11 tokens (6 input + the first 5 answer letters) · each token a vector of 48 "
                "numbers · 3 blocks, 3 heads"
            ),
        },
        "row1": {
            "tr": "Gömme: her harf ve her konum bir vektöre dönüşür, ikisi toplanır",
            "en": "Embeddings: each letter and each position becomes a vector; add them",
        },
        "row2": {
            "tr": "Blok 1 · LayerNorm, sonra her token için sorgu, anahtar, değer",
            "en": "Block 1 · LayerNorm, then a query, key and value for every token",
        },
        "row3": {
            "tr": "Blok 1 · Kafa 1: skorlar q·kᵀ/√16, sonra softmax (gelecek maskeli)",
            "en": "Block 1 · Head 1: scores q·kᵀ/√16, then softmax (future masked)",
        },
        "row4": {
            "tr": "Blok 1 · Kafaların çıktısı birleşir, izdüşüm, artık bağlantı",
            "en": "Block 1 · The heads' outputs are joined, projected, added to the residual",
        },
        "row5": {
            "tr": "Blok 1 · MLP: 48 → 192 (GELU) → 48, artık bağlantı",
            "en": "Block 1 · MLP: 48 → 192 (GELU) → 48, residual",
        },
        "row6": {
            "tr": "Blok 2 ve 3: aynı adımlar (kafaların ortalama dikkati, bloğun çıktısı)",
            "en": "Blocks 2 and 3: the same steps (heads' mean attention, block output)",
        },
        "row7": {
            "tr": "Son LayerNorm → logitler → softmax → sonraki harf",
            "en": "Final LayerNorm → logits → softmax → next letter",
        },
        "tok": {"tr": "1 Token gömmesi (wte)", "en": "1 Token embedding (wte)"},
        "pos": {"tr": "2 Konum gömmesi (wpe)", "en": "2 Position embedding (wpe)"},
        "sum": {"tr": "3 Toplam = girdi x", "en": "3 Sum = input x"},
        "ln1": {"tr": "4 LayerNorm (ln_1)", "en": "4 LayerNorm (ln_1)"},
        "q": {"tr": "5 Sorgu q", "en": "5 Query q"},
        "k": {"tr": "Anahtar k", "en": "Key k"},
        "v": {"tr": "Değer v", "en": "Value v"},
        "scores": {"tr": "6 Skorlar q·kᵀ/√16", "en": "6 Scores q·kᵀ/√16"},
        "softmax": {"tr": "7 softmax → dikkat", "en": "7 softmax → attention"},
        "heads": {"tr": "8 Dikkat · v (3 kafa)", "en": "8 Attention · v (3 heads)"},
        "proj": {"tr": "9 İzdüşüm (c_proj)", "en": "9 Projection (c_proj)"},
        "resid1": {"tr": "10 x + dikkat", "en": "10 x + attention"},
        "ln2": {"tr": "11 LayerNorm (ln_2)", "en": "11 LayerNorm (ln_2)"},
        "hidden": {"tr": "12 MLP gizli katman (GELU)", "en": "12 MLP hidden layer (GELU)"},
        "mlp": {"tr": "13 MLP çıktısı", "en": "13 MLP output"},
        "resid2": {"tr": "14 x + MLP", "en": "14 x + MLP"},
        "block_att": {"tr": "Blok {n} dikkati", "en": "Block {n} attention"},
        "block_out": {"tr": "Blok {n} çıktısı", "en": "Block {n} output"},
        "lnf": {"tr": "15 Son LayerNorm (ln_f)", "en": "15 Final LayerNorm (ln_f)"},
        "logits": {"tr": "16 Logitler", "en": "16 Logits"},
        "probs": {"tr": "17 softmax → tahmin", "en": "17 softmax → prediction"},
        "result": {"tr": "Tahmin: {letters} → {answer}", "en": "Prediction: {letters} → {answer}"},
    }
)

ROW_SIZE, TITLE_SIZE, LABEL_SIZE = 19, 14, 12
VECTOR_ROW_PX, MATRIX_ROW_PX = 264, 506  # 11 rows of 24 px; 11 rows of 46 px
LABEL_GAP = 62  # room for the "10 C" row labels of the next panel
CBAR_LABELS = 48  # room for a colour bar's tick labels


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _limit(*tensors: torch.Tensor, q: float = 0.99) -> float:
    """A shared colour limit: the q-quantile of |values|, so a few outliers do not wash out."""
    values = torch.cat([t.detach().float().abs().flatten() for t in tensors])
    return float(torch.quantile(values, q)) or 1.0


def _heading(page: PixelLayout, text: str) -> None:
    page.y += 10
    page.text(text, size=ROW_SIZE, x_px=12, color=STEP_COLOR, fontweight="bold", after_px=0)


def _colorbar(page: PixelLayout, image: AxesImage, ax: Axes) -> None:
    bar = page.fig.colorbar(image, cax=ax)
    bar.ax.tick_params(labelsize=11)
    bar.ax.locator_params(nbins=5)


def explain_trace_png(trace: ExplainTrace, *, lang: str = "tr") -> bytes:
    """Render an ExplainTrace as a tall one-page walkthrough in the LLM-visualisation order."""
    t = partial(TEXT.text, lang=lang)
    labels = [f"{i} {tok}" for i, tok in enumerate(trace.tokens)]
    colors = ["#1a1a1a" if i < SEQUENCE_LENGTH else ANSWER_COLOR for i in range(len(labels))]
    b0 = trace.blocks[0]
    T = len(labels)
    mask = np.triu(np.ones((T, T), dtype=bool), k=1)
    common = dict(title_size=TITLE_SIZE, label_size=LABEL_SIZE, label_colors=colors)
    vec = dict(diverging=True, cell_lines=False, **common)
    cbar = 0.04  # width ratio of a colour bar slot

    page = PixelLayout(WIDTH_PX)
    page.y += 8
    page.text(
        t("title", letters=trace.letters, answer=trace.answer),
        size=28,
        fontweight="bold",
        after_px=8,
    )
    page.text(t("subtitle"), size=15, color="#444444")

    # 1-3 embeddings, one shared scale
    _heading(page, t("row1"))
    axes = page.row(
        VECTOR_ROW_PX, [1, 1, 1, cbar], gap_px=[LABEL_GAP, LABEL_GAP, 10], right_px=CBAR_LABELS
    )
    lim = _limit(trace.tok_emb, trace.pos_emb, trace.x0)
    for ax, key, m in zip(
        axes, ("tok", "pos", "sum"), (trace.tok_emb, trace.pos_emb, trace.x0), strict=False
    ):
        image = heatmap(ax, _np(m), title=t(key), row_labels=labels, vmax=lim, **vec)
    _colorbar(page, image, axes[3])

    # 4-5 LayerNorm, then q/k/v of head 1
    _heading(page, t("row2"))
    axes = page.row(
        VECTOR_ROW_PX,
        [2.4, cbar, 1, 1, 1, cbar],
        gap_px=[10, CBAR_LABELS, 12, 12, 10],
        right_px=CBAR_LABELS,
    )
    image = heatmap(
        axes[0], _np(b0.ln_1), title=t("ln1"), row_labels=labels, vmax=_limit(b0.ln_1), **vec
    )
    _colorbar(page, image, axes[1])
    lim = _limit(b0.q[0], b0.k[0], b0.v[0])
    for ax, key, m in zip(axes[2:5], "qkv", (b0.q[0], b0.k[0], b0.v[0]), strict=True):
        image = heatmap(ax, _np(m), title=t(key), vmax=lim, **vec)
    _colorbar(page, image, axes[5])

    # 6-7 scores and softmax of head 1, with the numbers
    _heading(page, t("row3"))
    axes = page.row(MATRIX_ROW_PX, [1, 1], top_px=62, gap_px=LABEL_GAP)
    heatmap(
        axes[0],
        _np(b0.scores[0]),
        title=t("scores"),
        row_labels=labels,
        col_labels=trace.tokens,
        fmt=fmt_number(1),
        mask=mask,
        annot_size=11,
        **{**vec, "cell_lines": True},
    )
    heatmap(
        axes[1],
        _np(b0.attention[0]),
        title=t("softmax"),
        row_labels=labels,
        col_labels=trace.tokens,
        fmt=fmt_number(2, strip=True),
        mask=mask,
        cmap="viridis",
        vmin=0,
        vmax=1,
        annot_size=11,
        **common,
    )

    # 8-10 heads joined, projection, residual
    _heading(page, t("row4"))
    axes = page.row(
        VECTOR_ROW_PX, [1, 1, 1, cbar], gap_px=[LABEL_GAP, LABEL_GAP, 10], right_px=CBAR_LABELS
    )
    lim = _limit(b0.heads, b0.attn_out, b0.x_mid)
    for ax, key, m in zip(
        axes, ("heads", "proj", "resid1"), (b0.heads, b0.attn_out, b0.x_mid), strict=False
    ):
        image = heatmap(ax, _np(m), title=t(key), row_labels=labels, vmax=lim, **vec)
    _colorbar(page, image, axes[3])

    # 11-14 MLP: LayerNorm, hidden layer and output each on their own scale
    _heading(page, t("row5"))
    axes = page.row(
        VECTOR_ROW_PX,
        [1, cbar, 1.6, cbar, 1, 1, cbar],
        gap_px=[8, CBAR_LABELS, 8, CBAR_LABELS, 12, 8],
        right_px=CBAR_LABELS,
    )
    image = heatmap(
        axes[0], _np(b0.ln_2), title=t("ln2"), row_labels=labels, vmax=_limit(b0.ln_2), **vec
    )
    _colorbar(page, image, axes[1])
    image = heatmap(
        axes[2], _np(b0.mlp_hidden), title=t("hidden"), vmax=_limit(b0.mlp_hidden), **vec
    )
    _colorbar(page, image, axes[3])
    lim = _limit(b0.mlp_out, b0.x_out)
    heatmap(axes[4], _np(b0.mlp_out), title=t("mlp"), vmax=lim, **vec)
    image = heatmap(axes[5], _np(b0.x_out), title=t("resid2"), vmax=lim, **vec)
    _colorbar(page, image, axes[6])

    # blocks 2 and 3 summarised: heads' mean attention and the block's output
    _heading(page, t("row6"))
    later = trace.blocks[1:]
    axes = page.row(
        VECTOR_ROW_PX,
        [1, 1.5] * len(later) + [cbar],
        gap_px=[16] * (2 * len(later) - 1) + [10],
        right_px=CBAR_LABELS,
    )
    lim = _limit(*(block.x_out for block in later))
    for i, block in enumerate(later):
        n = i + 2
        heatmap(
            axes[2 * i],
            _np(block.attention.mean(0)),
            title=t("block_att", n=n),
            row_labels=labels if i == 0 else None,
            mask=mask,
            cmap="viridis",
            vmin=0,
            vmax=1,
            gamma=0.5,
            cell_lines=False,
            **common,
        )
        image = heatmap(
            axes[2 * i + 1], _np(block.x_out), title=t("block_out", n=n), vmax=lim, **vec
        )
    _colorbar(page, image, axes[-1])

    # 15-17 final LayerNorm, logits, softmax and the predicted letter
    _heading(page, t("row7"))
    axes = page.row(
        VECTOR_ROW_PX + 44,
        [2, cbar, 1, 1],
        top_px=62,
        gap_px=[10, CBAR_LABELS, 16],
        right_px=70,
    )
    image = heatmap(
        axes[0], _np(trace.ln_f), title=t("lnf"), row_labels=labels, vmax=_limit(trace.ln_f), **vec
    )
    _colorbar(page, image, axes[1])
    vocab = list(ALPHABET)
    heatmap(
        axes[2],
        _np(trace.logits),
        title=t("logits"),
        col_labels=vocab,
        fmt=fmt_number(1),
        diverging=True,
        annot_size=13,
        title_size=TITLE_SIZE,
        label_size=LABEL_SIZE + 2,
    )
    heatmap(
        axes[3],
        _np(trace.probs),
        title=t("probs"),
        col_labels=vocab,
        fmt=fmt_number(2, strip=True),
        vmin=0,
        vmax=1,
        annot_size=13,
        title_size=TITLE_SIZE,
        label_size=LABEL_SIZE + 2,
    )
    for i, letter in enumerate(trace.predictions):
        in_answer = i >= SEQUENCE_LENGTH - 1
        axes[3].text(
            len(vocab) - 0.3,
            i,
            f"→ {letter}",
            va="center",
            ha="left",
            clip_on=False,
            fontsize=15,
            fontweight="bold" if in_answer else "normal",
            color=ANSWER_COLOR if in_answer else "#999999",
        )
    page.y += 6
    page.text(
        t("result", letters=trace.letters, answer=trace.answer),
        size=26,
        fontweight="bold",
        color=ANSWER_COLOR,
    )
    return figure_to_png(page.finish())
