"""Train the nano-GPT sorter the way the minGPT sort demo does."""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from dikkat.models.gpt import GPT, GPTConfig
from dikkat.models.sorter import ALPHABET, SEQUENCE_LENGTH, Sorter, decode

IGNORE_INDEX = -1


@dataclass(frozen=True)
class SorterTrainingConfig:
    """The minGPT demo's recipe: AdamW 5e-4, betas (0.9, 0.95), wd 0.1, batch 64, clip 1.0."""

    iterations: int = 2000
    batch_size: int = 64
    learning_rate: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 3407


@dataclass
class SorterTrainingResult:
    """What a training run produced and how long it took."""

    model: GPT
    seconds: float
    final_loss: float
    correct: int
    total: int


def sample_batch(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, 11) and targets (B, 11) with the loss masked to the six answer positions.

    Like the demo, half the samples are re-drawn when they have more than three distinct digits,
    so the model also sees enough sequences with many repeats.
    """
    rows: list[torch.Tensor] = []
    while len(rows) < batch_size:
        seq = torch.randint(len(ALPHABET), (SEQUENCE_LENGTH,), generator=generator)
        prefer_repeats = torch.rand(1, generator=generator).item() < 0.5
        if prefer_repeats and seq.unique().numel() > SEQUENCE_LENGTH // 2:
            continue
        rows.append(torch.cat((seq, torch.sort(seq).values)))
    full = torch.stack(rows)  # (B, 12)
    x, y = full[:, :-1].clone(), full[:, 1:].clone()  # (B, 11)
    y[:, : SEQUENCE_LENGTH - 1] = IGNORE_INDEX
    return x, y


def configure_optimizer(model: GPT, config: SorterTrainingConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on Linear weights only (not biases, LayerNorm or embeddings)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            is_matmul_weight = isinstance(module, nn.Linear) and name == "weight"
            (decay if is_matmul_weight else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=config.betas)


def all_inputs() -> list[str]:
    """All 729 six-letter sequences over {A, B, C}."""
    return ["".join(letters) for letters in product(ALPHABET, repeat=SEQUENCE_LENGTH)]


def count_correct(sorter: Sorter, batch_size: int = 729) -> tuple[int, int]:
    """How many of the 729 possible inputs the sorter sorts exactly."""
    inputs = all_inputs()
    correct = 0
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start : start + batch_size]
        answers = sorter.sort_batch(chunk)
        correct += sum(
            answer == "".join(sorted(s)) for s, answer in zip(chunk, answers, strict=True)
        )
    return correct, len(inputs)


def train_sorter(
    config: SorterTrainingConfig | None = None, *, progress: bool = True
) -> SorterTrainingResult:
    """Train from scratch on CPU with a fixed seed and report exact-match on all 729 inputs."""
    config = config or SorterTrainingConfig()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = GPT(GPTConfig())
    optimizer = configure_optimizer(model, config)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    model.train()
    started = time.perf_counter()
    bar = tqdm(range(config.iterations), desc="train sorter", disable=not progress, unit="it")
    loss_value = float("nan")
    for step in bar:
        x, y = sample_batch(config.batch_size, generator)
        logits, _ = model(x)
        loss = loss_fn(logits.view(-1, logits.size(-1)), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        loss_value = loss.item()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss_value:.4f}")
    seconds = time.perf_counter() - started
    model.eval()
    correct, total = count_correct(Sorter(model))
    return SorterTrainingResult(model, seconds, loss_value, correct, total)


def save_result(result: SorterTrainingResult, path: Path, config: SorterTrainingConfig) -> None:
    """Write the checkpoint with how it was made."""
    result.model.save(
        path,
        seed=config.seed,
        iterations=config.iterations,
        train_seconds=round(result.seconds, 1),
        final_loss=result.final_loss,
        exact_match=f"{result.correct}/{result.total}",
        example=decode([2, 1, 0, 1, 1, 2]),
    )
