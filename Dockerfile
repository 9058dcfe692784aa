# One image for the inferwatch agent and the MCP server; compose.yaml picks the program per
# service with `command:` (inferwatch-agent by default, or inferwatch-mcp).
#
#   docker build -t inferwatch:0.1.0 .
#
# Layers, least to most often changed: OS packages (Chromium) -> Python dependencies (from
# pyproject.toml only) -> our code. A code change rebuilds only the last, small layers.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build stage: a virtual environment with the dependencies, then the project ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, read from pyproject.toml alone: this layer is reused until they change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install -r requirements.txt "setuptools>=77"

# Then the code (no dependency resolution, no network).
COPY README.md ./
COPY agent ./agent
COPY mcp_server ./mcp_server
RUN pip install --no-deps --no-build-isolation . \
    && pip uninstall -y setuptools

# --- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

# Chromium for the MCP server's Grafana screenshots (Debian's build; Playwright drives it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-liberation fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/inferwatch inferwatch \
    && mkdir -p /app /var/cache/inferwatch /var/lib/inferwatch/reports \
    && chown inferwatch:inferwatch /app /var/cache/inferwatch /var/lib/inferwatch /var/lib/inferwatch/reports

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CHROMIUM_PATH=/usr/bin/chromium \
    INFERWATCH_CACHE_DIR=/var/cache/inferwatch \
    INFERWATCH_REPORT_DIR=/var/lib/inferwatch/reports

# Settings are read from the environment; the working directory holds no .env file.
WORKDIR /app
USER inferwatch:inferwatch
EXPOSE 9470 8765

# The agent's liveness (compose.yaml gives the MCP server its own check).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9470/healthz', timeout=4)"]

CMD ["inferwatch-agent"]
