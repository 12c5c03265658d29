# Two entry points that do all the set-up on a fresh machine:
#   make demo   install crmnet (runtime only) into .venv, then run the main job on the built-in default
#   make test   install with the dev extras, then run the fast test suite (slow tests: make test-all)
#   make docs   the API reference from the docstrings (pdoc) into site/, warnings as errors
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo
TORCH_VERSION ?= 2.13.0
# PyTorch's CPU wheel index: a plain `pip install torch` on Linux pulls the CUDA build and several GB of
# NVIDIA packages. For a GPU machine: make TORCH_INDEX=https://download.pytorch.org/whl/cu128 ...
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test test-all lint docs install install-dev docs

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)" --extra-index-url "$(TORCH_INDEX)"
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

docs: $(VENV)/.installed-dev
	$(PY) docs/api.py site

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
