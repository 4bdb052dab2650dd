"""`python -m dikkat` is the `dikkat` command."""

from dikkat.cli import app

if __name__ == "__main__":  # a spawned worker process imports the main module again
    app(prog_name="dikkat")
