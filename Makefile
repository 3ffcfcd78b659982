# Two entry points for a fresh machine (see README): `make demo` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint format bench clean

setup:
	scripts/setup.sh

demo: setup
	$(BIN)/dasan demo

# mypy reads its settings (files, strict modules) from pyproject.toml.
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

# Every benchmark, in the order of docs/benchmarks.md (about an hour on 2 cores; results in benchmarks/results/).
bench: setup
	$(BIN)/python benchmarks/kafka_hop.py
	$(BIN)/python benchmarks/asr_bench.py
	$(BIN)/python benchmarks/retrieval_bench.py
	$(BIN)/python benchmarks/assist_latency.py
	$(BIN)/python benchmarks/pipeline_transcripts.py
	$(BIN)/python benchmarks/pipeline_audio.py
	$(BIN)/python benchmarks/soak.py

format:
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .models test-artifacts .pytest_cache .ruff_cache .mypy_cache
