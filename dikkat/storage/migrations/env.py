"""Alembic environment: runs on the connection `dikkat.storage.migrate` hands over."""

from __future__ import annotations

from alembic import context

from dikkat.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations with `dikkat db upgrade` (dikkat.storage.migrate.upgrade), "
        "which takes the cross-process lock first"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    transaction_per_migration=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
