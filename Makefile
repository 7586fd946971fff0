# One command to set up and run, one to set up and test. See README.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup up test lint bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

up: setup
	$(BIN)/vigil up

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m bench.append

bench-quick: setup
	$(BIN)/python -m bench.append --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
