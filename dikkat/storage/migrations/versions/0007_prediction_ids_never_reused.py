"""Prediction ids are never handed out twice (SQLite `PRAGMA user_version` 6): feedback buttons
carry them, so an id freed by /forget must not label another user's text.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

from dikkat.storage.legacy_schema import run_in_revision

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA_VERSION = 6  # the dikkat.storage.legacy_schema version this revision corresponds to


def upgrade() -> None:
    """On SQLite rebuild `predictions` with AUTOINCREMENT (script 6 of storage.legacy_schema).
    PostgreSQL's SERIAL sequence never hands out an id twice already: nothing to do there."""
    if op.get_bind().dialect.name == "sqlite":
        run_in_revision(op.get_bind(), SCHEMA_VERSION, rebuilds="predictions")


def downgrade() -> None:
    """Not supported: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
