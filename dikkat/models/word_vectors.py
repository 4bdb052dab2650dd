"""Word vectors of the sentiment encoder: a word's input embedding (the mean of its pieces' rows
of the embedding matrix: the same in every sentence) and its contextual embedding (the mean of
its pieces' last hidden states: it depends on the words around it)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dikkat.models.encoder import SentenceEncoder

MAX_TOKENS = 64


@dataclass(frozen=True)
class WordVectors:
    """The words of one text as the tokenizer splits them, with both kinds of vector."""

    text: str
    words: list[str]
    pieces: list[list[str]]  # each word's sub-word tokens
    input_vectors: np.ndarray  # (words, dim)
    contextual: np.ndarray  # (words, dim)

    def find(self, word: str) -> int | None:
        """The index of `word` (case and punctuation ignored), None when the text lacks it."""
        wanted = bare(word)
        return next((i for i, w in enumerate(self.words) if bare(w) == wanted), None)


def bare(word: str) -> str:
    """A word compared by its letters and digits alone, normalised as the tokenizer reads it:
    "Harika!", "harika" and "ＨＡＲＩＫＡ" are one."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", word) if ch.isalnum()).casefold()


def word_vectors(encoder: SentenceEncoder, texts: Sequence[str]) -> list[WordVectors]:
    """Both vectors of every word of each text (its first MAX_TOKENS tokens), in one batch."""
    tokenized, hidden = encoder.hidden_states(texts, MAX_TOKENS)
    found = []
    for row, (text, item) in enumerate(zip(texts, tokenized, strict=True)):
        positions: dict[int, list[int]] = {}
        for position, word in enumerate(item.word_of_token):
            if word is not None:
                positions.setdefault(word, []).append(position)
        pieces, inputs, contextual = [], [], []
        for _, where in sorted(positions.items()):
            ids = [item.input_ids[p] for p in where]
            pieces.append(encoder.tokenizer.tokens(ids))
            inputs.append(encoder.input_embeddings(ids).mean(axis=0))
            contextual.append(hidden[row, where].mean(axis=0))
        dim = hidden.shape[-1]
        found.append(
            WordVectors(
                text,
                [item.words[word] for word in sorted(positions)],
                pieces,
                np.array(inputs, dtype=np.float32).reshape(-1, dim),
                np.array(contextual, dtype=np.float32).reshape(-1, dim),
            )
        )
    return found


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair of rows."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return unit @ unit.T


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(cosine_matrix(np.stack([a, b]))[0, 1])


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The rows projected on their first two principal components, (n, 2)."""
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2), dtype=np.float32)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:2].T
    return np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))


@dataclass(frozen=True)
class WordTable:
    """Several words, each encoded on its own: both vectors, and each word's nearest other."""

    words: list[str]
    pieces: list[list[str]]
    input_vectors: np.ndarray  # (words, dim)
    contextual: np.ndarray  # (words, dim)

    def nearest(self) -> list[tuple[str, str, float]]:
        """(word, its nearest other word, their contextual cosine) for every word."""
        similarity = cosine_matrix(self.contextual)
        np.fill_diagonal(similarity, -np.inf)
        best = similarity.argmax(axis=1)
        return [
            (word, self.words[int(j)], float(similarity[i, j]))
            for i, (word, j) in enumerate(zip(self.words, best, strict=True))
        ]


@dataclass(frozen=True)
class WordInContext:
    """One word shared by two sentences: its input embeddings (the same in both) and its
    contextual embeddings compared with each other and with the word on its own."""

    word: str
    cosines: dict[str, float]  # input_pair, context_pair, first_alone, second_alone


def word_table(encoder: SentenceEncoder, words: Sequence[str]) -> WordTable:
    """Each word's two vectors (a word the tokenizer splits further: the mean of its parts)."""
    found = word_vectors(encoder, words)
    return WordTable(
        [" ".join(vectors.words) for vectors in found],
        [[piece for word in vectors.pieces for piece in word] for vectors in found],
        np.stack([vectors.input_vectors.mean(axis=0) for vectors in found]),
        np.stack([vectors.contextual.mean(axis=0) for vectors in found]),
    )


def word_in_context(encoder: SentenceEncoder, first: str, second: str) -> WordInContext | None:
    """The first word of `first` that `second` also has, compared across the two sentences
    and with the word on its own; None when they share no word."""
    one, two = word_vectors(encoder, [first, second])
    shared = next((w for w in one.words if bare(w) and two.find(w) is not None), None)
    if shared is None:
        return None
    (alone,) = word_vectors(encoder, [bare(shared)])
    i, j = one.find(shared), two.find(shared)
    assert i is not None and j is not None
    on_its_own = alone.contextual.mean(axis=0)
    return WordInContext(
        bare(shared),
        {
            "input_pair": cosine(one.input_vectors[i], two.input_vectors[j]),
            "context_pair": cosine(one.contextual[i], two.contextual[j]),
            "first_alone": cosine(one.contextual[i], on_its_own),
            "second_alone": cosine(two.contextual[j], on_its_own),
        },
    )
