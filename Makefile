# Every target sets up what it needs on a fresh machine: the virtualenv from requirements.lock,
# and (for tests and benchmarks) Debian's chromium, postfix tools and spamassassin.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup system run test check bench format clean screenshots

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

system:
	sh scripts/setup-system.sh

run: setup
	$(BIN)/sdruk db upgrade
	$(BIN)/sdruk demo
	$(BIN)/sdruk users demo-admin
	$(BIN)/python schedule.py

test: setup system
	$(BIN)/python -m pytest

check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy mailer

bench: setup system
	$(BIN)/python -m bench

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Refreshes the console screenshots the README shows (the browser test takes them).
screenshots: setup system
	SDRUK_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/test_console_browser.py tests/test_editor_browser.py
