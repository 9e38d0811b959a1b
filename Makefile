# Waymark task runner. `make run` and `make test` are the README's two commands.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
RASA_VENV := .venv-rasa
APP_PY := $(VENV)/bin/python
RASA := $(RASA_VENV)/bin/rasa
# Custom NLU components (components/, safety/) are imported from the repo root.
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 2
# The sentence-embedding weights ship in a package; nothing is fetched at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# pip is quiet here; its full log goes to var/log/pip-*.log.
PIP_FLAGS := --disable-pip-version-check --quiet --progress-bar off

RASA_DATA := domain.yml config.yml $(shell find data -name '*.yml')

.PHONY: help setup browser train run serve chat test lint validate test-stories test-py bench clean

help:
	@echo "make run    set up, train if needed, start the assistant and chat in the terminal"
	@echo "make test   set up, train if needed, and run every check and test"
	@echo "make train  train the model (skipped when data, domain and config are unchanged)"
	@echo "make serve  start everything (web chat, SMS and Telegram if set up) without the terminal chat"
	@echo "make chat   chat in the terminal with a gateway that is already running"
	@echo "make bench  run the benchmarks in bench/"

setup: $(VENV)/.installed $(RASA_VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/app-constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Waymark's app needs Python 3.11 or newer: set PYTHON=/path/to/python3.11"; exit 1; }
	@mkdir -p var/log
	@echo "Setting up the app environment ($(VENV))..."
	@test -x $(APP_PY) || $(PYTHON) -m venv $(VENV)
	@$(APP_PY) -m pip install $(PIP_FLAGS) -c requirements/app-constraints.txt -e '.[dev]' \
	  --log var/log/pip-app.log 2>&1 | grep -v '^WARNING: Location' || true
	@$(APP_PY) -c 'import rasa_sdk, yaml, httpx, fastapi, sqlalchemy, alembic, twilio, telegram, playwright, pytest, pyphen, argon2, holidays, tqdm, spacy, cryptography' || { echo "App install failed: see var/log/pip-app.log"; exit 1; }
	@touch $@

$(RASA_VENV)/.installed: requirements/rasa.txt requirements/rasa-constraints.txt requirements/rasa-weights.txt requirements/rasa-weights.sha256
	@mkdir -p var/log
	@echo "Setting up the Rasa environment ($(RASA_VENV), Python 3.10; the first time takes a few minutes)..."
	@test -x $(RASA_VENV)/bin/python || { PY310=$$(scripts/find-python310) && $$PY310 -m venv $(RASA_VENV); }
	@PYTHONPATH= $(RASA_VENV)/bin/python -m pip install $(PIP_FLAGS) -c requirements/rasa-constraints.txt -r requirements/rasa.txt \
	  --log var/log/pip-rasa.log 2>&1 | grep -v '^WARNING: Location\|DEPRECATION' || true
	@PYTHONPATH= $(RASA_VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps -r requirements/rasa-weights.txt \
	  --log var/log/pip-rasa.log 2>&1 | grep -v '^WARNING: Location' || true
	@$(RASA) --version >/dev/null || { echo "Rasa install failed: see var/log/pip-rasa.log"; exit 1; }
	@scripts/check-weights
	@touch $@

# Rasa compares fingerprints and skips training when nothing changed; the stamp
# saves even starting it. components/ and safety/ are loaded when Rasa starts, not
# baked into the model, so changing them needs no retraining.
models/.trained: $(RASA_VENV)/.installed $(RASA_DATA)
	@echo "Training the model (a few minutes)..."
	@$(RASA) train --quiet --fixed-model-name waymark --out models
	@touch $@

train: models/.trained

run: setup train
	@WAYMARK_DEMO=$${WAYMARK_DEMO:-true} $(APP_PY) -m bot run

serve: setup train
	@WAYMARK_DEMO=$${WAYMARK_DEMO:-true} $(APP_PY) -m bot serve

chat: setup
	@$(APP_PY) -m bot chat

# Debian's Chromium and axe-core for the web chat's browser tests (tests/browser/).
browser:
	@scripts/setup-browser

validate: $(RASA_VENV)/.installed
	@$(APP_PY) scripts/validate_data.py

lint: $(VENV)/.installed
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

# Conversation test stories (tests/test_stories_*.yml): predicted actions must match.
test-stories: setup train
	@$(RASA) test core --stories tests --model models/waymark.tar.gz --fail-on-prediction-errors --out var/results/stories --quiet

test-py: setup train browser
	@$(VENV)/bin/pytest

test: setup lint validate train browser test-stories test-py

bench: setup train
	@$(APP_PY) bench/nlu.py
	@$(APP_PY) bench/safety.py
	@$(APP_PY) bench/services.py
	@$(APP_PY) bench/privacy.py
	@$(APP_PY) bench/crypto.py

clean:
	rm -rf models var/log .pytest_cache
