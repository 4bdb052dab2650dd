"""Acknowledged feedback survives a SIGKILL of the writing process."""

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

WRITER = """
import asyncio, sys
from pathlib import Path
from dikkat.storage.store import Store

async def main(path):
    store = await Store.open(Path(path))
    i = 0
    while True:
        pid = await store.log_prediction(
            platform="telegram", user_id=f"u{i}", chat_id="c", text=f"metin {i}",
            label="neutral", probabilities={"neutral": 1.0}, head_version=None)
        await store.add_feedback(pid, "telegram", f"u{i}", "positive")
        print(pid, flush=True)
        i += 1

asyncio.run(main(sys.argv[1]))
"""


def test_sigkill_while_writing_feedback_loses_no_acknowledged_vote(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    acknowledged: list[int] = []
    assert process.stdout is not None
    for line in process.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) >= 300:
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    rows = sqlite3.connect(db).execute("SELECT prediction_id FROM feedback").fetchall()
    stored = {row[0] for row in rows}
    assert set(acknowledged) <= stored
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_an_app_given_a_store_serves_from_it_and_leaves_it_open(
    settings, minilm_encoder, seed_features_db: Path
) -> None:
    import shutil

    from dikkat.app import App
    from dikkat.storage.store import Store

    shutil.copy(seed_features_db, settings.db_path)
    store = await Store.open(settings.db_path)
    try:
        async with App(settings, encoder=minilm_encoder, store=store) as app:
            assert app.store is store
            assert (await store.active_version(minilm_encoder.feature_key)) is not None
        assert await store.ping()  # the App did not close what it did not open
    finally:
        await store.close()
