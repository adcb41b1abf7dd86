# Everything a newcomer runs. `make test` on a fresh clone installs what it needs, lints, then runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install lint format test run demo bench up down status clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check gateway launchers tests bench vlm_client
	$(BIN)/ruff format --check gateway launchers tests bench vlm_client
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format gateway launchers tests bench vlm_client
	$(BIN)/ruff check --fix gateway launchers tests bench vlm_client

test: lint
	$(BIN)/pytest

# The gateway with the upstreams from model_configs/ (override with GATEWAY_UPSTREAMS, GATEWAY_MODELS).
run: install
	$(BIN)/python -m gateway

# SIMULATED: the gateway in front of vLLM stand-ins for every servable model; no GPU, canned answers.
demo: install
	$(BIN)/python -m launchers.demo

# A real GPU: plan the card, start the vLLM servers one after another, then the gateway (needs `pip install '.[serve]'`).
# make up [PROFILE=16gb|12gb] [GPU_MEM=16] [MODELS="dots-ocr qwen3-vl-2b"]
up: install
	$(BIN)/python -m launchers up $(MODELS) $(if $(PROFILE),--profile $(PROFILE)) $(if $(GPU_MEM),--gpu-mem $(GPU_MEM))

down: install
	$(BIN)/python -m launchers down

status: install
	$(BIN)/python -m launchers status

# Direct-to-upstream vs through-the-gateway, side by side; needs wrk (apt-get install wrk).
bench: install
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.document_cpu
	$(BIN)/python -m bench.document_throughput
	$(BIN)/python -m bench.stream_load
	$(BIN)/python -m bench.memory_bombs

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
