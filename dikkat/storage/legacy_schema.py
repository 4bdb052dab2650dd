"""The schema scripts of the aiosqlite Store (`PRAGMA user_version` 1..6), frozen: they adopt
files made before Alembic managed the database, and revisions 0006/0007 reuse two of them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

# Each entry upgrades the schema from version i to i + 1. Never edit a released entry: append.
MIGRATIONS: tuple[str, ...] = (
    # 1: users, predictions and their feedback
    """
    CREATE TABLE users (
        platform TEXT NOT NULL,
        user_id TEXT NOT NULL,
        lang TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (platform, user_id)
    );
    CREATE TABLE predictions (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        user_id TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        text TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        label TEXT NOT NULL,
        probabilities TEXT NOT NULL,
        head_version INTEGER,
        created_at REAL NOT NULL
    );
    CREATE INDEX predictions_user ON predictions (platform, user_id);
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        prediction_id INTEGER NOT NULL REFERENCES predictions (id) ON DELETE CASCADE,
        platform TEXT NOT NULL,
        user_id TEXT NOT NULL,
        label TEXT NOT NULL CHECK (label IN ('negative', 'neutral', 'positive')),
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (prediction_id, platform, user_id)
    );
    CREATE INDEX feedback_user ON feedback (platform, user_id);
    """,
    # 2: feature cache, model versions, retrain runs, audit trail
    """
    CREATE TABLE features (
        text_hash TEXT NOT NULL,
        encoder TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (text_hash, encoder)
    );
    CREATE TABLE model_versions (
        id INTEGER PRIMARY KEY,
        encoder TEXT NOT NULL,
        dim INTEGER NOT NULL,
        path TEXT NOT NULL,
        metrics TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL CHECK (status IN ('candidate', 'active', 'retired', 'rejected')),
        source TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        activated_at REAL
    );
    CREATE UNIQUE INDEX one_active_head_per_encoder ON model_versions (encoder)
        WHERE status = 'active';
    CREATE TABLE retrain_runs (
        id INTEGER PRIMARY KEY,
        trigger TEXT NOT NULL,
        requested_by TEXT,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        n_feedback INTEGER NOT NULL DEFAULT 0,
        n_train INTEGER NOT NULL DEFAULT 0,
        metrics_before TEXT,
        metrics_after TEXT,
        candidate_version INTEGER REFERENCES model_versions (id),
        error TEXT
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        user_id TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    """,
    # 3: head files are verified by checksum; a version whose file cannot be loaded says why
    """
    ALTER TABLE model_versions ADD COLUMN sha256 TEXT;
    ALTER TABLE model_versions ADD COLUMN problem TEXT;
    """,
    # 4: a running retrain is owned by one process, which renews a lease while it works
    """
    ALTER TABLE retrain_runs ADD COLUMN owner TEXT;
    ALTER TABLE retrain_runs ADD COLUMN lease_until REAL;
    """,
    # 5: several processes share the work: Telegram webhook updates are claimed once (re-sent
    # duplicates are dropped), a cron slot starts at most one run, frontends leave retrain
    # requests for the one trainer
    """
    CREATE TABLE telegram_updates (
        update_id INTEGER PRIMARY KEY,
        received_at REAL NOT NULL,
        owner TEXT,
        done_at REAL
    );
    CREATE INDEX telegram_updates_received ON telegram_updates (received_at);
    ALTER TABLE retrain_runs ADD COLUMN slot TEXT;
    CREATE UNIQUE INDEX one_run_per_slot ON retrain_runs (slot) WHERE slot IS NOT NULL;
    CREATE TABLE retrain_requests (
        id INTEGER PRIMARY KEY,
        requested_by TEXT NOT NULL,
        created_at REAL NOT NULL,
        taken_at REAL,
        run_id INTEGER REFERENCES retrain_runs (id)
    );
    CREATE INDEX retrain_requests_untaken ON retrain_requests (id) WHERE taken_at IS NULL;
    """,
    # 6: a prediction id (carried by feedback buttons) is never handed out twice, even after
    # /forget deleted the newest predictions: AUTOINCREMENT, so the table is rebuilt
    """
    DROP TABLE IF EXISTS predictions_v6;
    CREATE TABLE predictions_v6 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        platform TEXT NOT NULL,
        user_id TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        text TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        label TEXT NOT NULL,
        probabilities TEXT NOT NULL,
        head_version INTEGER,
        created_at REAL NOT NULL
    );
    INSERT INTO predictions_v6 SELECT id, platform, user_id, chat_id, text, text_hash, label,
        probabilities, head_version, created_at FROM predictions;
    DROP TABLE predictions;
    ALTER TABLE predictions_v6 RENAME TO predictions;
    CREATE INDEX predictions_user ON predictions (platform, user_id);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA foreign_keys = ON", "PRAGMA synchronous = FULL")
BUSY_TIMEOUT_MS = 10_000


def adopt(path: Path, upto: int) -> None:
    """Bring a file of the aiosqlite Store to at least version `upto`, one atomic script at a
    time; a file that Alembic manages already is left alone."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        for pragma in PRAGMAS:
            conn.execute(pragma)
        managed = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if managed:
            return
        if version > SCHEMA_VERSION:
            raise too_new("version", version, SCHEMA_VERSION)
        for target in range(version + 1, upto + 1):
            conn.executescript(migration_script(target, MIGRATIONS[target - 1]))
    finally:
        conn.close()


def run_in_revision(bind: Any, target: int, *, rebuilds: str | None = None) -> None:
    """Inside an Alembic revision on SQLite: the scripts from the file's user_version up to
    `target`, statement by statement in the revision's transaction; a file there already is kept."""
    version = int(bind.exec_driver_sql("PRAGMA user_version").scalar() or 0)
    if version >= target:
        return
    if rebuilds and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(f"the {rebuilds} rebuild needs foreign keys off (they would cascade)")
    for script in MIGRATIONS[version:target]:
        for statement in script.split(";"):
            if statement.strip():
                bind.exec_driver_sql(statement)
    bind.exec_driver_sql(f"PRAGMA user_version = {target}")


def migration_script(target_version: int, script: str) -> str:
    """One migration and its version bump, as a single transaction. Foreign keys are off while
    it runs (a rebuilt table is dropped without cascading to the rows that reference it)."""
    return (
        f"PRAGMA foreign_keys = OFF;\nBEGIN IMMEDIATE;\n{script}\n"
        f"PRAGMA user_version = {target_version};\nCOMMIT;\nPRAGMA foreign_keys = ON;"
    )


def too_new(kind: str, found: object, known: object) -> RuntimeError:
    """What to say about a database that a newer Dikkat made."""
    return RuntimeError(
        f"database schema {kind} {found} is newer than this Dikkat ({known}); "
        "upgrade Dikkat instead of downgrading the database"
    )
