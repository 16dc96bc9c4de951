# One task runner: `make serve` and `make test` are the README's two commands.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: serve test lint bench install install-test openapi

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
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Every test on SQLite and on PostgreSQL (127.0.0.1:5432; skipped with the reason if absent).
test: lint
	$(BIN)/pytest

openapi: install
	$(BIN)/efdb openapi

bench: install-test
	$(BIN)/python -m bench.read_api --backend both
	$(BIN)/python -m bench.resolve --backend postgresql
