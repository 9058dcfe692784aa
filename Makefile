# The README's two commands are `make demo` and `make test`; the rest are helpers they use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LITELLM_VENV := .venv-litellm
PYTEST_ARGS ?=

.PHONY: demo test lint unit bench soak audit system-deps venv litellm-venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# The real LiteLLM proxy for the integration tests, in its own venv (~750 MB, ~1 minute).
$(LITELLM_VENV)/.installed: tests/litellm-requirements.txt
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install -q -r tests/litellm-requirements.txt
	touch $@

litellm-venv: $(LITELLM_VENV)/.installed

system-deps:
	scripts/install-system-deps.sh

demo: $(VENV)/.installed
	scripts/demo.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	scripts/audit.sh $(VENV)

unit: $(VENV)/.installed
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

test: system-deps $(VENV)/.installed $(LITELLM_VENV)/.installed lint
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) -m bench

# The demo stack under random faults while a real Prometheus scrapes it (bench/SOAK.md).
SOAK_MINUTES ?= 10
soak: $(VENV)/.installed
	$(PY) -m bench.soak --minutes $(SOAK_MINUTES)

# Known vulnerabilities in the installed dependencies (also in `make lint`, which skips it with a
# message where PyPI's advisory API is out of reach; here that is an error).
audit: $(VENV)/.installed
	AUDIT_REQUIRED=1 scripts/audit.sh $(VENV)

clean:
	rm -rf $(VENV) $(LITELLM_VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
