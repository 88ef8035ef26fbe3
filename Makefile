# Two entry points: `make conformance` (the main job) and `make test` (the project's own tests); `make bench` measures what the suite costs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OPTCONF := $(BIN)/optconf

.PHONY: conformance test lint docs bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable '.[all,test,bench]'
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

# The performance checks, kept out of `make test`; the results are in docs/performance.md.
bench: $(VENV)/.installed
	$(BIN)/python -m pytest benchmarks -p no:cacheprovider

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache
