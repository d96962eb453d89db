# The two commands: `make demo` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# DVC lives in its own environment (requirements-dvc.lock says why); .venv/bin/dvc links to it.
DVC_VENV := .venv-dvc
DVC_STAMP := $(DVC_VENV)/.installed
# GPU machines: `make KEEP_TORCH=1 demo|test` keeps the CUDA build of torch (and torchvision)
# already installed in $(PYTHON): the environment sees that Python's packages, and the lock's
# CPU torch pin is left out of its constraints (pyproject's range admits 2.11 and later).
ifeq ($(KEEP_TORCH),1)
VENV_FLAGS := --system-site-packages
CONSTRAINTS := $(VENV)/constraints.txt
else
CONSTRAINTS := requirements.lock
endif
# uv installs the locked versions in seconds where pip took four minutes (CI builds the
# environment on every run). It reads no pip.conf, so it gets pip's find-links: where a machine
# keeps wheels on disk (here torch's CPU build). --compile-bytecode, as pip does: with
# PYTHONDONTWRITEBYTECODE set (CI sets it) every process would compile every module it imports.
# With KEEP_TORCH, pip: it sees the torch that --system-site-packages brings in.
UV_VERSION := 0.13.9
FIND_LINKS := $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
ifeq ($(KEEP_TORCH),1)
INSTALL = $(1)/bin/pip install --quiet --disable-pip-version-check
else
INSTALL = $(BIN)/uv pip install --quiet --compile-bytecode --python $(1)/bin/python $(addprefix --find-links ,$(FIND_LINKS))
endif
export DAGSTER_HOME := $(CURDIR)/.dagster_home
UI_PORT ?= 3000  # `make ui`: the Dagster UI on http://127.0.0.1:$(UI_PORT)

.PHONY: env test-env demo check test ui validate bench clean

# What running needs. --clear: a changed lock gives exactly the locked environment, nothing left
# over from the last one.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv --clear $(VENV_FLAGS) $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	grep -v '^torch==' requirements.lock > $(VENV)/constraints.txt
	$(call INSTALL,$(VENV)) -c $(CONSTRAINTS) -e .
	$(BIN)/python -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPU visible:', torch.cuda.is_available())"
	touch $(STAMP)

# The test tools on top (pytest, moto's S3 server, PostgreSQL, Playwright, ruff): `make test` only.
$(DEV_STAMP): $(STAMP)
	$(call INSTALL,$(VENV)) -c $(CONSTRAINTS) -e '.[dev]'
	touch $(DEV_STAMP)

# uv from .venv installs it (order-only: a new .venv does not rebuild this one).
$(DVC_STAMP): requirements-dvc.lock | $(STAMP)
	$(PYTHON) -m venv --clear $(DVC_VENV)
	$(call INSTALL,$(DVC_VENV)) -r requirements-dvc.lock
	touch $(DVC_STAMP)

# Linked on every run, once both environments exist: also replaces a dvc that an older .venv installed itself.
env: $(STAMP) $(DVC_STAMP)
	ln -sf ../../$(DVC_VENV)/bin/dvc $(BIN)/dvc

$(DAGSTER_HOME)/dagster.yaml: deploy/local/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp $< $@

demo: env $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/platform-assets demo

test-env: env $(DEV_STAMP)

# The inner loop: lint, format and the fast tests (pyproject's addopts leave out the slow ones:
# real servers, the daemon, Chromium, the whole graph), two workers.
check: test-env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n 2 --dist loadfile

# Lint and format are checked first: a red CI says so before the suite runs. Every test, slow
# ones included. Three workers on CI's two cores: the longest tests (daemon, `dagster dev`,
# Chromium, sensors) mostly wait. Whole modules per worker (modules that share a fixture
# together: conftest.py's SHARED), in collection order (conftest.py puts the longest first).
test: test-env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "slow or not slow" -n 3 --dist loadfile --no-loadscope-reorder --durations=25

validate: env
	$(BIN)/dagster definitions validate -w workspace.yaml

ui: env $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(UI_PORT)

# The events benchmark as docs/BENCHMARKS.md measured it (3 M events; the script's default is 10 M).
bench: test-env
	$(BIN)/python -m benchmarks.events_transform --events 3000000 --repeats 3

# The data registry (data/) and its DVC remote (.dvc-remote/) are kept: they are the data's history.
clean:
	rm -rf .demo $(DAGSTER_HOME)
