# The whole set-up: `make demo` and `make test`. Both create or reuse .venv and install
# what the project needs; re-running them installs nothing new.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.otatui-installed

.DEFAULT_GOAL := help
.PHONY: help venv test lint check unit demo screenshots bench clean

help:
	@echo "make demo         open the demo (local connector + simulated fleet + TUI)"
	@echo "make test         lint, type-check, layer contracts and the whole test suite"
	@echo "make screenshots  regenerate screenshots/*.svg from the app"
	@echo "make bench        run the benchmarks (not part of make test)"

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python >= 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project's metadata changed.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check otatui tests
	$(VENV)/bin/ruff format --check otatui tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest -q

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

demo: $(STAMP)
	$(VENV)/bin/otatui demo

screenshots: $(STAMP)
	$(PY) -m otatui.tui.screenshots screenshots

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
