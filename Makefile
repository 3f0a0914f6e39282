# asm: every target creates the virtual environment first if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SYNTH ?= asm-sub
PARAMS ?= 32
MODELS ?=
SCALE ?= small
SEED ?= 0
PYTEST_ARGS ?=

.PHONY: install test test-fast synths ood-targets mono-benchmark poly-benchmark clean-venv lint

install: $(STAMP)

# Re-installs only when the project's metadata changed; seconds otherwise.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check asm tests fixtures

clean-venv:
	rm -rf $(VENV)
