"""Every table as SQLAlchemy Core `MetaData`: the schema at the newest Alembic revision."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def _partial_index(name: str, column: str, where: str, *, unique: bool = False) -> sa.Index:
    """An index over the rows `where` holds, on both dialects."""
    condition = sa.text(where)
    return sa.Index(name, column, unique=unique, sqlite_where=condition, postgresql_where=condition)


users = sa.Table(
    "users",
    metadata,
    sa.Column("platform", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("lang", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
)

predictions = sa.Table(
    "predictions",
    metadata,
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
    sa.Index("predictions_user", "platform", "user_id"),
    sqlite_autoincrement=True,  # an id carried by a button is never reused
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("prediction_id", sa.ForeignKey("predictions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.CheckConstraint("label IN ('negative', 'neutral', 'positive')"),
    sa.UniqueConstraint("prediction_id", "platform", "user_id"),
    sa.Index("feedback_user", "platform", "user_id"),
)

features = sa.Table(
    "features",
    metadata,
    sa.Column("text_hash", sa.Text, primary_key=True),
    sa.Column("encoder", sa.Text, primary_key=True),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
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
    _partial_index("one_active_head_per_encoder", "encoder", "status = 'active'", unique=True),
)

retrain_runs = sa.Table(
    "retrain_runs",
    metadata,
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
    sa.Column("candidate_version", sa.ForeignKey("model_versions.id")),
    sa.Column("error", sa.Text),
    sa.Column("owner", sa.Text),
    sa.Column("lease_until", sa.Double),
    sa.Column("slot", sa.Text),  # the cron slot a run was started for
    # the database itself refuses a second running run, and a second run of one cron slot
    _partial_index("one_running_run", "status", "status = 'running'", unique=True),
    _partial_index("one_run_per_slot", "slot", "slot IS NOT NULL", unique=True),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Double, nullable=False),
)

# head weights live in the database so that every host sees them
head_blobs = sa.Table(
    "head_blobs",
    metadata,
    sa.Column(
        "version_id", sa.ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

# webhook updates claimed once across replicas
telegram_updates = sa.Table(
    "telegram_updates",
    metadata,
    sa.Column("update_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.Column("owner", sa.Text),
    sa.Column("done_at", sa.Double),
    sa.Index("telegram_updates_received", "received_at"),
)

# `/retrain` on any frontend leaves a request that the one trainer takes
retrain_requests = sa.Table(
    "retrain_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("requested_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("taken_at", sa.Double),
    sa.Column("run_id", sa.ForeignKey("retrain_runs.id")),
    _partial_index("retrain_requests_untaken", "id", "taken_at IS NULL"),
)
