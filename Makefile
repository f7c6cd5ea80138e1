# churn_pipeline: `make run` sets up and runs the whole graph on the embedded SQLite default;
# `make test` runs the tests. Both create the virtualenv on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DATE ?= $(shell date -u +%F)
CUSTOMERS ?= 20000
SEED ?= 7
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home

.PHONY: setup run test ui bench-io bench-scale clean

$(BIN)/churn-pipeline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/churn-pipeline

run: setup
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/churn-pipeline generate --customers $(CUSTOMERS) --snapshot-date $(DATE) --seed $(SEED)
	$(BIN)/churn-pipeline materialize --date $(DATE)

test: setup
	$(BIN)/pytest -q

ui: setup
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

bench-io: setup
	$(BIN)/python bench/bench_io_write.py

bench-scale: setup
	$(BIN)/python bench/bench_pipeline.py --customers 100000 1000000

clean:
	rm -rf data/churn.db* data/models data/dagster_home data/landing/customers_*.csv
