"""The letter sorter: the nano-GPT wrapped with its A/B/C vocabulary and batched greedy decoding."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from dikkat.models.gpt import GPT

ALPHABET = "ABC"
SEQUENCE_LENGTH = 6
DEFAULT_CHECKPOINT = "sorter.pt"


def default_checkpoint_path() -> Path:
    """The checkpoint that ships inside the package."""
    return Path(str(resources.files("dikkat.assets").joinpath(DEFAULT_CHECKPOINT)))


def encode(letters: str) -> list[int]:
    """'CBA' -> [2, 1, 0]."""
    return [ALPHABET.index(letter) for letter in letters]


def decode(tokens: list[int]) -> str:
    """[0, 1, 2] -> 'ABC'."""
    return "".join(ALPHABET[token] for token in tokens)


@dataclass
class SortTrace:
    """One sorted sequence with the attention of the forward pass that saw the whole answer."""

    tokens: list[str]
    attention: torch.Tensor  # (n_layer, n_head, T, T)
    answer: str = ""


class Sorter:
    """Sorts six-letter sequences over {A, B, C} with the nano-GPT, a whole batch at a time."""

    def __init__(self, model: GPT, device: str | torch.device = "cpu") -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(cls, path: Path | None = None, device: str = "cpu") -> Sorter:
        """Load the shipped (or a given) checkpoint."""
        return cls(GPT.load(path or default_checkpoint_path(), device=device), device=device)

    def _as_tensor(self, sequences: list[str]) -> torch.Tensor:
        return torch.tensor([encode(s) for s in sequences], dtype=torch.long, device=self.device)

    @torch.inference_mode()
    def sort_batch(self, sequences: list[str]) -> list[str]:
        """Greedy-decode the sorted version of every sequence (one forward per position)."""
        if not sequences:
            return []
        idx = self._as_tensor(sequences)  # (B, 6)
        out = self.model.generate(idx, SEQUENCE_LENGTH)  # (B, 12)
        return [decode(row) for row in out[:, SEQUENCE_LENGTH:].tolist()]

    @torch.inference_mode()
    def trace_batch(self, sequences: list[str]) -> list[SortTrace]:
        """Sort, then run the 11-token forward pass once more and keep its attention maps."""
        if not sequences:
            return []
        idx = self._as_tensor(sequences)
        generated = self.model.generate(idx, SEQUENCE_LENGTH)  # (B, 12)
        full = generated[:, :-1]  # (B, 11)
        _, attentions = self.model(full, return_attention=True)
        stacked = torch.stack(attentions, dim=1).cpu()  # (B, n_layer, nh, T, T)
        return [
            SortTrace(
                tokens=list(decode(row[:-1])),
                attention=stacked[i],
                answer=decode(row[SEQUENCE_LENGTH:]),
            )
            for i, row in enumerate(generated.tolist())
        ]
