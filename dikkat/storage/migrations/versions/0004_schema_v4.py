"""Today's schema (SQLite `PRAGMA user_version` 4): users, predictions, feedback, features,
model versions, retrain runs with lease, audit.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dikkat.storage.legacy_schema import run_in_revision

revision = "0004"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the version-4 schema (on SQLite: exactly the legacy scripts, user_version 4)."""
    if op.get_bind().dialect.name == "sqlite":
        run_in_revision(op.get_bind(), 4)  # a version-5 file stays 5
        return
    op.create_table(
        "users",
        sa.Column("platform", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("lang", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("chat_id", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("text_hash", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("probabilities", sa.Text, nullable=False),
        sa.Column("head_version", sa.Integer),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_index("predictions_user", "predictions", ["platform", "user_id"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "prediction_id",
            sa.Integer,
            sa.ForeignKey("predictions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.CheckConstraint("label IN ('negative', 'neutral', 'positive')"),
        sa.UniqueConstraint("prediction_id", "platform", "user_id"),
    )
    op.create_index("feedback_user", "feedback", ["platform", "user_id"])
    op.create_table(
        "features",
        sa.Column("text_hash", sa.Text, primary_key=True),
        sa.Column("encoder", sa.Text, primary_key=True),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("encoder", sa.Text, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False, server_default="{}"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("activated_at", sa.Double),
        sa.Column("sha256", sa.Text),
        sa.Column("problem", sa.Text),
        sa.CheckConstraint("status IN ('candidate', 'active', 'retired', 'rejected')"),
    )
    op.create_index(
        "one_active_head_per_encoder",
        "model_versions",
        ["encoder"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "retrain_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("requested_by", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double),
        sa.Column("n_feedback", sa.Integer, nullable=False, server_default="0"),
        sa.Column("n_train", sa.Integer, nullable=False, server_default="0"),
        sa.Column("metrics_before", sa.Text),
        sa.Column("metrics_after", sa.Text),
        sa.Column("candidate_version", sa.Integer, sa.ForeignKey("model_versions.id")),
        sa.Column("error", sa.Text),
        sa.Column("owner", sa.Text),
        sa.Column("lease_until", sa.Double),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    """Not supported: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
