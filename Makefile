# Two entry points: `make conformance` (the main job) and `make test` (the project's own tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OPTCONF := $(BIN)/optconf

.PHONY: conformance test lint docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable '.[all,test]'
	touch $@

# The main job: every installed framework through the conformance runner, and the matrix in CONFORMANCE.md.
conformance: $(VENV)/.installed
	$(OPTCONF) matrix

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(OPTCONF) docs --check

docs: $(VENV)/.installed
	$(OPTCONF) docs

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache
