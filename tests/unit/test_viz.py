"""Figures decode, have the expected size and stay under 1 MB; explain_trace matches the forward."""

import io
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dikkat.viz
from dikkat.models.explain import explain_trace
from dikkat.models.gpt import GPT
from dikkat.models.sorter import Sorter, encode
from dikkat.viz.encoder_attention import cap_tokens, encoder_attention_png
from dikkat.viz.explain import explain_trace_png
from dikkat.viz.gpt_attention import gpt_attention_png
from dikkat.viz.render import (
    MAX_PNG_BYTES,
    check_png,
    displayable,
    figure_to_png,
    has_glyphs,
    heatmap,
    new_figure,
)
from dikkat.viz.worked_example import worked_example_png

TURKISH = "çğıİöşüÇĞÖŞÜ"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The 85k-parameter model gains nothing from threads; on a busy CPU they only spin."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def sorter() -> Sorter:
    return Sorter.from_checkpoint()


def assert_png(data: bytes, width: tuple[int, int], height: tuple[int, int]) -> None:
    assert len(data) < MAX_PNG_BYTES
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        image.load()
        w, h = image.size
    assert width[0] <= w <= width[1] and height[0] <= h <= height[1], (w, h)


def fake_attention(layers: int, heads: int, size: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(layers, heads, size, size))
    weights = np.exp(logits)
    return weights / weights.sum(-1, keepdims=True)  # (L, H, T, T)


# --- explain_trace against the model's own forward ---------------------------------------------


def test_explain_trace_matches_the_forward_pass(sorter: Sorter) -> None:
    trace = explain_trace(sorter.model, "CBABBC")
    assert "".join(trace.tokens[:6]) == "CBABBC" and len(trace.tokens) == 11
    logits, attentions = sorter.model(trace.idx[None], return_attention=True)
    assert torch.allclose(trace.logits, logits[0], atol=1e-5)
    assert torch.allclose(trace.attention, torch.stack(attentions, dim=1)[0], atol=1e-6)
    # the same maps /attention shows
    assert torch.allclose(trace.attention, sorter.trace_batch(["CBABBC"])[0].attention, atol=1e-6)
    assert trace.answer == sorter.sort_batch(["CBABBC"])[0] == "ABBBCC"


def test_explain_trace_on_an_untrained_model_too() -> None:
    torch.manual_seed(0)
    model = GPT().eval()
    trace = explain_trace(model, "abcabc")
    logits, _ = model(torch.tensor([encode("ABCABC") + encode(trace.answer[:5])]))
    assert torch.allclose(trace.logits, logits[0], atol=1e-5)
    b0 = trace.blocks[0]
    assert torch.allclose(trace.x0, trace.tok_emb + trace.pos_emb)
    assert torch.allclose(b0.x_out, b0.x_in + b0.attn_out + b0.mlp_out, atol=1e-6)
    assert b0.q.shape == (3, 11, 16) and b0.mlp_hidden.shape == (11, 192)
    assert torch.allclose(trace.probs.sum(-1), torch.ones(11))


def test_attention_rows_sum_to_one_and_future_is_zero(sorter: Sorter) -> None:
    attention = explain_trace(sorter.model, "BCACBA").attention  # (L, nh, T, T)
    assert attention.shape == (3, 3, 11, 11)
    assert torch.allclose(attention.sum(-1), torch.ones(3, 3, 11))
    assert torch.all(attention.triu(diagonal=1) == 0)


@pytest.mark.parametrize("letters", ["CBABB", "CBABBCA", "CBABBD", ""])
def test_explain_trace_rejects_bad_input(sorter: Sorter, letters: str) -> None:
    with pytest.raises(ValueError):
        explain_trace(sorter.model, letters)


# --- cap_tokens ---------------------------------------------------------------------------------


def test_cap_tokens_keeps_cls_and_sep_and_renormalises() -> None:
    tokens = ["[CLS]", *(f"t{i}" for i in range(40)), "[SEP]"]
    tokens_out, attention, capped = cap_tokens(tokens, fake_attention(2, 4, 42), 32)
    assert capped and len(tokens_out) == 32
    assert (
        tokens_out[0] == "[CLS]" and tokens_out[-1] == "[SEP]" and tokens_out[1:3] == ["t0", "t1"]
    )
    assert attention.shape == (2, 4, 32, 32)
    assert np.allclose(attention.sum(-1), 1.0)


def test_cap_tokens_leaves_short_input_alone() -> None:
    tokens = ["[CLS]", "merhaba", "[SEP]"]
    attention = fake_attention(1, 2, 3)
    tokens_out, attention_out, capped = cap_tokens(tokens, attention, 32)
    assert not capped and tokens_out == tokens and np.allclose(attention_out, attention)


def test_cap_tokens_validates() -> None:
    with pytest.raises(ValueError):
        cap_tokens(["a", "b"], fake_attention(1, 1, 3), 32)
    with pytest.raises(ValueError):
        cap_tokens(["a", "b", "c"], fake_attention(1, 1, 3), 2)


# --- rendering helpers ----------------------------------------------------------------------------


def test_font_has_turkish_glyphs() -> None:
    assert has_glyphs(TURKISH + " Q·Kᵀ √3 → ₁₂₃")
    assert displayable("güzel 漢") == "güzel ?"


def test_check_png_rejects_large_or_invalid_data() -> None:
    fig = new_figure(200, 100)
    data = figure_to_png(fig)
    assert check_png(data) == (200, 100)
    with pytest.raises(ValueError):
        check_png(data, max_bytes=10)
    with pytest.raises(Exception):  # noqa: B017 - PIL raises its own error type
        check_png(b"not a png")


def test_rendering_in_threads() -> None:
    def render(seed: int) -> bytes:
        fig = new_figure(300, 300)
        heatmap(fig.add_subplot(), fake_attention(1, 1, 5, seed)[0, 0], fmt=str, title=TURKISH)
        return figure_to_png(fig)

    with ThreadPoolExecutor(4) as pool:
        images = list(pool.map(render, range(4)))
    for data in images:
        assert_png(data, (300, 300), (300, 300))


def test_viz_never_uses_pyplot() -> None:
    for path in Path(dikkat.viz.__file__).parent.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "matplotlib.pyplot" not in source and "import pyplot" not in source, path


# --- the figures ----------------------------------------------------------------------------------


def test_worked_example_png() -> None:
    assert_png(worked_example_png("tr"), (1000, 1400), (1400, 2600))


def test_gpt_attention_png(sorter: Sorter) -> None:
    trace = sorter.trace_batch(["CBABBC"])[0]
    assert_png(gpt_attention_png(trace, answer="ABBBCC", lang="en"), (1000, 1400), (1000, 1800))


def test_explain_png(sorter: Sorter) -> None:
    data = explain_trace_png(explain_trace(sorter.model, "CBABBC"), lang="tr")
    assert_png(data, (1000, 1400), (2000, 3400))


def test_encoder_attention_png_renders_turkish_tokens() -> None:
    tokens = ["[CLS]", "Çok", "güzel", "bir", "gün", "##dü", "ı", "İş", "şöyle", "!", "[SEP]"]
    attention = fake_attention(3, 6, len(tokens))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph would warn
        data = encoder_attention_png(tokens, attention, layer=1, title="“Çok güzel” → olumlu")
    assert_png(data, (1000, 1400), (1500, 2600))
    with pytest.raises(ValueError):
        encoder_attention_png(tokens, attention, layer=3, title="x")
