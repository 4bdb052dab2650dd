# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup lint bench clean

run: $(STAMP)
	$(BIN)/dikkat run

test: $(STAMP)
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

lint: $(STAMP)
	$(BIN)/ruff check dikkat tests
	$(BIN)/ruff format --check dikkat tests

bench: $(STAMP)
	$(BIN)/dikkat bench batching --quick

clean:
	rm -rf $(VENV) build *.egg-info
