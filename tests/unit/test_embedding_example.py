"""The word-embedding worked example: deterministic training, its numbers, picture and text."""

import pytest
import torch

from dikkat.models.embedding_example import (
    END,
    EPOCHS,
    SEED,
    TOKENS,
    train_embedding_example,
    training_pairs,
)
from dikkat.viz.embedding_example import HEIGHT_PX, WIDTH_PX, embedding_example_png
from dikkat.viz.embedding_text import TEXT_LIMIT, embedding_example_text
from dikkat.viz.render import check_png

FILMS = ("Troll 2", "Gymkata")


def test_data_network_and_pairs() -> None:
    ex = train_embedding_example()
    assert ex.tokens == ("Troll 2", "is", "great", "Gymkata")
    assert ex.outputs == (*TOKENS, END)
    assert set(training_pairs()) == {
        ("Troll 2", "is"),
        ("Gymkata", "is"),
        ("is", "great"),
        ("great", END),
    }
    assert ex.seed == SEED and ex.epochs == EPOCHS
    assert ex.initial.embeddings.shape == ex.final.embeddings.shape == (4, 2)
    assert ex.final.probabilities.shape == (4, 5)
    assert torch.allclose(ex.final.probabilities.sum(-1), torch.ones(4, dtype=torch.float64))


def test_the_untrained_network_gets_is_wrong() -> None:
    ranked = train_embedding_example().initial.ranked("is")
    assert ranked[0][0] == "is"  # it favours `is` itself, with a low probability
    assert ranked[0][1] == pytest.approx(0.2946, abs=1e-4)
    assert ranked[-1][0] == "great"  # and the right answer least of all
    assert ranked[-1][1] == pytest.approx(0.0489, abs=1e-4)


def test_the_trained_network_answers_every_pair() -> None:
    final = train_embedding_example().final
    assert final.next_token("is")[0] == "great"
    assert final.probability("is", "great") == pytest.approx(0.9979, abs=1e-4)
    for token, following in training_pairs():
        assert final.next_token(token)[0] == following
        assert final.probability(token, following) > 0.99


def test_the_films_end_up_close_together() -> None:
    ex = train_embedding_example()
    assert ex.initial.distance(*FILMS) == pytest.approx(3.017, abs=1e-3)
    assert ex.initial.distance("Gymkata", "is") == pytest.approx(0.345, abs=1e-3)  # started at `is`
    assert ex.final.distance(*FILMS) == pytest.approx(0.280, abs=1e-3)
    others = min(ex.final.distance(film, word) for film in FILMS for word in ("is", "great"))
    assert others == pytest.approx(3.581, abs=1e-3)
    assert others > 12 * ex.final.distance(*FILMS)  # 3.58 vs 0.28


def test_the_loss_goes_down_every_epoch() -> None:
    losses = train_embedding_example().losses
    assert len(losses) == EPOCHS + 1
    assert all(later < earlier for earlier, later in zip(losses, losses[1:], strict=False))
    assert losses[0] == pytest.approx(4.194, abs=1e-3)
    assert losses[-1] == pytest.approx(0.0029, abs=1e-4)


def test_training_is_deterministic_and_leaves_global_state_alone() -> None:
    cached = train_embedding_example()
    state = torch.random.get_rng_state()
    train_embedding_example.cache_clear()
    with torch.inference_mode():  # as on the bot's model thread
        fresh = train_embedding_example()
    assert torch.equal(state, torch.random.get_rng_state())
    assert fresh is not cached and fresh.losses == cached.losses
    assert torch.equal(fresh.initial.embeddings, cached.initial.embeddings)
    assert torch.equal(fresh.final.probabilities, cached.final.probabilities)
    assert train_embedding_example() is fresh  # cached


def test_another_seed_gives_other_numbers() -> None:
    other = train_embedding_example(seed=SEED + 1)
    assert not torch.equal(other.initial.embeddings, train_embedding_example().initial.embeddings)


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_picture_is_a_png(lang: str) -> None:
    assert check_png(embedding_example_png(lang)) == (WIDTH_PX, HEIGHT_PX)


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_text_has_the_real_numbers(lang: str) -> None:
    ex = train_embedding_example()
    text = embedding_example_text(lang)
    p_great = f"{ex.final.probability('is', 'great'):.3f}"
    assert p_great == "0.998"
    for number in (
        "232",  # the seed
        "Troll 2 [1.65, 1.62]",  # an initial embedding
        "is 0.29",  # the first, wrong answer after `is`
        "great 0.05 ❌",
        "0: 4.194",  # the loss, first and last
        "100: 0.003",
        "Gymkata [1.73, 1.25]",  # a final embedding
        "3.02 → 0.28",  # the films' distance before and after
        "3.58",
        f"is→great {p_great} ✅",
        "/embed",
        "It is great!",
        "My phone broke, great!",
    ):
        assert number in text, number
    assert len(text) < TEXT_LIMIT


def test_text_languages_differ() -> None:
    tr, en = embedding_example_text("tr"), embedding_example_text("en")
    assert "tohum 232" in tr and "seed 232" in en
    assert embedding_example_text("de") == en  # other languages fall back to English
