"""1,000 votes through the Router on PostgreSQL, then a retrain: how many texts does it encode?

Run from the repository root with the dev venv and PostgreSQL's server binaries installed:
`.venv/bin/python docs/measurements/retrain_after_votes_on_postgres.py 1000`
(needs ../shared/data/sentiment/store_reviews_3class.csv).
"""

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "storage"))
import pandas as pd
from pg_cluster import pg_cluster
from pydantic import SecretStr

from dikkat.app import App
from dikkat.bot.types import ButtonPress, Request
from dikkat.config import Settings
from dikkat.hashing import text_hash
from dikkat.inference.sentiment import RecentFeatures
from dikkat.models.loading import load_encoder

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000


async def main(url: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(
        db_path=tmp / "unused.db",
        model_dir=tmp / "models",
        head_poll_s=0,
        database_url=SecretStr(url),
        retrain_nice=0,
    )
    encoder = load_encoder("minilm", device="cpu")
    rows = pd.read_csv(
        Path(__file__).resolve().parents[3] / "shared/data/sentiment/store_reviews_3class.csv"
    ).sample(N, random_state=0)
    async with App(settings, encoder=encoder) as app:
        app.router.rate_limiter.burst = 10**9
        first = await app.retrainer.run("admin", "bench:0")  # the corpus's features, once
        print(
            "first retrain (no votes):",
            first.status,
            "encoded",
            app.retrainer.last_profile.encoded_texts,
        )
        started = time.perf_counter()
        for i, (text, label) in enumerate(zip(rows["text"], rows["label"], strict=True)):
            user = f"u{i % 200}"
            reply = await app.router.handle(
                Request("telegram", user, user, "sentiment", text, "en")
            )
            data = next(b.data for b in reply.buttons if b.data.endswith(":" + label))
            await app.router.handle_button(ButtonPress("telegram", user, user, data, "en"))
        print(f"{N} votes in {time.perf_counter() - started:.0f} s")
        app.service.sentiment_pipeline.recent = RecentFeatures()  # as a trainer on another host
        hashes = [text_hash(t) for t in rows["text"]]
        stored = await app.store.get_features(app.service.feature_key, hashes)
        print("voted texts with stored features:", len(stored), "of", len(set(hashes)))
        run = await app.retrainer.run("admin", "bench:1")
        p = app.retrainer.last_profile
        print(
            json.dumps(
                {
                    "status": run.status,
                    "n_feedback": run.n_feedback,
                    "encoded_texts": p.encoded_texts,
                }
            )
        )


if __name__ == "__main__":
    with pg_cluster() as cluster:
        cluster.create_database("measure")
        asyncio.run(main(cluster.sqlalchemy_url_for("measure")))
