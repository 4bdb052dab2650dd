"""`python -m dikkat` is the `dikkat` command."""

from dikkat.cli import app

if __name__ == "__main__":  # importing it (as tools do) must not run the command
    app(prog_name="dikkat")
