# Two commands do all the set-up on a fresh machine:
#   make demo   installs mlchaos into .venv, starts the sandbox, runs the bundled experiment
#   make test   installs mlchaos into .venv and runs the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXPERIMENTS ?= experiments/kill-one-replica.yaml

.PHONY: install demo test test-unit test-integration lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(BIN)/mlchaos sandbox up
	@rc=0; for e in $(EXPERIMENTS); do \
	  $(BIN)/mlchaos run $$e --journal journal-$$(basename $$e .yaml).json || rc=$$?; \
	done; \
	$(BIN)/mlchaos sandbox down; \
	echo "demo finished: exit $$rc"; exit $$rc

test: install lint
	$(BIN)/pytest -q

test-unit: install
	$(BIN)/pytest -q -m "not integration"

test-integration: install
	$(BIN)/pytest -q -m integration

lint: install
	$(BIN)/ruff check mlchaos drivers tests benchmarks

bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/startup_and_overhead.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache journal*.json
