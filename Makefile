# `make train` runs the default job; `make test` runs the test suite. Each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# A CPU build where one is on disk; on a GPU machine pick the CUDA build you need.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: train test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

train: $(VENV)/.installed
	$(PY) pipelines/train.py $(ARGS)

test: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q $(ARGS)

clean:
	rm -rf $(VENV) mlflow.db mlruns ray_results
