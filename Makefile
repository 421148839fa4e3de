# keypulse: `make demo` sets everything up and runs the main job; `make test` sets
# everything up and runs the lint step and the tests (what CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
JARS := infra/kafka/lib/.fetched
PACKAGES := schemas streams projections alerting infra
PYTEST_ARGS ?=

.PHONY: setup demo test test-faults lint fmt kafka-jars kafka-start kafka-stop bench clean

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

setup: $(INSTALLED) $(JARS)

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

# Start Kafka unless one runs, run lint + tests, stop the Kafka this target started.
test: setup
	@out=$$($(BIN)/keypulse kafka start) || exit 1; echo "$$out"; \
	started=0; case "$$out" in *"kafka started"*) started=1;; esac; \
	$(MAKE) --no-print-directory lint && $(BIN)/pytest -m "not slow" $(PYTEST_ARGS); rc=$$?; \
	if [ $$started = 1 ]; then $(BIN)/keypulse kafka stop; fi; exit $$rc

test-faults: setup
	@out=$$($(BIN)/keypulse kafka start) || exit 1; echo "$$out"; \
	started=0; case "$$out" in *"kafka started"*) started=1;; esac; \
	$(BIN)/pytest -m slow $(PYTEST_ARGS); rc=$$?; \
	if [ $$started = 1 ]; then $(BIN)/keypulse kafka stop; fi; exit $$rc

kafka-start: setup
	$(BIN)/keypulse kafka start

kafka-stop: setup
	$(BIN)/keypulse kafka stop

clean:
	-$(BIN)/keypulse kafka stop
	rm -rf .keypulse
