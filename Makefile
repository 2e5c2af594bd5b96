# The two commands of the README. Everything else is reached from these.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-deps

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

# Start web + worker + scheduler with embedded defaults and a demo job (Ctrl+C stops all).
run: $(STAMP)
	$(BIN)/python scripts/dev.py

# Install what the tests need and run them all against real PostgreSQL and Redis.
test: $(STAMP) test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian packages the tests start themselves: slapd (a private LDAP server per session)
# and chromium (the browser tests drive Debian's build through Playwright's own driver).
# Checked every time (cheap) rather than stamped, so a fresh machine is never skipped.
test-deps:
	@test -x /usr/sbin/slapd && command -v ldapsearch >/dev/null 2>&1 || { \
		echo "installing slapd and ldap-utils for the LDAP tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends slapd ldap-utils >/dev/null; }
	@test -x /usr/bin/chromium || { \
		echo "installing chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium >/dev/null; }
