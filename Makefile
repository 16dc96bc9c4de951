# One task runner: `make serve` and `make test` are the README's two commands; `.ci/run` runs
# `make test` too.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: serve test lint lint-checks pytest bench install install-test openapi

# uv installs the same packages as pip from the same index, in a third of the time (16 s
# against 38 s for the test tools on a fresh clone); pip only installs uv itself.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: $(BIN)/python
	$(BIN)/python -m pip install --quiet uv

# Bytecode is compiled once, here: with PYTHONDONTWRITEBYTECODE=1 (set on our machines and in
# many images) Python never caches it, so every process (each pytest worker, each `efdb` child a
# test starts, `make serve`) compiled every module again, 2 of its 2.4 s of start-up CPU.
# compileall skips what is up to date; uv compiles site-packages.
UV_INSTALL := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python
COMPILE_SOURCES := $(BIN)/python -m compileall -q -j 0 app migrations

install: $(BIN)/uv
	$(UV_INSTALL) -e .
	$(COMPILE_SOURCES)

install-test: $(BIN)/uv
	$(UV_INSTALL) -e '.[test]'
	$(COMPILE_SOURCES) tests bench

# Migrates ./var/efdb.sqlite3 (or EFDB_DATABASE_URL), seeds it if empty, serves on :8000.
serve: install
	$(BIN)/efdb serve

lint: install-test
	$(MAKE) --no-print-directory lint-checks

# Installs the test tools, then runs the linters and type checker and every test (on SQLite
# and on PostgreSQL at 127.0.0.1:5432, skipped with the reason if absent) side by
# side; each one's output is printed whole when it ends.
test: install-test
	$(MAKE) --no-print-directory -j2 --output-sync=target lint-checks pytest

# mypy's cache outside the checkout, as uv's is: a fresh clone checks only what changed (mypy
# revalidates each cached module against its source's hash); cold, it costs ~25 s of CPU
# beside the tests.
MYPY_CACHE_DIR ?= $(HOME)/.cache/efdb/mypy

lint-checks:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --cache-dir $(MYPY_CACHE_DIR)
	$(BIN)/lint-imports

# One pytest-xdist worker more than there are CPUs: a worker waiting on a server it started, a
# lock or a browser leaves its core to the others.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

pytest:
	$(BIN)/pytest -n $(PYTEST_WORKERS)

openapi: install
	$(BIN)/efdb openapi

bench: install-test
	$(BIN)/python -m bench.read_api --backend both
	$(BIN)/python -m bench.resolve --backend postgresql
