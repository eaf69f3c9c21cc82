# FlexDash developer entry points. `make help` lists them.
#
# Everything runs inside .venv, built with a Python >= 3.12 that
# scripts/find-python.sh finds (set PYTHON=/path/to/python3.12 to choose).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.flexdash-installed
PYTEST_ARGS ?=
# pytest-xdist workers. Most of the suite's time is spent waiting on real
# clusters and the simulator, not on the CPU, so more workers than cores pay.
TEST_WORKERS ?= 4
BENCH ?=
BENCH_ARGS ?=

.PHONY: help venv install deps run serve test coverage lint format bench clean

help: ## List the targets
	@echo "FlexDash make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# (Re)create .venv when it is missing, broken or built on a Python older than 3.12.
venv:
	@if ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then \
		interp=$$(scripts/find-python.sh); \
		if [ -e $(VENV) ]; then echo "Rebuilding $(VENV): its Python is missing or older than 3.12"; rm -rf $(VENV); fi; \
		echo "Creating $(VENV) with $$interp ($$("$$interp" -V 2>&1))"; \
		"$$interp" -m venv $(VENV); \
	fi

# The grep drops pip's "Location 'file:///...' is ignored" noise about local
# package mirrors that lack a project; pipefail keeps pip's own exit status.
install: venv ## Create .venv and install FlexDash with its dev tools (only when pyproject.toml changed)
	@if [ ! -f $(STAMP) ] || [ pyproject.toml -nt $(STAMP) ]; then \
		echo "Installing FlexDash and its dev tools into $(VENV) (pip; this takes a minute the first time) ..."; \
		$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]" 2>&1 \
			| { grep -v "^WARNING: Location 'file:.*' is ignored" || true; }; \
		touch $(STAMP); \
	fi

# Debian's chromium for the Playwright browser tests (`playwright install`
# cannot download browsers here; the tests drive /usr/bin/chromium).
deps: ## Install system packages for the browser tests (chromium via apt, when root)
	@if [ -x /usr/bin/chromium ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium for the browser tests (apt-get; a few minutes) ..."; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq; \
		apt-get install -y -qq chromium >/dev/null; \
		test -x /usr/bin/chromium || { echo "error: apt-get installed chromium but /usr/bin/chromium is missing" >&2; exit 1; }; \
		echo "Installed $$(/usr/bin/chromium --version 2>/dev/null || echo chromium)"; \
	else \
		echo "NOTE: the browser tests need Debian's chromium at /usr/bin/chromium, which is missing." >&2; \
		echo "      Install it as root:  sudo apt-get update && sudo apt-get install -y chromium" >&2; \
		echo "      (do not run 'playwright install': it cannot download browsers here)" >&2; \
	fi

run: install ## Migrate, reset the demo login and start simulator + qcluster + web server (Ctrl-C stops all)
	@mkdir -p "$${FLEXDASH_VAR_DIR:-var}"
	@$(PY) manage.py migrate --no-input -v 0
	@$(PY) manage.py demouser
	@exec $(PY) scripts/run.py

# The web server alone, as in production (README, "Production"): DEBUG off, so
# settings refuse to start without DJANGO_SECRET_KEY; loading them first makes
# that refusal one line instead of a traceback. The cluster is a service of its
# own (`manage.py qcluster`). The timeout leaves room for a large run file's
# upload; --no-control-socket because gunicorn's default socket is one per
# user, which a second gunicorn on the machine would fight over.
serve: install ## Migrate, collectstatic, then gunicorn on 127.0.0.1:$PORT with DEBUG off (not the cluster)
	@export DJANGO_DEBUG=false DJANGO_SETTINGS_MODULE=flexdash.settings; \
	if ! problem=$$($(PY) -c 'import django; django.setup()' 2>&1); then \
		echo "error: $$(printf '%s\n' "$$problem" | tail -n 1 | sed -E 's/^[A-Za-z_.]+: //')" >&2; \
		exit 1; \
	fi; \
	$(PY) manage.py migrate --no-input -v 0; \
	$(PY) manage.py collectstatic --no-input -v 0; \
	exec $(VENV)/bin/gunicorn flexdash.wsgi --bind "127.0.0.1:$${PORT:-8000}" \
		--workers "$${WEB_CONCURRENCY:-2}" --timeout 120 --graceful-timeout 30 \
		--access-logfile - --no-control-socket

# pytest exits 5 when it collected no test. In CI that is a failure (a run that
# tests nothing must not pass); locally it is only a warning. Every other
# non-zero status is passed through untouched.
test: install deps ## Run the whole test suite (tests/) with pytest; PYTEST_ARGS="..." adds options
	@mkdir -p "$${FLEXDASH_VAR_DIR:-var}"
	@echo "Database: $$(printf '%s' "$${DATABASE_URL:-SQLite (default)}" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#')"
	@status=0; $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
		if [ "$${CI:-}" = true ]; then \
			echo "error: pytest ran no tests (exit 5); CI refuses an empty run" >&2; exit 5; \
		fi; \
		echo "warning: pytest ran no tests (exit 5); nothing was tested" >&2; exit 0; \
	fi; \
	exit $$status

# The share of jobs/ and flexdash/ the suite runs, measured in the test
# processes (the qcluster and flexsim subprocesses are not measured).
coverage: install deps ## Run the suite with coverage.py and print the covered share per module
	@mkdir -p "$${FLEXDASH_VAR_DIR:-var}"
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --cov=jobs --cov=flexdash \
		--cov-report=term:skip-covered $(PYTEST_ARGS)

# Every check always runs, so one pass shows every problem; any failing fails.
# lint-imports checks the rooms' import contracts in pyproject.toml.
lint: install ## ruff check + ruff format --check + the import contracts (lint-imports)
	@status=0; \
	echo "ruff check ."; $(VENV)/bin/ruff check . || status=1; \
	echo "ruff format --check ."; $(VENV)/bin/ruff format --check . || status=1; \
	echo "lint-imports"; $(VENV)/bin/lint-imports --no-cache || status=1; \
	exit $$status

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Each bench/*.py runs as a script from the project root, except helper modules:
# bench/common.py, bench/conftest.py and bench/_*.py. BENCH=bench/name.py runs
# just one; BENCH_ARGS="..." is passed to each.
bench: install ## Run the benchmarks in bench/ (BENCH=bench/x.py for one)
	@mkdir -p "$${FLEXDASH_VAR_DIR:-var}"
	@$(PY) -c 'import matplotlib' 2>/dev/null || $(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,bench]"
	@shopt -s nullglob; \
	if [ -n "$(BENCH)" ]; then files=($(BENCH)); else \
		files=(); for f in bench/*.py; do \
			case "$$(basename "$$f")" in _*|common.py|conftest.py) ;; *) files+=("$$f");; esac; \
		done; \
	fi; \
	if [ $${#files[@]} -eq 0 ]; then echo "No benchmarks in bench/ yet (bench/*.py)."; exit 0; fi; \
	failed=(); \
	for f in "$${files[@]}"; do \
		echo; echo "=== $$f ==="; \
		PYTHONPATH=. DJANGO_SETTINGS_MODULE=flexdash.settings $(PY) "$$f" $(BENCH_ARGS) || failed+=("$$f"); \
	done; \
	if [ $${#failed[@]} -gt 0 ]; then echo "error: benchmark(s) failed: $${failed[*]}" >&2; exit 1; fi

clean: ## Remove .venv and tool caches (keeps var/, the local database)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
