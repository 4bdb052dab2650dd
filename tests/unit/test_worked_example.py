"""The classic 3-token self-attention example: the exact numbers, and the texts that show them."""

import math

import pytest
import torch

from dikkat.models.worked_example import worked_example
from dikkat.viz.explain_text import (
    CAPTION_LIMIT,
    encoder_attention_caption,
    explain_caption,
    gpt_attention_caption,
    worked_example_caption,
    worked_example_text,
)


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_keys_queries_values() -> None:
    ex = worked_example()
    assert torch.equal(ex.keys, t([[0, 1, 1], [4, 4, 0], [2, 3, 1]]))
    assert torch.equal(ex.queries, t([[1, 0, 2], [2, 2, 2], [2, 1, 3]]))
    assert torch.equal(ex.values, t([[1, 2, 3], [2, 8, 0], [2, 6, 3]]))


def test_scores_are_q_times_k_transposed() -> None:
    ex = worked_example()
    assert torch.equal(ex.scores, t([[2, 4, 4], [4, 16, 12], [4, 12, 10]]))


def test_exact_softmax_and_outputs() -> None:
    ex = worked_example()
    assert torch.allclose(ex.exact.weights.sum(-1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(ex.exact.weights[0], t([[0.0634, 0.4683, 0.4683]])[0], atol=1e-4)
    assert torch.allclose(ex.exact.outputs[0], t([[1.94, 6.68, 1.60]])[0], atol=5e-3)
    # the weighted values add up to the outputs
    assert torch.allclose(ex.exact.weighted.sum(1), ex.exact.outputs)
    assert torch.allclose(ex.exact.weights @ ex.values, ex.exact.outputs)


def test_rounded_softmax_gives_the_illustration_outputs() -> None:
    ex = worked_example()
    assert torch.allclose(ex.rounded.weights.sum(-1), torch.ones(3, dtype=torch.float64))
    expected = t([[2.0, 7.0, 1.5], [2.0, 8.0, 0.0], [2.0, 7.8, 0.3]])
    assert torch.allclose(ex.rounded.outputs, expected)


def test_scaled_variant_divides_by_sqrt_d() -> None:
    ex = worked_example()
    assert ex.scale == pytest.approx(math.sqrt(3))
    assert torch.allclose(ex.scaled.scores, ex.scores / math.sqrt(3))
    assert torch.allclose(ex.scaled.weights.sum(-1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(ex.scaled.outputs[0], t([[1.86, 6.32, 1.70]])[0], atol=5e-3)
    # scaling makes the softmax less peaked
    assert torch.all(ex.scaled.weights.max(-1).values < ex.exact.weights.max(-1).values)


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_worked_example_text_has_the_key_numbers(lang: str) -> None:
    text = worked_example_text(lang)
    for number in (
        "[1, 0, 1, 0]",
        "[2, 4, 4]",
        "[4, 16, 12]",
        "[4, 12, 10]",
        "[0.06, 0.47, 0.47]",
        "[1.94, 6.68, 1.60]",
        "[2.0, 7.0, 1.5]",
        "[2.0, 8.0, 0.0]",
        "[2.0, 7.8, 0.3]",
        "1.73",
        "[1.86, 6.32, 1.70]",
    ):
        assert number in text, number
    assert len(text) < 4096  # one Telegram message
    assert max(len(line) for line in text.splitlines() if line.startswith(("x", "q", "y"))) <= 36


def test_worked_example_text_languages_differ() -> None:
    tr, en = worked_example_text("tr"), worked_example_text("en")
    assert "Çıktılar" in tr and "Outputs" in en
    assert worked_example_text("de-DE") == en  # other languages fall back to English


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_captions(lang: str) -> None:
    captions = [
        worked_example_caption(lang),
        gpt_attention_caption("CBABBC", "ABBBCC", lang),
        explain_caption("CBABBC", "ABBBCC", lang),
        encoder_attention_caption(32, 92, n_layers=6, n_heads=12, lang=lang),
    ]
    for caption in captions:
        assert caption.strip() and len(caption) <= CAPTION_LIMIT
    for caption in captions[1:3]:
        assert "CBABBC → ABBBCC" in caption
    assert "32" in captions[3] and "92" in captions[3] and "6/6" in captions[3]


def test_encoder_caption_mentions_capping_only_when_capped() -> None:
    short = encoder_attention_caption(9, 9, n_layers=6, n_heads=12, layer=1, lang="tr")
    long = encoder_attention_caption(32, 92, n_layers=6, n_heads=12, lang="tr")
    assert "✂️" not in short and "✂️" in long
    assert "ilk 32 token" in long
    assert "katman 2/6" in short and "katman 6/6" in long
