# Everything a newcomer runs. `make test` on a fresh clone installs what it needs, lints, then runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install lint format test run demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check gateway launchers tests bench
	$(BIN)/ruff format --check gateway launchers tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff format gateway launchers tests bench
	$(BIN)/ruff check --fix gateway launchers tests bench

test: lint
	$(BIN)/pytest

# The gateway with the upstreams from model_configs/ (override with GATEWAY_UPSTREAMS, GATEWAY_MODELS).
run: install
	$(BIN)/python -m gateway

# SIMULATED: the gateway in front of vLLM stand-ins for every servable model; no GPU, canned answers.
demo: install
	$(BIN)/python -m launchers.demo

# Direct-to-upstream vs through-the-gateway, side by side; needs wrk (apt-get install wrk).
bench: install
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.document_cpu

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
