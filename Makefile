# One entry point per job. `make test` is what CI runs; `make demo` is the local failover.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo bench clean

$(STAMP): requirements-dev.txt constraints.txt function/requirements.txt publisher/requirements.txt pyproject.toml publisher/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

## test: lint, type-check and run every test tier (unit, emulator integration, end to end).
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy function publisher emulators local deploy/gcp tests benchmarks

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

## demo: a real failover and failback on the local emulators.
demo: $(STAMP)
	$(BIN)/python -m local.demo $(DEMO_ARGS)

## bench: benchmarks; prints tables and writes results/.
bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
