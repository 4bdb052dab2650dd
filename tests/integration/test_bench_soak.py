"""The soak benchmark's machinery on the real bot (MiniLM), for a handful of rounds: every request
answered, every acknowledged vote found, every background event run once, report and figure."""

from __future__ import annotations

import io
import json
from pathlib import Path

from matplotlib.image import imread

from dikkat.bench.soak import SoakConfig, format_report, run_soak
from dikkat.config import Settings

USERS, ROUNDS = 2, 4  # four rounds: the worked example, nano-GPT and encoder pictures, /explain
TINY = SoakConfig(
    minutes=None,
    rounds=ROUNDS,
    users=USERS,
    think_s=0.01,
    sample_s=0.5,
    retrain_every_s=3600.0,  # each background event comes once, at the start
    activate_every_s=3600.0,
    lock_every_s=3600.0,
    lock_hold_s=(0.3, 0.3),
    long_lock_every=1,  # that one hold outlasts the busy timeout
    busy_timeout_ms=200,
    forget_every=3,  # the third round ends with /forget; the fourth's votes stay
    head_poll_s=0.1,
)


def test_a_short_soak_answers_everything_and_keeps_every_acknowledged_vote(
    settings: Settings, minilm_encoder, seed_features_db: Path, tmp_path: Path
) -> None:
    json_path, plot_path = tmp_path / "soak.json", tmp_path / "soak.png"
    report = run_soak(
        TINY,
        settings=settings,
        encoder=minilm_encoder,
        features_db=seed_features_db,
        json_path=json_path,
        plot_path=plot_path,
        progress=False,
    )
    requests = report["requests"]
    assert requests["unanswered"] == 0, requests["odd_replies"]
    by_command = requests["by_command"]
    assert by_command["sentiment"]["n"] == USERS * ROUNDS
    assert by_command["attention"]["n"] == USERS * 3 and by_command["explain"]["n"] == USERS
    assert by_command["forget"]["n"] == USERS
    votes = report["votes"]
    assert votes["pressed"] >= USERS * ROUNDS - requests["polite"] - requests["error"]
    assert votes["checked"] >= 1 and votes["missing"] == 0 and votes["unexpected_at_end"] == 0
    assert report["retrains"]["requested"] == 1
    assert report["activations"]["ok"] == 1, report["activations"]
    assert report["locks"]["held"] == 1 and report["locks"]["long"] == 1
    assert report["head"]["in_step"], report["head"]
    assert len(report["samples"]) >= 2
    assert report["trend"]["warmup_s"] >= 0 and "tracebacks" in report["logs"]
    assert set(report["verdict"]) >= {"tasks_flat", "fds_flat", "no_tracebacks", "passed"}

    assert json.loads(json_path.read_text(encoding="utf-8"))["votes"] == votes
    image = imread(io.BytesIO(plot_path.read_bytes()), format="png")
    assert image.shape[0] > 300 and image.shape[1] > 300
    text = format_report(report)
    assert "/sentiment" in text and "tracebacks" in text
