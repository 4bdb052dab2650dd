"""`python -m dikkat` is the `dikkat` command."""

from dikkat.cli import app

app(prog_name="dikkat")
