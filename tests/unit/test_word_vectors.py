"""Word vectors: both kinds per word, words as the tokenizer splits them, cosine and PCA."""

import numpy as np

from dikkat.models.word_vectors import bare, cosine, cosine_matrix, pca_2d, word_vectors
from dikkat.viz.render import check_png
from dikkat.viz.word_vectors import word_in_context_png, word_vectors_png


def test_every_word_gets_an_input_and_a_contextual_vector(minilm_encoder) -> None:
    one, two = word_vectors(minilm_encoder, ["Bu film harika!", "Telefonum bozuldu, harika!"])
    assert one.words == ["Bu", "film", "harika", "!"]
    assert one.input_vectors.shape == one.contextual.shape == (4, minilm_encoder.dim)
    i, j = one.find("Harika"), two.find("harika!")
    assert (i, j) == (2, 3)
    assert cosine(one.input_vectors[i], two.input_vectors[j]) > 0.9999  # no context yet
    assert cosine(one.contextual[i], two.contextual[j]) < 0.999  # the sentence changed it
    assert one.find("masa") is None


def test_bare_cosine_and_pca() -> None:
    assert bare("Harika!") == bare("harika") == "harika" and bare("!!") == ""
    assert bare("ＨＡＲＩＫＡ") == "harika"  # read as the e5 tokenizer normalises it
    vectors = np.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert np.allclose(np.diag(cosine_matrix(vectors)), 1.0)
    assert cosine(vectors[0], vectors[1]) == 1.0 and abs(cosine(vectors[0], vectors[2])) < 1e-9
    assert pca_2d(vectors).shape == (3, 2) and pca_2d(vectors[:1]).shape == (1, 2)


def test_pictures_decode() -> None:
    rng = np.random.default_rng(0)
    words = ["harika", "mükemmel", "berbat"]
    check_png(word_vectors_png(words, rng.normal(size=(3, 8)), rng.normal(size=(3, 8))))
    cosines = {"input_pair": 1.0, "context_pair": 0.8, "first_alone": 0.9, "second_alone": 0.7}
    check_png(word_in_context_png("harika", cosines, lang="en"))
