"""SQL storage over SQLAlchemy 2 Core async (SQLite or PostgreSQL) with Alembic migrations.

Needs the `scale` extra; without SQLAlchemy this package is empty, so that walking the package
(tests, tools) does not import what is not installed.
"""

from importlib.util import find_spec

if find_spec("sqlalchemy") is None or find_spec("alembic") is None:  # pragma: no cover
    __path__: list[str] = []
