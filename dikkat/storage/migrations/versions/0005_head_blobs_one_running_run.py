"""Head weights in the database (head_blobs); the database refuses a second running run.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add head_blobs and the partial unique index `one_running_run`."""
    op.create_table(
        "head_blobs",
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    # An adopted database could hold several stale 'running' rows: keep only the newest.
    op.execute(
        sa.text(
            "UPDATE retrain_runs SET status = 'failed', finished_at = :now, "
            "error = 'interrupted (its process stopped during the run)' "
            "WHERE status = 'running' AND id < "
            "(SELECT MAX(id) FROM retrain_runs WHERE status = 'running')"
        ).bindparams(now=time.time())
    )
    op.create_index(
        "one_running_run",
        "retrain_runs",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    """Not supported: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
