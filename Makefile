# One task runner: `make serve`, `make lint` and `make test` are the README's commands.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: serve test lint lint-checks pytest ci bench install install-test openapi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

# Migrates ./var/efdb.sqlite3 (or EFDB_DATABASE_URL), seeds it if empty, serves on :8000.
serve: install
	$(BIN)/efdb serve

lint: install-test
	$(MAKE) --no-print-directory lint-checks

# Every test on SQLite and on PostgreSQL (127.0.0.1:5432; skipped with the reason if absent),
# on one pytest-xdist worker per CPU.
test: install-test
	$(MAKE) --no-print-directory pytest

# CI (.ci/run): install once, then lint and the tests side by side; each one's output is
# printed whole when it ends.
ci: install-test
	$(MAKE) --no-print-directory -j2 --output-sync=target lint-checks pytest

lint-checks:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest:
	$(BIN)/pytest -n auto

openapi: install
	$(BIN)/efdb openapi

bench: install-test
	$(BIN)/python -m bench.read_api --backend both
	$(BIN)/python -m bench.resolve --backend postgresql
