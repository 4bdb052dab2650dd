"""Prediction ids are never handed out twice (SQLite `PRAGMA user_version` 6): feedback buttons
carry them, so an id freed by /forget must not label another user's text.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA_VERSION = 6  # the dikkat.storage.legacy_schema version this revision corresponds to


def upgrade() -> None:
    """On SQLite rebuild `predictions` with AUTOINCREMENT (script 6 of storage.legacy_schema).
    PostgreSQL's SERIAL sequence never hands out an id twice already: nothing to do there."""
    if op.get_bind().dialect.name != "sqlite":
        return
    from dikkat.storage.legacy_schema import MIGRATIONS

    bind = op.get_bind()
    version = int(bind.exec_driver_sql("PRAGMA user_version").scalar() or 0)
    if version >= SCHEMA_VERSION:
        return
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("the predictions rebuild needs foreign keys off (they would cascade)")
    for statement in MIGRATIONS[SCHEMA_VERSION - 1].split(";"):
        if statement.strip():
            bind.exec_driver_sql(statement)
    bind.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")


def downgrade() -> None:
    """Not supported: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
