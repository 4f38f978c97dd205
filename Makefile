# Stratbox — the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
FRONTEND_STAMP := frontend/static/build/.built-$(shell cat frontend/package.json frontend/package-lock.json frontend/static/src/* frontend/static/src/lib/* 2>/dev/null | sha1sum | cut -c1-12)

# Test servers: the machine's PostgreSQL and Redis at their standard ports (never SQLite).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/stratbox
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1
# Benchmarks work in their own database and Redis DB, created when missing.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/stratbox_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/13
BENCH_ENV = DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL)

.PHONY: run test install frontend lint check-services screenshots contract-alpaca bench-sandbox bench-engine bench-live bench-backtest bench-venues clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VENV)/bin/activate pyproject.toml
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

$(FRONTEND_STAMP):
	@if [ -f frontend/package.json ]; then \
	  command -v npm >/dev/null || { echo "npm (Node.js 18+) is needed to build the dashboard's static files"; exit 1; }; \
	  cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build; \
	fi
	@mkdir -p frontend/static/build && rm -f frontend/static/build/.built-* && touch $(FRONTEND_STAMP)

frontend: $(FRONTEND_STAMP)

## make run — the whole platform in the foreground (web, worker, beat, feed); Ctrl-C stops it all.
## Worker, beat, feed and dispatcher log warnings only; `make run VERBOSE=1` shows their INFO lines.
run: install frontend
	$(PY) -m stratbox.launcher $(if $(VERBOSE),--verbose)

## make test — ruff (lint and format), import-linter, mypy (sandbox, strict) and the whole pytest suite against real PostgreSQL and Redis.
test: install frontend check-services
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) STRATBOX_SANDBOX_STRICT=1 $(PY) -m pytest $(PYTEST_ARGS)

check-services:
	@bash scripts/ensure_test_services.sh

## make screenshots — regenerate docs/*.png from a real `make run` (own port, embedded stores) in Debian's Chromium.
screenshots: install frontend
	$(PY) scripts/screenshots.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

## make contract-alpaca — the venue contract against Alpaca's paper API (needs APCA_API_KEY_ID, APCA_API_SECRET_KEY and the internet; not part of make test).
contract-alpaca: install
	$(PY) -m pytest contract -p no:django -W ignore::pytest.PytestConfigWarning -q -s

bench-sandbox: install
	$(PY) bench/sandbox/bench_sandbox.py

bench-engine: install frontend check-services
	$(PY) scripts/ensure_database.py $(BENCH_DATABASE_URL)
	$(BENCH_ENV) $(PY) bench/engine/bench_engine.py $(BENCH_ENGINE_ARGS)

bench-live: install frontend check-services
	$(PY) scripts/ensure_database.py $(BENCH_DATABASE_URL)
	$(BENCH_ENV) $(PY) bench/live/bench_live.py

bench-backtest: install frontend check-services
	$(PY) scripts/ensure_database.py $(BENCH_DATABASE_URL)
	$(BENCH_ENV) $(PY) bench/backtest/bench_backtest.py

bench-venues: install frontend check-services
	$(PY) scripts/ensure_database.py $(BENCH_DATABASE_URL)
	$(BENCH_ENV) $(PY) bench/venues/bench_venues.py $(BENCH_VENUES_ARGS)

clean:
	rm -rf $(VENV) var/staticfiles frontend/node_modules frontend/static/build
