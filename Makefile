# dvc-assistant — two commands for a newcomer: `make run` and `make test`.
# Both start with `make setup`: a Python 3.10 venv in .venv/ with the locked dependencies.

SHELL := /bin/bash
PYTHON_VERSION := $(shell cat .python-version)
# Python 3.10 from pyenv (see .python-version); PYTHON310=/path/to/python3.10 overrides it.
PYENV_ROOT ?= $(HOME)/.pyenv
PYTHON310 ?= $(firstword $(wildcard \
	$(shell pyenv prefix $(PYTHON_VERSION) 2>/dev/null)/bin/python3.10 \
	$(PYENV_ROOT)/versions/$(PYTHON_VERSION)/bin/python3.10) \
	$(shell command -v python3.10 2>/dev/null))
UV := .tools/bin/uv

# Settings from .env (see .env.example), exported to every command, if the file exists.
ifneq (,$(wildcard .env))
include .env
export
endif
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup run test lint train shell evaluate clean help browser

help:
	@echo "make run    - install (if needed) and start the whole assistant on embedded defaults"
	@echo "make test   - install (if needed) and run the full test suite"
	@echo "make setup  - create .venv (Python 3.10) with the locked dependencies"
	@echo "make train  - retrain the model     make shell - chat in the terminal"
	@echo "make lint   - ruff                  make evaluate - intent accuracy on ../shared/eval"

NO_PYTHON := Python 3.10 not found: install it with 'pyenv install $(PYTHON_VERSION)' or set PYTHON310=/path/to/python3.10

$(UV):
	@test -n "$(PYTHON310)" || { echo "$(NO_PYTHON)"; exit 1; }
	$(PYTHON310) -m pip install --quiet --disable-pip-version-check --target .tools uv==0.13.9

# Re-installs only when the lock file or pyproject changed (idempotent, a no-op otherwise).
$(STAMP): uv.lock pyproject.toml | $(UV)
	@test -n "$(PYTHON310)" || { echo "$(NO_PYTHON)"; exit 1; }
	UV_PYTHON_DOWNLOADS=never $(UV) sync --frozen --python $(PYTHON310)
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/python -m bot run

train: setup
	$(VENV)/bin/python -m bot train

shell: setup
	$(VENV)/bin/python -m bot shell --start

evaluate: setup
	$(VENV)/bin/python -m bot evaluate --min-accuracy 0.85

lint: setup
	$(VENV)/bin/ruff check bot actions tests bench

# The widget's browser tests drive Debian's chromium (Playwright with executable_path): no
# browser download from a CDN. Installed once with apt-get (as root, or through sudo).
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
browser:
	@test -x $(CHROMIUM) || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	    chromium >/dev/null || { $$SUDO apt-get update -q >/dev/null && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	    chromium >/dev/null; } || { echo "Could not install chromium: install Debian's \
	chromium package (or set CHROMIUM=/path/to/chromium) and run make test again"; exit 1; }; }

test: setup browser
	$(VENV)/bin/ruff check bot actions tests bench
	$(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf var/ models/*.tar.gz models/.catalog_fingerprint .pytest_cache
