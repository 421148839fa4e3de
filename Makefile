# keypulse: `make demo` sets everything up and runs the main job; `make test` sets
# everything up and runs the lint step and the tests (what CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
JARS := infra/kafka/lib/.fetched
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GITLEAKS_VERSION := v8.28.0
GITLEAKS := $(VENV)/.gitleaks-$(GITLEAKS_VERSION)
PACKAGES := schemas streams projections alerting infra
ASSETS := infra/console/assets/node_modules/.package-lock.json
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
PYTEST_ARGS ?=

.PHONY: setup test-setup demo test test-faults lint fmt kafka-jars kafka-start kafka-stop bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[server,dev]'
	touch $@

$(JARS): infra/kafka/pom.xml
	mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies \
		-DoutputDirectory=lib -DincludeScope=runtime
	touch $@

kafka-jars: $(JARS)

# The console's front-end packages from the npm registry, exactly as the lockfile pins.
$(ASSETS): infra/console/assets/package-lock.json
	npm ci --prefix infra/console/assets --no-audit --no-fund --loglevel=error
	touch $@

# The browser tests' Chromium: Debian's package (Playwright cannot download its own here).
$(CHROMIUM):
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends chromium fonts-liberation

# gitleaks (security/gitleaks.toml's test runs it) from the Go module proxy into $(BIN);
# skipped once this version is there.
$(GITLEAKS): | $(BIN)/python
	GOFLAGS=-mod=mod GOTOOLCHAIN=local GOBIN=$(abspath $(BIN)) $(GO) install \
		-ldflags "-X github.com/zricethezav/gitleaks/v8/cmd.Version=$(GITLEAKS_VERSION)" \
		github.com/zricethezav/gitleaks/v8@$(GITLEAKS_VERSION)
	touch $@

setup: $(INSTALLED) $(JARS) $(GITLEAKS) $(ASSETS)

test-setup: setup $(CHROMIUM)

demo: setup
	$(BIN)/keypulse demo $(if $(DURATION),--duration $(DURATION),)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict $(PACKAGES)
	$(BIN)/lint-imports

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The broker the tests use (tests/conftest.py reads KEYPULSE_TEST_BOOTSTRAP).
TEST_BOOTSTRAP ?= 127.0.0.1:9092
TEST_KAFKA := KEYPULSE_KAFKA_BOOTSTRAP_SERVERS=$(TEST_BOOTSTRAP)
PYTEST := KEYPULSE_TEST_BOOTSTRAP=$(TEST_BOOTSTRAP) $(BIN)/pytest

# $(call with_test_kafka,COMMAND): `keypulse kafka start` (starts a broker unless one
# answers), run COMMAND, stop the broker only if it was started here; COMMAND's status.
with_test_kafka = out=$$($(TEST_KAFKA) $(BIN)/keypulse kafka start) || exit 1; echo "$$out"; \
	started=0; case "$$out" in *"kafka started"*) started=1;; esac; \
	$(1); rc=$$?; \
	if [ $$started = 1 ]; then $(TEST_KAFKA) $(BIN)/keypulse kafka stop; fi; exit $$rc

test: test-setup
	@$(call with_test_kafka,$(MAKE) --no-print-directory lint && $(PYTEST) -m "not slow" $(PYTEST_ARGS))

test-faults: setup
	@$(call with_test_kafka,$(PYTEST) -m slow $(PYTEST_ARGS))

kafka-start: setup
	$(BIN)/keypulse kafka start

kafka-stop: setup
	$(BIN)/keypulse kafka stop

clean:
	-$(BIN)/keypulse kafka stop
	rm -rf .keypulse
