"""The classic word-embedding example: a tiny network learns 2-number embeddings for 4 tokens.

Two sentences, "Troll 2 is great!" and "Gymkata is great!". Each token goes in as a one-hot vector;
two linear (identity) neurons turn it into 2 numbers, its embedding; one softmax output per token
says which token comes next. The "!" ends a sentence, so it is an output only, `<end>`: `great`
predicts `<end>`. Training is deterministic: the weights come from a local generator with a fixed
seed, nothing draws from torch's global random state, and full-batch gradient descent has no
randomness of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn
from torch.nn import functional as F

TOKENS = ("Troll 2", "is", "great", "Gymkata")  # the inputs, one one-hot position each
END = "<end>"  # the "!": what follows `great`
OUTPUTS = (*TOKENS, END)  # what the network can predict
SENTENCES = (("Troll 2", "is", "great"), ("Gymkata", "is", "great"))
N_EMBD = 2  # two numbers per token: a point in the plane
# Chosen so that the untrained network gets "what comes after `is`" wrong: it favours `is` itself
# (0.29) and gives `great` the lowest probability of all (0.05).
SEED = 232
EPOCHS = 100
LEARNING_RATE = 1.0
DTYPE = torch.float64  # the same numbers on every machine


Pair = tuple[str, str]  # (token, the token that follows it)


def training_pairs(sentences: tuple[tuple[str, ...], ...] = SENTENCES) -> tuple[Pair, ...]:
    """(token, next token) for every position: Troll 2→is, is→great, great→<end>, ..."""
    return tuple(
        pair for sentence in sentences for pair in zip(sentence, (*sentence[1:], END), strict=True)
    )


class NextTokenNet(nn.Module):
    """one-hot → 2 linear neurons (the embedding) → one logit per output token."""

    def __init__(
        self, generator: torch.Generator, n_tokens: int = len(TOKENS), n_outputs: int = len(OUTPUTS)
    ) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=()):  # nn.Linear's own init draws from the global RNG
            self.embed = nn.Linear(n_tokens, N_EMBD, bias=False, dtype=DTYPE)
            self.lm_head = nn.Linear(N_EMBD, n_outputs, bias=False, dtype=DTYPE)
        for weight in (self.embed.weight, self.lm_head.weight):  # standard normal, from `generator`
            nn.init.normal_(weight, generator=generator)

    def embeddings(self) -> torch.Tensor:
        """Token i's embedding is the weights from input i to the two neurons: (n_tokens, 2)."""
        return self.embed.weight.detach().T.clone()

    def forward(self, one_hot: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.embed(one_hot))  # (N, n_tokens) -> (N, 2) -> (N, n_outputs)


@dataclass(frozen=True)
class Snapshot:
    """The network at one moment: embeddings, output weights, next-token probabilities."""

    tokens: tuple[str, ...]
    outputs: tuple[str, ...]
    embeddings: torch.Tensor  # (n_tokens, 2): one point in the plane per token
    output_weights: torch.Tensor  # (n_outputs, 2)
    probabilities: torch.Tensor  # (n_tokens, n_outputs): softmax over what comes next

    def embedding(self, token: str) -> tuple[float, float]:
        x, y = self.embeddings[self.tokens.index(token)].tolist()
        return x, y

    def distance(self, a: str, b: str) -> float:
        """Euclidean distance between two tokens' embeddings."""
        i, j = self.tokens.index(a), self.tokens.index(b)
        return float(torch.linalg.vector_norm(self.embeddings[i] - self.embeddings[j]))

    def probability(self, token: str, following: str) -> float:
        """P(next = following | token)."""
        return float(self.probabilities[self.tokens.index(token), self.outputs.index(following)])

    def ranked(self, token: str) -> list[tuple[str, float]]:
        """What the network says comes after `token`, most likely first."""
        row = self.probabilities[self.tokens.index(token)].tolist()
        return sorted(zip(self.outputs, row, strict=True), key=lambda item: -item[1])

    def next_token(self, token: str) -> tuple[str, float]:
        """The network's answer after `token` and its probability."""
        return self.ranked(token)[0]


@dataclass(frozen=True)
class EmbeddingExample:
    """The whole lesson: data, settings, the network before and after, the loss per epoch."""

    pairs: tuple[Pair, ...]
    seed: int
    learning_rate: float
    initial: Snapshot  # random weights
    final: Snapshot  # after training
    losses: tuple[float, ...]  # mean cross-entropy after 0, 1, ..., epochs updates

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.initial.tokens

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.initial.outputs

    @property
    def epochs(self) -> int:
        return len(self.losses) - 1


def _snapshot(net: NextTokenNet) -> Snapshot:
    with torch.no_grad():
        logits = net(torch.eye(len(TOKENS), dtype=DTYPE))  # (n_tokens, n_outputs)
    return Snapshot(
        tokens=TOKENS,
        outputs=OUTPUTS,
        embeddings=net.embeddings(),
        output_weights=net.lm_head.weight.detach().clone(),
        probabilities=F.softmax(logits, dim=-1),
    )


@lru_cache(maxsize=4)
def train_embedding_example(
    seed: int = SEED, epochs: int = EPOCHS, learning_rate: float = LEARNING_RATE
) -> EmbeddingExample:
    """Train the tiny network by backpropagation (full-batch gradient descent); record what changed.

    Deterministic, so the result is cached; treat its tensors as read-only."""
    pairs = training_pairs()
    # Callers may sit inside torch.inference_mode() (the bot's model thread): training needs grad.
    with torch.inference_mode(False), torch.enable_grad():
        inputs = torch.tensor([TOKENS.index(token) for token, _ in pairs])
        x = F.one_hot(inputs, len(TOKENS)).to(DTYPE)  # (n_pairs, n_tokens)
        y = torch.tensor([OUTPUTS.index(following) for _, following in pairs])  # (n_pairs,)
        net = NextTokenNet(torch.Generator().manual_seed(seed))
        initial = _snapshot(net)
        losses = []
        for _ in range(epochs):
            loss = F.cross_entropy(net(x), y)
            losses.append(loss.item())
            loss.backward()
            # Plain gradient descent, written out (torch.optim would import torch._dynamo: ~1 s).
            with torch.no_grad():
                for weight in net.parameters():
                    weight -= learning_rate * weight.grad
                    weight.grad = None
        with torch.no_grad():
            losses.append(F.cross_entropy(net(x), y).item())
        final = _snapshot(net)
    return EmbeddingExample(
        pairs=pairs,
        seed=seed,
        learning_rate=learning_rate,
        initial=initial,
        final=final,
        losses=tuple(losses),
    )
