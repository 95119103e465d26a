# secreview — developer entry points. Every target sets up .venv itself on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint fmt typecheck check bench bench-cache bench-diff bench-ingest bench-scan bench-noise clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# Microsoft's SARIF multitool (GitHub's own ingestion rules) for the SARIF tests, when npm is here.
	-command -v npm >/dev/null && npm install --silent --no-audit --no-fund --prefix $(VENV)/sarif @microsoft/sarif-multitool
	touch $(STAMP)

install: $(STAMP)

demo: install  ## review the bundled example change
	$(BIN)/secreview review --diff examples/vulnerable.diff --repo examples/shop --format markdown --fail-on none

test: install  ## the whole test suite (needs Redis on 127.0.0.1:6379)
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not e2e and not slow"

lint: install
	$(BIN)/ruff check bot workers tests bench
	$(BIN)/ruff format --check bot workers tests bench

fmt: install
	$(BIN)/ruff format bot workers tests bench
	$(BIN)/ruff check --fix bot workers tests bench

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: bench-cache bench-diff bench-ingest bench-scan bench-noise  ## benchmarks; figures go to bench/results/

bench-cache: install
	$(BIN)/python -m bench.cache_efficiency

bench-diff: install
	$(BIN)/python -m bench.diff_pipeline

bench-ingest: install
	$(BIN)/python -m bench.webhook_ingest

bench-scan: install
	$(BIN)/python -m bench.scan_plan

bench-noise: install
	$(BIN)/python -m bench.noise

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
