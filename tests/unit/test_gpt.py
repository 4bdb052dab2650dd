"""The nano-GPT's shape and parameter count match minGPT's sort demo."""

import torch

from dikkat.models.gpt import GPT, GPTConfig


def test_parameter_counts_match_mingpt() -> None:
    model = GPT(GPTConfig())
    assert model.num_params() == 85_584
    assert model.num_params(include_lm_head=True) == 85_728
    assert sum(p.numel() for p in model.parameters()) == 85_728


def test_gpt2_parameter_names() -> None:
    names = {name for name, _ in GPT().named_parameters()}
    for expected in (
        "transformer.wte.weight",
        "transformer.wpe.weight",
        "transformer.h.0.ln_1.weight",
        "transformer.h.2.attn.c_attn.weight",
        "transformer.h.1.attn.c_proj.bias",
        "transformer.h.0.ln_2.bias",
        "transformer.h.0.mlp.c_fc.weight",
        "transformer.h.0.mlp.c_proj.weight",
        "transformer.ln_f.weight",
        "lm_head.weight",
    ):
        assert expected in names
    assert "lm_head.bias" not in names


def test_forward_shapes_and_causal_attention() -> None:
    torch.manual_seed(0)
    model = GPT().eval()
    idx = torch.randint(3, (4, 11))
    logits, attentions = model(idx, return_attention=True)
    assert logits.shape == (4, 11, 3)
    assert attentions is not None and len(attentions) == 3
    for att in attentions:
        assert att.shape == (4, 3, 11, 11)
        assert torch.allclose(att.sum(-1), torch.ones(4, 3, 11))
        assert torch.all(att.triu(diagonal=1) == 0)


def test_future_tokens_do_not_change_past_logits() -> None:
    torch.manual_seed(0)
    model = GPT().eval()
    idx = torch.randint(3, (1, 11))
    changed = idx.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 3
    logits, _ = model(idx)
    logits_changed, _ = model(changed)
    assert torch.allclose(logits[0, :-1], logits_changed[0, :-1], atol=1e-6)


def test_rejects_sequences_longer_than_block_size() -> None:
    import pytest

    with pytest.raises(ValueError, match="block_size"):
        GPT()(torch.zeros(1, 12, dtype=torch.long))
