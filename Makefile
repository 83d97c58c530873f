# `make run` starts the server on its embedded default; `make test` runs lint, types and tests.
# Both create .venv (pinned dependencies from pyproject.toml) when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench prompts clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/enx-voice serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/parser.py --json bench/out/parser.json

# Regenerate ivr_prompts/ from ivr_prompts/prompts.toml (needs Debian's espeak-ng and sox; the
# WAVs are committed, so nothing else needs them).
prompts: $(STAMP)
	$(BIN)/python ivr_prompts/generate.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
