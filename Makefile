# Two commands a new user needs: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test lint typecheck pytest demo dev fmt emulator bench-emulator bench-send bench-prepare bench-sync bench-e2e clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	bash scripts/run_tests.sh $(PYTEST_ARGS)

test: lint typecheck pytest

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# Dagster's UI and daemon (`dg dev`; DEV_TOOL=dagster for `dagster dev -w workspace.yaml`) on the
# sample project, the demo's emulator (with its journal) and DAGSTER_HOME=.dagster_home.
dev: $(STAMP)
	$(BIN)/python scripts/dev.py

emulator: $(STAMP)
	$(BIN)/moments-pipeline emulator --host 127.0.0.1 --port 8089 --api-key dev-key --config data_samples/emulator.yaml

bench-emulator: $(STAMP)
	$(BIN)/python benchmarks/bench_emulator.py

bench-send: $(STAMP)
	$(BIN)/python benchmarks/bench_send.py

bench-prepare: $(STAMP)
	$(BIN)/python benchmarks/bench_prepare.py

bench-sync: $(STAMP)
	$(BIN)/python benchmarks/bench_sync.py

bench-e2e: $(STAMP)
	$(BIN)/python benchmarks/bench_e2e.py --rows 1000000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
