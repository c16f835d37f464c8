# The few commands people type. `make run` and `make test` set everything up on a fresh machine.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# NOTE: pinned so pip takes the CPU wheel on this machine; unpinned torch pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test lint bench eval install install-test browser clean

$(VENV)/.runtime: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e . $(TORCH)
	touch $@

# NOTE: llama.cpp is built for a portable CPU: a native build uses instructions (AMX) this VM's CPU
# advertises but forbids, and crashes with "Illegal instruction". No cache, so no native wheel is reused.
$(VENV)/.test: $(VENV)/.runtime
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install --quiet --no-cache-dir 'llama-cpp-python[server]==0.3.36'
	$(PIP) install --quiet -e '.[test]' $(TORCH)
	touch $@

install: $(VENV)/.runtime
install-test: $(VENV)/.test

browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

run: install
	$(VENV)/bin/rag ingest
	$(VENV)/bin/rag app --port $${PORT:-8501}

test: install-test browser
	$(VENV)/bin/pytest

lint: install-test
	$(VENV)/bin/ruff check rag tests app.py scripts
	$(VENV)/bin/ruff format --check rag tests app.py scripts
	$(VENV)/bin/mypy rag

bench: install
	$(PY) scripts/bench.py

eval: install
	$(VENV)/bin/rag eval eval/questions_dev.jsonl

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
