"""`/explain`: the nano-GPT forward pass stepped through by hand, and a one-page walkthrough PNG."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.image import AxesImage
from torch.nn import functional as F

from dikkat.models.gpt import GPT
from dikkat.models.sorter import ALPHABET, SEQUENCE_LENGTH, decode, encode
from dikkat.viz.render import PixelLayout, figure_to_png, fmt_number, heatmap, language


@dataclass(frozen=True)
class BlockTrace:
    """Every intermediate of one pre-LayerNorm block, batch dimension dropped."""

    x_in: torch.Tensor  # (T, C) residual stream entering the block
    ln_1: torch.Tensor  # (T, C)
    q: torch.Tensor  # (nh, T, hs)
    k: torch.Tensor  # (nh, T, hs)
    v: torch.Tensor  # (nh, T, hs)
    scores: torch.Tensor  # (nh, T, T) q·kᵀ/√hs, -inf above the diagonal
    attention: torch.Tensor  # (nh, T, T) softmax of scores
    heads: torch.Tensor  # (T, C) attention-weighted values, heads side by side
    attn_out: torch.Tensor  # (T, C) after c_proj
    x_mid: torch.Tensor  # (T, C) x_in + attn_out
    ln_2: torch.Tensor  # (T, C)
    mlp_hidden: torch.Tensor  # (T, 4C) after GELU
    mlp_out: torch.Tensor  # (T, C) after mlp.c_proj
    x_out: torch.Tensor  # (T, C) x_mid + mlp_out


@dataclass(frozen=True)
class ExplainTrace:
    """The real tensors of one 11-token forward pass (6 letters in, 5 of the answer fed back)."""

    letters: str
    tokens: list[str]  # T = 11 letters
    idx: torch.Tensor  # (T,)
    tok_emb: torch.Tensor  # (T, C) wte
    pos_emb: torch.Tensor  # (T, C) wpe
    x0: torch.Tensor  # (T, C) tok_emb + pos_emb
    blocks: list[BlockTrace]
    ln_f: torch.Tensor  # (T, C)
    logits: torch.Tensor  # (T, vocab)
    probs: torch.Tensor  # (T, vocab)

    @property
    def attention(self) -> torch.Tensor:
        """All attention maps, as the forward returns them: (n_layer, nh, T, T)."""
        return torch.stack([block.attention for block in self.blocks])

    @property
    def predictions(self) -> str:
        """The greedy next letter at every position."""
        return decode(self.logits.argmax(dim=-1).tolist())

    @property
    def answer(self) -> str:
        """The sorted letters: predictions at the last input position and after it."""
        return self.predictions[SEQUENCE_LENGTH - 1 :]


def _validate(letters: str) -> str:
    letters = letters.strip().upper()
    if len(letters) != SEQUENCE_LENGTH or any(ch not in ALPHABET for ch in letters):
        raise ValueError(f"expected {SEQUENCE_LENGTH} letters over {ALPHABET!r}, got {letters!r}")
    return letters


def _block(block: torch.nn.Module, x: torch.Tensor, n_head: int) -> BlockTrace:
    B, T, C = x.size()
    attn = block.attn
    ln_1 = block.ln_1(x)  # (B, T, C)
    q, k, v = attn.c_attn(ln_1).split(C, dim=2)
    q = q.view(B, T, n_head, C // n_head).transpose(1, 2)  # (B, nh, T, hs)
    k = k.view(B, T, n_head, C // n_head).transpose(1, 2)  # (B, nh, T, hs)
    v = v.view(B, T, n_head, C // n_head).transpose(1, 2)  # (B, nh, T, hs)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # (B, nh, T, T)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device))
    scores = scores.masked_fill(~causal, float("-inf"))
    att = F.softmax(scores, dim=-1)  # (B, nh, T, T)
    heads = (att @ v).transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
    attn_out = attn.c_proj(heads)  # (B, T, C)
    x_mid = x + attn_out
    ln_2 = block.ln_2(x_mid)  # (B, T, C)
    hidden = block.mlp.gelu(block.mlp.c_fc(ln_2))  # (B, T, 4C)
    mlp_out = block.mlp.c_proj(hidden)  # (B, T, C)
    x_out = x_mid + mlp_out
    parts = (x, ln_1, q, k, v, scores, att, heads, attn_out, x_mid, ln_2, hidden, mlp_out, x_out)
    return BlockTrace(*(p[0].detach().cpu() for p in parts))


@torch.no_grad()
def explain_trace(model: GPT, letters: str) -> ExplainTrace:
    """Sort greedily, then step the 11-token forward pass through module by module (no dropout)."""
    letters = _validate(letters)
    device = next(model.parameters()).device
    prompt = torch.tensor([encode(letters)], dtype=torch.long, device=device)  # (1, 6)
    idx = model.generate(prompt, SEQUENCE_LENGTH)[:, :-1]  # (1, 11)
    T = idx.size(1)
    tr = model.transformer
    tok_emb = tr.wte(idx)  # (1, T, C)
    pos_emb = tr.wpe(torch.arange(T, device=device))[None]  # (1, T, C)
    x = tok_emb + pos_emb
    blocks = []
    for block in tr.h:
        blocks.append(_block(block, x, model.config.n_head))
        x = blocks[-1].x_out[None].to(device)
    ln_f = tr.ln_f(x)  # (1, T, C)
    logits = model.lm_head(ln_f)  # (1, T, vocab)
    return ExplainTrace(
        letters=letters,
        tokens=list(decode(idx[0].tolist())),
        idx=idx[0].cpu(),
        tok_emb=tok_emb[0].cpu(),
        pos_emb=pos_emb[0].cpu(),
        x0=(tok_emb + pos_emb)[0].cpu(),
        blocks=blocks,
        ln_f=ln_f[0].cpu(),
        logits=logits[0].cpu(),
        probs=F.softmax(logits, dim=-1)[0].cpu(),
    )


# --- rendering ---------------------------------------------------------------------------------

WIDTH_PX = 1200
STEP_COLOR = "#0b3d91"
ANSWER_COLOR = "#c0392b"

TEXT: dict[str, dict[str, str]] = {
    "tr": {
        "title": "Küçük GPT'nin içi: {letters} → {answer}",
        "subtitle": "11 token (6 girdi + cevabın ilk 5 harfi) · her token 48 sayılık bir vektör "
        "· 3 blok, 3 kafa",
        "row1": "Gömme: her harf ve her konum bir vektöre dönüşür, ikisi toplanır",
        "row2": "Blok 1 · LayerNorm, sonra her token için sorgu, anahtar, değer",
        "row3": "Blok 1 · Kafa 1: skorlar q·kᵀ/√16, sonra softmax (gelecek maskeli)",
        "row4": "Blok 1 · Kafaların çıktısı birleşir, izdüşüm, artık bağlantı",
        "row5": "Blok 1 · MLP: 48 → 192 (GELU) → 48, artık bağlantı",
        "row6": "Blok 2 ve 3: aynı adımlar (kafaların ortalama dikkati, bloğun çıktısı)",
        "row7": "Son LayerNorm → logitler → softmax → sonraki harf",
        "tok": "1 Token gömmesi (wte)",
        "pos": "2 Konum gömmesi (wpe)",
        "sum": "3 Toplam = girdi x",
        "ln1": "4 LayerNorm (ln_1)",
        "q": "5 Sorgu q",
        "k": "Anahtar k",
        "v": "Değer v",
        "scores": "6 Skorlar q·kᵀ/√16",
        "softmax": "7 softmax → dikkat",
        "heads": "8 Dikkat · v (3 kafa)",
        "proj": "9 İzdüşüm (c_proj)",
        "resid1": "10 x + dikkat",
        "ln2": "11 LayerNorm (ln_2)",
        "hidden": "12 MLP gizli katman (GELU)",
        "mlp": "13 MLP çıktısı",
        "resid2": "14 x + MLP",
        "block_att": "Blok {n} dikkati",
        "block_out": "Blok {n} çıktısı",
        "lnf": "15 Son LayerNorm (ln_f)",
        "logits": "16 Logitler",
        "probs": "17 softmax → tahmin",
        "result": "Tahmin: {letters} → {answer}",
    },
    "en": {
        "title": "Inside the tiny GPT: {letters} → {answer}",
        "subtitle": "11 tokens (6 input + the first 5 answer letters) · each token a vector of "
        "48 numbers · 3 blocks, 3 heads",
        "row1": "Embeddings: each letter and each position becomes a vector; add them",
        "row2": "Block 1 · LayerNorm, then a query, key and value for every token",
        "row3": "Block 1 · Head 1: scores q·kᵀ/√16, then softmax (future masked)",
        "row4": "Block 1 · The heads' outputs are joined, projected, added to the residual",
        "row5": "Block 1 · MLP: 48 → 192 (GELU) → 48, residual",
        "row6": "Blocks 2 and 3: the same steps (heads' mean attention, block output)",
        "row7": "Final LayerNorm → logits → softmax → next letter",
        "tok": "1 Token embedding (wte)",
        "pos": "2 Position embedding (wpe)",
        "sum": "3 Sum = input x",
        "ln1": "4 LayerNorm (ln_1)",
        "q": "5 Query q",
        "k": "Key k",
        "v": "Value v",
        "scores": "6 Scores q·kᵀ/√16",
        "softmax": "7 softmax → attention",
        "heads": "8 Attention · v (3 heads)",
        "proj": "9 Projection (c_proj)",
        "resid1": "10 x + attention",
        "ln2": "11 LayerNorm (ln_2)",
        "hidden": "12 MLP hidden layer (GELU)",
        "mlp": "13 MLP output",
        "resid2": "14 x + MLP",
        "block_att": "Block {n} attention",
        "block_out": "Block {n} output",
        "lnf": "15 Final LayerNorm (ln_f)",
        "logits": "16 Logits",
        "probs": "17 softmax → prediction",
        "result": "Prediction: {letters} → {answer}",
    },
}

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
    t = TEXT[language(lang)]
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
        t["title"].format(letters=trace.letters, answer=trace.answer),
        size=28,
        fontweight="bold",
        after_px=8,
    )
    page.text(t["subtitle"], size=15, color="#444444")

    # 1-3 embeddings, one shared scale
    _heading(page, t["row1"])
    axes = page.row(
        VECTOR_ROW_PX, [1, 1, 1, cbar], gap_px=[LABEL_GAP, LABEL_GAP, 10], right_px=CBAR_LABELS
    )
    lim = _limit(trace.tok_emb, trace.pos_emb, trace.x0)
    for ax, key, m in zip(
        axes, ("tok", "pos", "sum"), (trace.tok_emb, trace.pos_emb, trace.x0), strict=False
    ):
        image = heatmap(ax, _np(m), title=t[key], row_labels=labels, vmax=lim, **vec)
    _colorbar(page, image, axes[3])

    # 4-5 LayerNorm, then q/k/v of head 1
    _heading(page, t["row2"])
    axes = page.row(
        VECTOR_ROW_PX,
        [2.4, cbar, 1, 1, 1, cbar],
        gap_px=[10, CBAR_LABELS, 12, 12, 10],
        right_px=CBAR_LABELS,
    )
    image = heatmap(
        axes[0], _np(b0.ln_1), title=t["ln1"], row_labels=labels, vmax=_limit(b0.ln_1), **vec
    )
    _colorbar(page, image, axes[1])
    lim = _limit(b0.q[0], b0.k[0], b0.v[0])
    for ax, key, m in zip(axes[2:5], "qkv", (b0.q[0], b0.k[0], b0.v[0]), strict=True):
        image = heatmap(ax, _np(m), title=t[key], vmax=lim, **vec)
    _colorbar(page, image, axes[5])

    # 6-7 scores and softmax of head 1, with the numbers
    _heading(page, t["row3"])
    axes = page.row(MATRIX_ROW_PX, [1, 1], top_px=62, gap_px=LABEL_GAP)
    heatmap(
        axes[0],
        _np(b0.scores[0]),
        title=t["scores"],
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
        title=t["softmax"],
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
    _heading(page, t["row4"])
    axes = page.row(
        VECTOR_ROW_PX, [1, 1, 1, cbar], gap_px=[LABEL_GAP, LABEL_GAP, 10], right_px=CBAR_LABELS
    )
    lim = _limit(b0.heads, b0.attn_out, b0.x_mid)
    for ax, key, m in zip(
        axes, ("heads", "proj", "resid1"), (b0.heads, b0.attn_out, b0.x_mid), strict=False
    ):
        image = heatmap(ax, _np(m), title=t[key], row_labels=labels, vmax=lim, **vec)
    _colorbar(page, image, axes[3])

    # 11-14 MLP: LayerNorm, hidden layer and output each on their own scale
    _heading(page, t["row5"])
    axes = page.row(
        VECTOR_ROW_PX,
        [1, cbar, 1.6, cbar, 1, 1, cbar],
        gap_px=[8, CBAR_LABELS, 8, CBAR_LABELS, 12, 8],
        right_px=CBAR_LABELS,
    )
    image = heatmap(
        axes[0], _np(b0.ln_2), title=t["ln2"], row_labels=labels, vmax=_limit(b0.ln_2), **vec
    )
    _colorbar(page, image, axes[1])
    image = heatmap(
        axes[2], _np(b0.mlp_hidden), title=t["hidden"], vmax=_limit(b0.mlp_hidden), **vec
    )
    _colorbar(page, image, axes[3])
    lim = _limit(b0.mlp_out, b0.x_out)
    heatmap(axes[4], _np(b0.mlp_out), title=t["mlp"], vmax=lim, **vec)
    image = heatmap(axes[5], _np(b0.x_out), title=t["resid2"], vmax=lim, **vec)
    _colorbar(page, image, axes[6])

    # blocks 2 and 3 summarised: heads' mean attention and the block's output
    _heading(page, t["row6"])
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
            title=t["block_att"].format(n=n),
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
            axes[2 * i + 1], _np(block.x_out), title=t["block_out"].format(n=n), vmax=lim, **vec
        )
    _colorbar(page, image, axes[-1])

    # 15-17 final LayerNorm, logits, softmax and the predicted letter
    _heading(page, t["row7"])
    axes = page.row(
        VECTOR_ROW_PX + 44,
        [2, cbar, 1, 1],
        top_px=62,
        gap_px=[10, CBAR_LABELS, 16],
        right_px=70,
    )
    image = heatmap(
        axes[0], _np(trace.ln_f), title=t["lnf"], row_labels=labels, vmax=_limit(trace.ln_f), **vec
    )
    _colorbar(page, image, axes[1])
    vocab = list(ALPHABET)
    heatmap(
        axes[2],
        _np(trace.logits),
        title=t["logits"],
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
        title=t["probs"],
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
        t["result"].format(letters=trace.letters, answer=trace.answer),
        size=26,
        fontweight="bold",
        color=ANSWER_COLOR,
    )
    return figure_to_png(page.finish())


def explain_png(model: GPT, letters: str, *, lang: str = "tr") -> bytes:
    """`explain_trace` and `explain_trace_png` in one call."""
    return explain_trace_png(explain_trace(model, letters), lang=lang)
