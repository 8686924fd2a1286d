# Two commands do all the set-up on a fresh machine:
#   make demo   installs mlchaos into .venv, starts the sandbox, runs the bundled experiment
#   make test   installs mlchaos into .venv and runs the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXPERIMENTS ?= experiments/kill-one-replica.yaml experiments/kill-one-replica-alerts.yaml \
  experiments/latency-one-replica.yaml experiments/telemetry-outage.yaml experiments/expired-certificate.yaml \
  experiments/nan-outputs.yaml experiments/stale-model.yaml experiments/invalid-inputs.yaml \
  experiments/model-not-ready.yaml experiments/pipeline-not-pushing.yaml experiments/failed-rollout.yaml \
  experiments/train-serve-skew.yaml \
  experiments/bad-model-rollback.yaml experiments/canary-bad-model.yaml experiments/feedback-loss.yaml
# (any order holds: tests/integration/test_drill_order.py runs them shuffled on one sandbox)
EXPECTED_TO_FAIL ?= experiments/miswritten-alert-rule.yaml

.PHONY: install install-test demo-install system-packages demo-packages model-servers docker docker-images stack-up stack-down test-docker demo test test-unit test-integration lint bench clean

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# every Debian package the tests use; the demo installs only what it runs (no Chromium, no node_exporter)
system-packages:
	scripts/install-system-packages.sh test

demo-packages:
	scripts/install-system-packages.sh demo

# the real model servers the integration tests run against (MLServer, KServe), each in its own venv
model-servers:
	scripts/install-model-servers.sh

# Docker: the engine (docker.io, started by hand), docker-compose and debootstrap, then the stack's
# images built offline and cached (scripts/docker-images.sh rebuilds only what changed)
docker:
	scripts/install-docker.sh

docker-images: install docker
	scripts/docker-images.sh

stack-up: install docker-images
	$(BIN)/python -m mlchaos.containers.stack up

stack-down: install
	$(BIN)/python -m mlchaos.containers.stack down

test-docker: install-test docker-images
	$(BIN)/pytest -q -m docker

# mlchaos and its runtime dependencies; the test tools on top for the test targets
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# what the demo runs: mlchaos and its runtime dependencies but the Docker and Kubernetes clients (the sandbox is
# local processes; `make install` adds them), nothing when the whole install is there and current
DEMO_WITHOUT = docker kubernetes
demo-install:
	@if [ -e $(VENV)/.installed ] && [ ! pyproject.toml -nt $(VENV)/.installed ]; then :; \
	else $(MAKE) --no-print-directory $(VENV)/.installed-demo; fi

$(VENV)/.installed-demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/python scripts/dependencies.py $(DEMO_WITHOUT) > $(VENV)/demo-requirements.txt
	$(BIN)/pip install --quiet -r $(VENV)/demo-requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# the venv (pip: mostly CPU) and the Debian packages (apt: mostly I/O) install side by side
demo:
	$(MAKE) --no-print-directory -j2 --output-sync=target demo-install demo-packages
	$(BIN)/mlchaos sandbox up
	@rc=0; for e in $(EXPERIMENTS); do \
	  $(BIN)/mlchaos run $$e --journal journal-$$(basename $$e .yaml).json || rc=$$?; \
	done; \
	for e in $(EXPECTED_TO_FAIL); do \
	  echo; echo "== $$e is a self-test and must FAIL (exit 1):"; \
	  $(BIN)/mlchaos run $$e --journal journal-$$(basename $$e .yaml).json; r=$$?; \
	  if [ $$r -eq 1 ]; then echo "== it failed as it must: the drill can tell when monitoring does not fire"; \
	  else echo "== UNEXPECTED: exit $$r"; rc=1; fi; \
	done; \
	$(BIN)/mlchaos sandbox down; \
	echo; echo "demo finished: exit $$rc"; exit $$rc

# Tests (tests/conftest.py has the layout). tests/unit is fast and runs in parallel (pytest-xdist; `auto` is
# two workers per core, see tests/conftest.py). tests/integration starts real processes, binaries and services:
# it runs on INTEGRATION_WORKERS workers, one module at a time per worker (its sandbox starts once) and the
# Docker modules one after another on one worker (they share the compose stack); more workers than that made
# the drills' latency alerts fire for the host's own load on 2 cores. The markers unit/integration come from
# those folders. `make test` runs both, after lint: every test. Bytecode is cached for the test runs even where
# PYTHONDONTWRITEBYTECODE is set: otherwise every pytest worker compiles the package and rewrites every test
# module again (seconds each). The demo too: every `mlchaos run`, its guardian, the traffic generator and a
# restarted replica would compile mlchaos from source again (about 0.5 s a process, more on a loaded host).
TEST_WORKERS ?= auto
INTEGRATION_WORKERS ?= 3
UNIT_ARGS = -n $(TEST_WORKERS) --dist worksteal
INTEGRATION_ARGS = -n $(INTEGRATION_WORKERS) --dist loadscope --durations=15
test test-unit test-integration test-docker demo: export PYTHONDONTWRITEBYTECODE :=

test: install-test system-packages model-servers lint
	@rc=0; \
	$(BIN)/pytest -q $(UNIT_ARGS) tests/unit || rc=$$?; \
	$(BIN)/pytest -q $(INTEGRATION_ARGS) tests/integration || rc=$$?; \
	exit $$rc

test-unit: install-test
	$(BIN)/pytest -q $(UNIT_ARGS) tests/unit

test-integration: install-test system-packages model-servers
	$(BIN)/pytest -q $(INTEGRATION_ARGS) tests/integration

lint: install-test
	$(BIN)/ruff check mlchaos drivers tests benchmarks

# benchmarks (benchmarks/README.md): the CLI against Chaos Toolkit, and the fault proxy against nginx under wrk
# (scripts/install-bench-packages.sh: apt-get install -y nginx-light wrk)
bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	scripts/install-bench-packages.sh
	$(BIN)/python benchmarks/startup_and_overhead.py
	$(BIN)/python benchmarks/proxy_capacity.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache journal*.json
