# Two entry points, both from a fresh clone with only Python installed:
#   make dev   -> .venv, install, local server on 127.0.0.1:2024 with the example graphs
#   make test  -> .venv, install, the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 2024

.PHONY: dev test lint bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/stepgraph dev --config examples/langgraph.json --port $(PORT)

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Lint, format and types (`[tool.ruff]`, `[tool.mypy]` in pyproject.toml); part of `make test`.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/run_overhead.py
	$(BIN)/python benchmarks/stream_latency.py
	$(BIN)/python benchmarks/admission_latency.py
	$(BIN)/python benchmarks/aws_call_cost.py

clean:
	rm -rf $(VENV) .pytest_cache
