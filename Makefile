# The README's two commands: `make demo` and `make test`. Each sets up .venv/ first (once).
# PYTHON: a Python 3.10 or 3.11 interpreter (Ray 2.6.3, pinned by RecBole 1.2.1, has no 3.12 wheels).
# TORCH: the torch build to install first; the default matches the torchvision that timm needs.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.14.1 torchvision==0.29.1
NP2_VENV ?= .venv-np2
NP2_TORCH ?= torch==2.13.0
# recbole's own dependencies except Ray: what a machine without Ray installs (see README)
RECBOLE_NO_RAY_DEPS = colorlog colorama texttable tabulate tqdm pyyaml tensorboard thop plotly psutil scikit-learn

.PHONY: setup demo test test-main test-numpy2

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 11) else "recbole_mm installs on Python 3.10 or 3.11 (Ray 2.6.3 has no wheels for %d.%d): run make PYTHON=python3.11 ..." % v)'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(TORCH)
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $@

demo: setup
	$(VENV)/bin/recbole-mm demo

test: test-main test-numpy2

test-main: setup
	$(VENV)/bin/python -m pytest -q tests

# The core without Ray, on numpy 2 and pandas 3 (how it runs on a machine whose Python has no Ray).
$(NP2_VENV)/.installed: setup.py
	$(PYTHON) -m venv $(NP2_VENV)
	$(NP2_VENV)/bin/pip install --quiet $(NP2_TORCH) "numpy>=2" "pandas>=3,<4" scipy pytest setuptools faiss-cpu $(RECBOLE_NO_RAY_DEPS)
	$(NP2_VENV)/bin/pip install --quiet --no-deps recbole==1.2.1
	$(NP2_VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

test-numpy2: $(NP2_VENV)/.installed
	$(NP2_VENV)/bin/python -c 'import importlib.util, numpy, pandas; assert importlib.util.find_spec("ray") is None; assert numpy.__version__ >= "2" and pandas.__version__ >= "3"'
	$(NP2_VENV)/bin/python -m pytest -q tests/test_compat.py tests/test_general_models.py
