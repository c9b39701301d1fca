# Two entry points (see README): `make demo` runs the main job, `make test` the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pond-installed
PROVIDERS := providers/airflow providers/prefect
EDITABLES := -e ".[dev]" -e "providers/airflow[openlineage]" -e providers/prefect

.PHONY: install demo test bench lock clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(addsuffix /pyproject.toml,$(PROVIDERS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt $(EDITABLES)
	touch $(STAMP)

demo: install
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
