"""The encoder precision setting: what it accepts, what `auto` picks, and int8 on a device other
than the CPU. The CTranslate2 int8 path itself: test_encoder_ct2.py."""

from __future__ import annotations

import pydantic
import pytest
import torch

from dikkat.config import Settings
from dikkat.models.e5_image import E5_ID
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.loading import BERTURK, MINILM_ID, load_encoder
from dikkat.models.precision import chosen_precision


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        load_encoder("minilm", device="cpu", precision="int4")  # type: ignore[arg-type]


def test_the_setting_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).encoder_precision == "auto"
    monkeypatch.setenv("DIKKAT_ENCODER_PRECISION", "fp32")
    assert Settings(_env_file=None).encoder_precision == "fp32"
    monkeypatch.setenv("DIKKAT_ENCODER_PRECISION", "int4")
    with pytest.raises(pydantic.ValidationError):
        Settings(_env_file=None)


def test_auto_is_int8_only_for_the_encoders_whose_quality_int8_keeps(minilm_encoder) -> None:
    assert chosen_precision("auto", E5_ID) == "int8"  # within 0.005 macro-F1 on every set
    assert chosen_precision("auto", f"{E5_ID}-10layers") == "int8"  # its first 10 layers too
    assert chosen_precision("auto", MINILM_ID) == "fp32"  # loses 0.011 on the tweets
    assert chosen_precision("auto", BERTURK) == "fp32"  # never measured
    assert chosen_precision("int8", MINILM_ID) == "int8"  # asked for by name, it is what runs
    assert load_encoder("minilm", device="cpu", precision="auto").feature_key == (
        minilm_encoder.feature_key
    )


def test_int8_is_cpu_only_and_ignored_elsewhere(
    make_tiny_bert, caplog: pytest.LogCaptureFixture
) -> None:
    folder = make_tiny_bert(["bu", "film", "iyi"])
    # the meta device stands in for a GPU: any device that is not the CPU keeps float weights
    with caplog.at_level("INFO", logger="dikkat.models.encoder"):
        encoder = SentenceEncoder.from_pretrained(folder, device="meta", precision="int8")
    assert encoder.precision == "fp32"
    assert "|int8" not in encoder.feature_key
    assert any(type(m) is torch.nn.Linear for m in encoder.model.modules())
    assert "int8 is CPU-only" in caplog.text
