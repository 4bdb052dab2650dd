"""The shipped checkpoint sorts every possible input; decoding is batched."""

from itertools import product

import torch

from dikkat.models.sorter import Sorter, decode, encode
from dikkat.training.sorter import (
    IGNORE_INDEX,
    SorterTrainingConfig,
    configure_optimizer,
    sample_batch,
)

ALL_INPUTS = ["".join(p) for p in product("ABC", repeat=6)]


def test_shipped_checkpoint_sorts_all_729_inputs_in_one_batch() -> None:
    sorter = Sorter.from_checkpoint()
    answers = sorter.sort_batch(ALL_INPUTS)
    assert len(ALL_INPUTS) == 729
    wrong = [(s, a) for s, a in zip(ALL_INPUTS, answers, strict=True) if a != "".join(sorted(s))]
    assert wrong == []


def test_batched_decoding_matches_one_at_a_time() -> None:
    sorter = Sorter.from_checkpoint()
    sample = ALL_INPUTS[::37]
    assert sorter.sort_batch(sample) == [sorter.sort_batch([s])[0] for s in sample]


def test_batched_decoding_runs_one_forward_per_position() -> None:
    sorter = Sorter.from_checkpoint()
    calls: list[tuple[int, ...]] = []
    handle = sorter.model.register_forward_hook(lambda m, args, out: calls.append(args[0].shape))
    try:
        sorter.sort_batch(ALL_INPUTS[:50])
    finally:
        handle.remove()
    assert [shape[0] for shape in calls] == [50] * 6


def test_trace_has_attention_per_layer_and_head() -> None:
    (trace,) = Sorter.from_checkpoint().trace_batch(["CBABBC"])
    assert "".join(trace.tokens) == "CBABBCABBBC"
    assert trace.attention.shape == (3, 3, 11, 11)


def test_encode_decode_round_trip() -> None:
    assert encode("CBA") == [2, 1, 0]
    assert decode([0, 1, 2]) == "ABC"


def test_training_batch_masks_all_but_the_answer() -> None:
    x, y = sample_batch(16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (16, 11)
    assert torch.all(y[:, :5] == IGNORE_INDEX)
    answers = y[:, 5:]
    assert torch.equal(answers, torch.sort(x[:, :6], dim=1).values)


def test_weight_decay_only_on_matmul_weights() -> None:
    from dikkat.models.gpt import GPT

    model = GPT()
    decay, no_decay = configure_optimizer(model, SorterTrainingConfig()).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    decayed = {id(p) for p in decay["params"]}
    for name, param in model.named_parameters():
        is_linear_weight = name.endswith("weight") and ("c_" in name or name == "lm_head.weight")
        assert (id(param) in decayed) == is_linear_weight, name
