"""The `dikkat` command line (Typer): one module per group of commands."""

# Importing a command module registers its commands on `app`; this order is the --help order.
from dikkat.cli import serve, train, data, bench  # noqa: F401, I001
from dikkat.cli.apps import app
from dikkat.cli.common import failure_line

__all__ = ["app", "failure_line"]
