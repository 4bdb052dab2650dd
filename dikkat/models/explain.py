"""The nano-GPT forward pass stepped through module by module: every intermediate tensor."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from dikkat.models.gpt import GPT
from dikkat.models.sorter import ALPHABET, SEQUENCE_LENGTH, decode, encode


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
