"""Work shared by several processes (SQLite `PRAGMA user_version` 5): telegram_updates,
retrain_runs.slot with `one_run_per_slot`, retrain_requests.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dikkat.storage.legacy_schema import run_in_revision

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the version-5 tables and index (on SQLite: exactly the legacy script 5)."""
    if op.get_bind().dialect.name == "sqlite":
        run_in_revision(op.get_bind(), 5)  # unless the aiosqlite Store already ran script 5
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


def downgrade() -> None:
    """Not supported: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
