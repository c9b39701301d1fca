# Two entry points (see README): `make demo` runs the main job, `make test` the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pond-installed
CORE_STAMP := $(VENV)/.pond-core-installed
PROVIDERS := providers/airflow providers/prefect
EDITABLES := -e ".[dev]" -e "providers/airflow[openlineage]" -e providers/prefect
PIP := $(BIN)/python -m pip install --disable-pip-version-check --progress-bar on -c constraints.txt

.PHONY: install install-core demo test bench lock clean

install: $(STAMP)

install-core: $(CORE_STAMP)

# The demo needs pond_core alone (DuckDB, Arrow, SQLAlchemy, rich): no orchestrators, no test tools.
$(CORE_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	@echo "installing pond_core and what it needs (the first time: about a minute) ..."
	$(PIP) -e .
	touch $(CORE_STAMP)

# Everything: pond_core with the test tools, both providers (Airflow, Prefect: ~230 packages, minutes).
$(STAMP): $(CORE_STAMP) $(addsuffix /pyproject.toml,$(PROVIDERS))
	@echo "installing the providers (Airflow, Prefect) and the test tools (the first time: several minutes) ..."
	$(PIP) $(EDITABLES)
	touch $(STAMP)

demo: install-core
	$(BIN)/python -m pond_core.demo

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/tpch.py

# Re-resolve and pin every dependency after changing one in a pyproject.toml.
lock: install
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^pond' > constraints.tmp
	{ sed -n '1,2p' constraints.txt; cat constraints.tmp; } > constraints.new && rm constraints.tmp && mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache
