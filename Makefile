# `make run` and `make test` create .venv on first use and reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench-storage bench-realtime bench-load bench-attachments bench-notifications clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hub serve

lint: $(STAMP)
	$(BIN)/ruff check hub tests bench

test: $(STAMP) lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench-storage: $(STAMP)
	$(BIN)/python -m bench.storage $(BENCH_ARGS)

bench-realtime: $(STAMP)
	$(BIN)/python -m bench.realtime $(BENCH_ARGS)

bench-load: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.load $(BENCH_ARGS)

bench-attachments: $(STAMP)
	$(BIN)/python -m bench.attachments $(BENCH_ARGS)

bench-notifications: $(STAMP)
	$(BIN)/python -m bench.notifications $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
