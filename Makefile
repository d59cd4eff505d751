# `make test` installs everything the tests need (Chromium, stunnel and Mosquitto from Debian, the package with its test
# extras) and runs the whole suite; `.ci/run` calls it.
PYTHON ?= python3
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test test-fast test-deps

run:
	$(PYTHON) -m pip install -e . && gatehouse serve

test-deps:
	@command -v chromium >/dev/null && command -v stunnel4 >/dev/null && command -v curl >/dev/null && test -x /usr/sbin/mosquitto || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium stunnel4 mosquitto curl; }
	$(PYTHON) -m pip install -q -e '.[test]'

test: test-deps
	$(PYTHON) -m pytest

# The suite without the browser tests and without those that restart brokers or gateways (markers in
# pyproject.toml): a quick check while working.
test-fast: test-deps
	$(PYTHON) -m pytest -m "not browser and not slow"

# `make lint` checks what `make fmt` would change, then the types (configuration in pyproject.toml).
.PHONY: lint lint-deps fmt

lint-deps:
	$(PYTHON) -m pip install -q -e '.[lint]'

lint: lint-deps
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

fmt: lint-deps
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .
