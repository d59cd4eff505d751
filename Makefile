# `make test` installs everything the tests need (Chromium, stunnel and Mosquitto from Debian, the package with its test
# extras) and runs the whole suite; `.ci/run` calls it.
PYTHON ?= python3
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test test-deps

run:
	$(PYTHON) -m pip install -e . && gatehouse serve

test-deps:
	@command -v chromium >/dev/null && command -v stunnel4 >/dev/null && command -v curl >/dev/null && test -x /usr/sbin/mosquitto || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium stunnel4 mosquitto curl; }
	$(PYTHON) -m pip install -q -e '.[test]'

test: test-deps
	$(PYTHON) -m pytest
