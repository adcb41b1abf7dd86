# The gateway's image: `docker build -t vlm-gateway .` (compose/<card>/compose.yaml builds it for you).
# The vLLM servers run the official vllm/vllm-openai image; this one never imports vllm and needs no GPU.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package alone first, so editing a model config or prompt does not reinstall the dependencies.
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY launchers ./launchers
RUN pip install . && rm -rf build ./*.egg-info

COPY model_configs ./model_configs
COPY prompts ./prompts

# Installed into site-packages, the package cannot find the data beside its source: say where it is.
ENV GATEWAY_MODEL_CONFIGS_DIR=/app/model_configs \
    GATEWAY_PROMPTS_DIR=/app/prompts \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway \
    && mkdir /data && chown gateway /data
# Jobs, their inputs and results, and the result cache: mount a volume here so they outlive the container.
ENV GATEWAY_STORE_PATH=/data/gateway-store.sqlite3
USER gateway

EXPOSE 8000
# No curl in the slim image; urlopen exits non-zero on a refused connection or any non-2xx answer.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["python", "-m", "gateway"]
