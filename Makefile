# Two entry points (see README): `make demo` runs the main job, `make test` the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pond-installed
CORE_STAMP := $(VENV)/.pond-core-installed
PROVIDERS := providers/airflow providers/prefect
EDITABLES := -e ".[ray,dev]" -e "providers/airflow[openlineage]" -e providers/prefect
PIP := $(BIN)/python -m pip install --disable-pip-version-check --progress-bar on -c constraints.txt
# The thin-client venv of the tests (tests/client_venv.py): pond_core without extras and both
# providers, as an orchestrator worker that needs no Ray installs them; Ray must not get in.
CLIENT_VENV  := .venv-client
CLIENT_STAMP := $(CLIENT_VENV)/.pond-client-installed
CLIENT_EDITABLES := -e . -e providers/airflow -e providers/prefect

.PHONY: install install-core demo test bench lock clean

install: $(STAMP) $(CLIENT_STAMP)

install-core: $(CORE_STAMP)

# The demo needs pond_core alone (DuckDB, Arrow, SQLAlchemy, rich): no Ray (it runs in-process),
# no orchestrators, no test tools.
$(CORE_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	@echo "installing pond_core and what it needs (the first time: about a minute) ..."
	$(PIP) -e .
	touch $(CORE_STAMP)

# Everything: pond_core with Ray (and Serve) and the test tools, both providers (Airflow, Prefect:
# ~230 packages, minutes).
$(STAMP): $(CORE_STAMP) $(addsuffix /pyproject.toml,$(PROVIDERS))
	@echo "installing Ray, the providers (Airflow, Prefect) and the test tools (the first time: several minutes) ..."
	$(PIP) $(EDITABLES)
	touch $(STAMP)

# Built anew whenever a dependency changes, so nothing stale (Ray above all) stays in it. uv
# (pinned, from the dev extra) installs the same pinned versions from its cache in about 30 s,
# where pip takes minutes; uv reads no pip.conf, so this resolves against PyPI.
$(CLIENT_STAMP): $(STAMP) pyproject.toml constraints.txt $(addsuffix /pyproject.toml,$(PROVIDERS))
	@echo "building $(CLIENT_VENV): pond_core and both providers without Ray, for the thin-client tests ..."
	rm -rf $(CLIENT_VENV)
	$(PYTHON) -m venv --without-pip $(CLIENT_VENV)
	$(BIN)/uv pip install --quiet --python $(CLIENT_VENV)/bin/python -c constraints.txt $(CLIENT_EDITABLES)
	@if $(CLIENT_VENV)/bin/python -c "import ray" 2>/dev/null; then echo "Ray got into $(CLIENT_VENV): a dependency pulls it in" >&2; exit 1; fi
	touch $(CLIENT_STAMP)

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
	rm -rf $(VENV) $(CLIENT_VENV) .pytest_cache
