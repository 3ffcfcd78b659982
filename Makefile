# Two entry points for a fresh machine (see README): `make demo` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint format bench bench-gpu clean

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

# On the first machine with a GPU: ASR capacity, encoder throughput, retrieval and the pipelines on
# CUDA in one run (benchmarks/gpu_suite.py; exit 2 without a usable GPU). Extra arguments:
# make bench-gpu GPU_ARGS="--asr-model base --asr-model /models/whisper-large-v3"
bench-gpu: setup
	$(BIN)/python benchmarks/gpu_suite.py $(GPU_ARGS)

format:
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .models test-artifacts .pytest_cache .ruff_cache .mypy_cache
