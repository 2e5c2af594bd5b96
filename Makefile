# The two commands of the README. Everything else is reached from these.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

# Start web + worker + scheduler with embedded defaults and a demo job (Ctrl+C stops all).
run: $(STAMP)
	$(BIN)/python scripts/dev.py

# Install what the tests need and run them all against real PostgreSQL and Redis.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
