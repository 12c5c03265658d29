# Two entry points that do all the set-up on a fresh machine:
#   make demo   install into .venv, then run the main job on the built-in default (no download)
#   make test   install into .venv (with the dev extras), then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo

.PHONY: demo test install

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: an unpinned torch would pull the CUDA build and several GB with it.
	$(PY) -m pip install -q "torch==$${TORCH_VERSION:-2.13.0}"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/crmnet quickstart --out $(DEMO_OUT) --overwrite

test: $(VENV)/.installed
	$(PY) -m pytest -q
