# Airlock developer commands. On a fresh machine `make run` and `make test` do all the set-up.
#
#   make run         the whole product (web, worker, scheduler, Postgres, Redis) on local defaults
#   make test        the whole test suite (installs Debian's chromium for the browser tests if missing)
#   make test-fast   everything except the end-to-end and browser tests
#   make lint        ruff check + ruff format --check
#   make bench       the import benchmark (BENCH_ARGS="...")
#   make clean-var   stop the project-local Postgres/Redis and delete var/
#   make lock        re-resolve the lock files after a dependency change in pyproject.toml
#
# PYTEST_ARGS="..." is passed to pytest (e.g. PYTEST_ARGS="-x -k upload").

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
VAR_DIR := $(or $(AIRLOCK_VAR_DIR),var)
CHROMIUM := /usr/bin/chromium
PYTEST_ARGS ?=
BENCH_ARGS ?=
# The lock files (hashes of every wheel, compiled by uv from pyproject.toml, installed by pip):
# requirements.lock is what production runs (the Docker image), requirements-dev.lock adds the test
# tools and the embedded Postgres/Redis (extras dev + local) for make run / make test.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
LOCK_ARGS ?=
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" --quiet $(LOCK_ARGS)

.PHONY: help venv run test test-fast pytest browser lint bench clean-var lock

help:
	@sed -n '2,11s/^# \{0,1\}//p' Makefile

venv: $(STAMP)

# Re-install only when the lock file is newer than the stamp. A half-made .venv (for instance
# `python3 -m venv` without Debian's python3-venv, which leaves no pip) is recreated. pip installs the
# locked versions with their hashes; then uv (itself in the lock) removes whatever the lock no longer
# lists, so the environment is exactly the lock.
$(STAMP): $(DEV_LOCK)
	@if ! $(PY) -m pip --version >/dev/null 2>&1; then \
	  rm -rf $(VENV); \
	  if ! $(PYTHON) -m venv $(VENV) >/dev/null 2>&1; then \
	    rm -rf $(VENV); \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      echo "make: $(PYTHON) -m venv failed; installing Debian's python3-venv" >&2; \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	    fi; \
	    $(PYTHON) -m venv $(VENV) || { echo "make: cannot create $(VENV) (on Debian: apt-get install python3-venv)" >&2; exit 1; }; \
	  fi; \
	fi
	@$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(DEV_LOCK)
	@$(VENV)/bin/uv pip sync --quiet --python $(PY) --require-hashes $(DEV_LOCK)
	@touch $@

# After adding, removing or changing a dependency in pyproject.toml: `make lock`, then commit the
# pyproject.toml change with both lock files. Pinned versions are kept unless they no longer fit;
# LOCK_ARGS=--upgrade (or --upgrade-package NAME) moves to the newest releases.
lock: venv
	$(UV_COMPILE) --extra dev --extra local --extra s3 -o $(DEV_LOCK)
	$(UV_COMPILE) --extra s3 -c $(DEV_LOCK) -o $(LOCK)

run: venv
	exec $(PY) -m config.run

# pytest's exit code 5 means "no tests were collected": a suite that silently runs nothing must fail.
define run_pytest
status=0; $(PY) -m pytest $(1) || status=$$?; \
if [ $$status -eq 5 ]; then \
  echo "make: FAILED: pytest collected no tests (exit code 5): check the test paths, -k and -m arguments" >&2; \
  exit 1; \
fi; \
exit $$status
endef

test: venv browser
	@$(call run_pytest,$(PYTEST_ARGS))

test-fast: venv
	@$(call run_pytest,-m "not e2e and not browser" $(PYTEST_ARGS))

# Internal: only the pytest wrapper (used by tests/test_tooling.py to check the exit-code-5 rule).
pytest: venv
	@$(call run_pytest,$(PYTEST_ARGS))

# Internal: the browser tests drive Debian's chromium; install it when we are allowed to.
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else sudo="none"; fi; \
	  if [ "$$sudo" = none ] || ! command -v apt-get >/dev/null; then \
	    echo "make: WARNING: $(CHROMIUM) is missing and cannot be installed here (needs root or sudo and apt-get):" >&2; \
	    echo "make: WARNING: the browser tests will be SKIPPED. Install it with: apt-get install chromium" >&2; \
	  else \
	    echo "make: installing Debian's chromium for the browser tests..." >&2; \
	    if ! { $$sudo apt-get update -qq && \
	           $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then \
	      echo "make: WARNING: installing chromium failed: the browser tests will be SKIPPED." >&2; \
	    fi; \
	  fi; \
	fi

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: venv
	@$(PY) -m config.localstack start >/dev/null
	$(PY) manage.py bench $(BENCH_ARGS)

clean-var:
	@if [ -x $(PY) ]; then $(PY) -m config.localstack stop; fi
	rm -rf $(VAR_DIR)
