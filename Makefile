# The two commands: `make demo` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: env demo test ui validate bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: deploy/local/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp $< $@

demo: env $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/platform-assets demo

test: env
	$(BIN)/pytest -n 2 --dist loadfile

validate: env
	$(BIN)/dagster definitions validate -w workspace.yaml

ui: env $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: env
	$(BIN)/python benchmarks/events_transform.py

clean:
	rm -rf .demo $(DAGSTER_HOME)
