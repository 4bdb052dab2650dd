"""The text that goes with the embedding picture, in Turkish and English, with the real numbers."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from dikkat.i18n import Catalog
from dikkat.models.embedding_example import EmbeddingExample, Snapshot, train_embedding_example

TEXT_LIMIT = 1500  # characters: one chat message beside the picture
LOSS_EPOCHS = (0, 10, 25, 50)  # and the last one

TEXT = Catalog(
    {
        "title": {"tr": "🧩 Gömmeler (embeddings) adım adım", "en": "🧩 Embeddings step by step"},
        "intro": {
            "tr": (
                "İki cümle: “Troll 2 is great!” ve “Gymkata is great!”; {n_tokens} token "
                "(Troll 2 tek token), ! cümle sonu: {end}.\n"
                "Ağ: one-hot girdi → 2 doğrusal nöron (bir tokenin 2 ağırlığı = gömmesi) → "
                "softmax ile {n_outputs} çıktı: sonraki token.\n"
                "Eğitim çiftleri: {pairs}"
            ),
            "en": (
                "Two sentences: “Troll 2 is great!” and “Gymkata is great!”; {n_tokens} tokens "
                "(Troll 2 is one), the ! ends a sentence: {end}.\n"
                "Network: one-hot input → 2 linear neurons (a token's 2 weights = its embedding) "
                "→ {n_outputs} outputs with softmax: the next token.\n"
                "Training pairs: {pairs}"
            ),
        },
        "initial": {
            "tr": "1. Rastgele ağırlıklar (tohum {seed}), gömmeler:",
            "en": "1. Random weights (seed {seed}), embeddings:",
        },
        "untrained": {
            "tr": "2. Eğitimsiz ağ, “is” sonrası: {ranked} {mark}",
            "en": "2. Untrained, after “is”: {ranked} {mark}",
        },
        "training": {
            "tr": "3. Geri yayılım, {epochs} tur (gradyan inişi, öğrenme oranı {lr:g}), kayıp:",
            "en": (
                "3. Backpropagation, {epochs} epochs (gradient descent, learning rate {lr:g}), "
                "loss:"
            ),
        },
        "epoch": {"tr": "tur", "en": "epoch"},
        "final": {"tr": "4. Eğitilmiş gömmeler:", "en": "4. Trained embeddings:"},
        "closer": {
            "tr": (
                "{a} ↔ {b}: {before} → {after}; is ve great'e en az {others}. Ağa ikisinin de "
                "film olduğu söylenmedi: aynı şekilde kullanıldıkları için yakınlaştılar."
            ),
            "en": (
                "{a} ↔ {b}: {before} → {after}; at least {others} from is and great. Nobody told "
                "the network both are films: they are used the same way."
            ),
        },
        "trained": {
            "tr": "5. Eğitimden sonra sonraki token: {answers}",
            "en": "5. Next token after training: {answers}",
        },
        "why": {
            "tr": (
                "💡 Neden önemli: rastgele kimlik numaraları great ile awesome'a ilgisiz sayılar "
                "verir, biri hakkında öğrenilen öbürüne yaramaz; öğrenilen gömmeler benzer "
                "kelimelere benzer sayılar verir. Bağlam da anlamı değiştirir: “It is great!” ile "
                "“My phone broke, great!”; transformer'ın bağlamsal gömmeleri ikisini ayırır."
            ),
            "en": (
                "💡 Why it matters: random ids give great and awesome unrelated numbers, so what a "
                "model learns about one does not help with the other; learnt embeddings give "
                "similar words similar numbers. Context changes meaning too: “It is great!” vs "
                "“My phone broke, great!”; a transformer's contextual embeddings tell them apart."
            ),
        },
        "more": {
            "tr": (
                "👉 /embed kelime1 kelime2 …: gerçek kodlayıcının gömmeleri · "
                "/embed cümle 1 | cümle 2: bir kelime iki bağlamda"
            ),
            "en": (
                "👉 /embed word1 word2 …: the real encoder's embeddings · "
                "/embed sentence 1 | sentence 2: one word in two contexts"
            ),
        },
    }
)


def _num(value: float, decimals: int = 2) -> str:
    text = f"{value:.{decimals}f}"
    return text.lstrip("-") if float(text) == 0 else text


def _vec(values: Iterable[float]) -> str:
    return "[" + ", ".join(_num(v) for v in values) + "]"


def _embeddings(snapshot: Snapshot) -> list[str]:
    """Two tokens per line: 'Troll 2 [1.65, 1.62] · is [-1.31, 0.95]'."""
    items = [f"{token} {_vec(snapshot.embedding(token))}" for token in snapshot.tokens]
    return [" · ".join(items[i : i + 2]) for i in range(0, len(items), 2)]


def _arrows(pairs: Iterable[tuple[str, str]]) -> str:
    return ", ".join(dict.fromkeys(f"{a}→{b}" for a, b in pairs))  # each pair once, in order


def embedding_example_text(lang: str = "tr", example: EmbeddingExample | None = None) -> str:
    """The worked example as one message: data, network, numbers before, during and after."""
    t = partial(TEXT.text, lang=lang)
    ex = example or train_embedding_example()
    first, second = "Troll 2", "Gymkata"
    untrained, _ = ex.initial.next_token("is")
    ranked = " · ".join(f"{token} {_num(p)}" for token, p in ex.initial.ranked("is"))
    checkpoints = [epoch for epoch in LOSS_EPOCHS if epoch < ex.epochs] + [ex.epochs]
    losses = " · ".join(f"{epoch}: {_num(ex.losses[epoch], 3)}" for epoch in checkpoints)
    others = min(
        ex.final.distance(film, other) for film in (first, second) for other in ("is", "great")
    )
    answers = []
    for token in ex.tokens:
        answer, p = ex.final.next_token(token)
        answers.append(f"{token}→{answer} {_num(p, 3)}" + (" ✅" if token == "is" else ""))
    lines = [
        t("title"),
        t(
            "intro",
            n_tokens=len(ex.tokens),
            end=ex.outputs[-1],
            n_outputs=len(ex.outputs),
            pairs=_arrows(ex.pairs),
        ),
        "",
        t("initial", seed=ex.seed),
        *_embeddings(ex.initial),
        t("untrained", ranked=ranked, mark="✅" if untrained == "great" else "❌"),
        t("training", epochs=ex.epochs, lr=ex.learning_rate),
        f"{t('epoch')} {losses}",
        t("final"),
        *_embeddings(ex.final),
        t(
            "closer",
            a=first,
            b=second,
            before=_num(ex.initial.distance(first, second)),
            after=_num(ex.final.distance(first, second)),
            others=_num(others),
        ),
        t("trained", answers=" · ".join(answers)),
        "",
        t("why"),
        t("more"),
    ]
    return "\n".join(lines)
