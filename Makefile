# Two entry points, both from a fresh clone with only Python installed:
#   make dev   -> .venv, install, local server on 127.0.0.1:2024 with the example graphs
#   make test  -> .venv, install, the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 2024
# What each entry point installs (pyproject.toml's extras): the local server, or that plus the
# test and lint tools. A stamp per extra: `make dev` after `make test` installs nothing more.
LOCAL  := $(VENV)/.installed-local
STAMP  := $(VENV)/.installed-test

.PHONY: dev test lint bench install clean

# uv installs (about 10 s where pip takes 90); pip only brings uv itself.
UV     := $(BIN)/uv pip install --quiet --python $(BIN)/python

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

$(LOCAL): pyproject.toml | $(VENV)/bin/python
	$(UV) -e ".[local]"
	touch $(LOCAL)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(UV) -e ".[test]"
	touch $(STAMP) $(LOCAL)

install: $(STAMP)

dev: $(LOCAL)
	$(BIN)/stepgraph dev --config examples/langgraph.json --port $(PORT)

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

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
