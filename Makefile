# Two entry points that do all the set-up on a fresh machine:
#   make demo   install crmnet (runtime only) into .venv, then run the main job on the built-in default
#   make test   install with the dev extras, then run the fast test suite (slow tests: make test-all;
#               the fast set on PyTorch's portable kernels: make test-default-kernels)
#   make docs   the API reference from the docstrings (pdoc) into site/, warnings as errors
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo
TORCH_VERSION ?= 2.13.0
# PyTorch's CPU wheel index: a plain `pip install torch` on Linux pulls the CUDA build and several GB of
# NVIDIA packages. For a GPU machine: make TORCH_INDEX=https://download.pytorch.org/whl/cu128 ...
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test test-all test-default-kernels lint docs install install-dev

# The index is probed once (10 s) so that an unreachable one costs one clear line, not pip's retries for
# every package.
$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	@if $(PY) -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" \
			"$(TORCH_INDEX)/torch/" >/dev/null 2>&1; then \
		echo "$(PY) -m pip install -q torch==$(TORCH_VERSION) --extra-index-url $(TORCH_INDEX)"; \
		$(PY) -m pip install -q "torch==$(TORCH_VERSION)" --extra-index-url "$(TORCH_INDEX)"; \
	else \
		echo "install: $(TORCH_INDEX) cannot be reached; torch $(TORCH_VERSION) comes from pip's default index" \
			"instead (on Linux with internet that is the CUDA build; set TORCH_INDEX to a reachable index)"; \
		$(PY) -m pip install -q "torch==$(TORCH_VERSION)"; \
	fi
	$(PY) -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda or 'none (CPU build)')"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(VENV)/bin/crmnet quickstart --out $(DEMO_OUT) --overwrite

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m "not slow"

test-all: $(VENV)/.installed-dev
	$(PY) -m pytest -q

# The fast set on PyTorch's portable kernels: a test that holds only on this CPU's AVX2/AVX-512 rounding
# fails here instead of on a contributor's machine.
test-default-kernels: $(VENV)/.installed-dev
	ATEN_CPU_CAPABILITY=default $(PY) -m pytest -q -m "not slow"

docs: $(VENV)/.installed-dev
	$(PY) docs/api.py site

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
