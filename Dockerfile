# dvc-assistant: one image for every role of the production profile (README "Deployment").
# The role is the command, set by docker-compose.yml or deploy/k8s:
#   gateway        python -m bot gateway                                  (the default)
#   action server  python -m rasa_sdk --actions actions --port 5055
#   Rasa replica   python -m bot.rasa_runtime run --enable-api --model /app/models/... \
#                    --endpoints /app/deploy/endpoints.production.yml --credentials \
#                    /app/credentials.yml --port 5005 --interface 0.0.0.0
#   migrations     python -m bot db upgrade --catalog                     (once, before a release)
# Rasa replicas must be started through bot.rasa_runtime (it patches Rasa, and hands Rasa's
# --auth-token the RASA_TOKEN of the environment: it refuses --enable-api without one), never
# `rasa run`.
#
# No model is baked in: models live in /app/models, a volume (docker-compose.yml) or a
# persistent volume claim (deploy/k8s). No secret is baked in: configuration comes from the
# environment at run time. No HEALTHCHECK: compose and Kubernetes probe the services
# themselves (gateway GET /healthz, Rasa GET /status?token=…, action server GET /health).
#
# uv.lock is resolved for linux/x86_64 only (pyproject.toml [tool.uv] environments): build
# with --platform linux/amd64 on other machines.

ARG PYTHON_IMAGE=python:3.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# UV_PYTHON: the image's interpreter, whatever patch release .python-version names.
ENV UV_PYTHON=/usr/local/bin/python3.10 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The uv release the Makefile uses (.tools/bin/uv), from PyPI.
RUN pip install uv==0.13.9
WORKDIR /app
# Dependencies first, from the lock file alone: this layer is rebuilt only when the lock
# changes, not on every code change.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
COPY . .
# The project itself, installed editable: the code stays in /app with its data/, domain.yml,
# config.yml and credentials.yml beside it (bot.config.ROOT).
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
    && /app/.venv/bin/python -m compileall -q bot actions

FROM ${PYTHON_IMAGE}
ENV PATH=/app/.venv/bin:$PATH \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    HOME=/home/app \
    MODELS_DIR=/app/models \
    BOT_HOST=0.0.0.0 \
    BOT_PORT=8080 \
    SANIC_HOST=0.0.0.0 \
    RASA_TELEMETRY_ENABLED=false \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONWARNINGS=ignore::DeprecationWarning
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
       --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /app /app
# The code stays root-owned (read-only for the app); what the services write is the app's:
# models (registry evaluations, trainings), data/ (the console's NLU corrections and fee
# overrides, the lexicon a training writes), var/ and Rasa's training cache .rasa/.
RUN mkdir -p /app/models /app/var /app/.rasa \
    && chown -R app:app /app/models /app/var /app/.rasa /app/data
USER 10001:10001
EXPOSE 8080 5005 5055
CMD ["python", "-m", "bot", "gateway"]
