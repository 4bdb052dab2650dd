"""Work shared by several processes (SQLite `PRAGMA user_version` 5): telegram_updates,
retrain_runs.slot with `one_run_per_slot`, retrain_requests.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA_VERSION = 5  # the dikkat.storage.legacy_schema version this revision corresponds to


def upgrade() -> None:
    """Add the version-5 tables and index (on SQLite: exactly the legacy script 5)."""
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_script()
        return
    op.create_table(
        "telegram_updates",
        sa.Column("update_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("owner", sa.Text),
        sa.Column("done_at", sa.Double),
    )
    op.create_index("telegram_updates_received", "telegram_updates", ["received_at"])
    op.add_column("retrain_runs", sa.Column("slot", sa.Text))
    op.create_index(
        "one_run_per_slot",
        "retrain_runs",
        ["slot"],
        unique=True,
        postgresql_where=sa.text("slot IS NOT NULL"),
    )
    op.create_table(
        "retrain_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("requested_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("taken_at", sa.Double),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("retrain_runs.id")),
    )
    op.create_index(
        "retrain_requests_untaken",
        "retrain_requests",
        ["id"],
        postgresql_where=sa.text("taken_at IS NULL"),
    )


def _sqlite_script() -> None:
    """Run script 5 of storage.legacy_schema unless the aiosqlite Store already did (a file it
    opened after this database was at 0005, or a version-5 file adopted), then user_version 5:
    that Store and this revision built the same tables."""
    from dikkat.storage.legacy_schema import MIGRATIONS

    bind = op.get_bind()
    version = int(bind.exec_driver_sql("PRAGMA user_version").scalar() or 0)
    if version >= SCHEMA_VERSION:
        return
    for statement in MIGRATIONS[SCHEMA_VERSION - 1].split(";"):
        if statement.strip():
            bind.exec_driver_sql(statement)
    bind.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")


def downgrade() -> None:
    """Not supported: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
