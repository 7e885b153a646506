# Two commands set everything up on a fresh machine with Python >= 3.11 and make:
#   make run   - install, initialise the embedded SQLite database under ./var/, load the demo, serve it
#   make test  - install with the dev extras and run linters and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := examples/journey.yaml

.PHONY: run test lint typecheck bench docs screenshots clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "campaignkit needs Python >= 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	@$(call quietly,$(BIN)/python -m pip install --upgrade pip)

# Reinstall only when the project's metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing campaignkit with its dev extras into $(VENV)"
	@$(call quietly,$(BIN)/python -m pip install -e '.[dev]')
	@touch $(STAMP)

# Runs a command with its output kept in $(VENV)/install.log, shown only when the command fails.
quietly = $(1) >$(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; echo "failed: $(1)" >&2; exit 1; }

run: $(STAMP)
	$(BIN)/campaignkit init
	$(BIN)/campaignkit campaign create $(DEMO) --update-existing
	$(BIN)/campaignkit campaign launch "Welcome journey" --unless-running
	$(BIN)/campaignkit serve

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy core plugins

test: lint typecheck
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/cli.py
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/audit.py
	$(BIN)/python benchmarks/history.py
	$(BIN)/python benchmarks/console.py
	$(BIN)/python benchmarks/phishing.py

# docs/configuration.md is generated from the settings models; tests/test_config_reference.py fails when it is stale.
docs: $(STAMP)
	$(BIN)/campaignkit config reference --bundled --output docs/configuration.md

# docs/screenshots/ from a throwaway campaignkit in Debian's chromium (apt-get install chromium).
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
