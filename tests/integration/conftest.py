"""Fixtures of the integration tests: a running 3-replica sandbox, the sandbox with its monitoring, the compose stack.

Every test here is marked ``integration`` by tests/conftest.py (from the folder). Each fixture starts real
processes (or containers) once per test module and takes them down after it; a missing binary or engine
goes through ``require_component`` (skip on a developer machine, failure in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from mlchaos.lib.proxy_token import TOKEN_ENV
from mlchaos.sandbox.manager import Sandbox
from tests.support.settling import wait_until_quiet

if TYPE_CHECKING:
    from mlchaos.containers.stack import StackEndpoints


@pytest.fixture(scope="module")
def module_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Three iris replicas shared by one test module (state dir exported in the env)."""
    path = tmp_path_factory.mktemp("sandbox-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCHAOS_STATE_DIR", str(path))
        sandbox = Sandbox(path)
        try:
            sandbox.up(replicas=3, timeout=60, monitoring=False)
            yield sandbox
        finally:
            sandbox.down()


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Three replicas with Prometheus, Alertmanager and the blackbox exporter, one per test module."""
    from tests.support.components import require_monitoring

    require_monitoring()
    sandbox = Sandbox(tmp_path_factory.mktemp("monitored-state"))
    try:
        sandbox.up(replicas=3, timeout=90)
        wait_until_quiet(sandbox.monitoring().endpoints().prometheus_url)  # start-up alerts resolve by themselves
        yield sandbox
    finally:
        sandbox.down()


@pytest.fixture
def sandbox(module_sandbox: Sandbox) -> Sandbox:
    """The module's sandbox, healed (dead replicas restarted, paused ones resumed) first."""
    module_sandbox.up(replicas=3, timeout=60, monitoring=False)
    return module_sandbox


@pytest.fixture(scope="module")
def compose_stack() -> Iterator[StackEndpoints]:
    """The Docker reference stack (docker-compose.yml), fresh for one test module and taken down after."""
    from mlchaos.containers import stack
    from tests.support.components import require_stack_images

    require_stack_images()
    with pytest.MonkeyPatch.context() as mp:
        # the token the stack's proxy requires, for this module's drivers and the commands its tests start;
        # gone after the module, so it never reaches a later module on the same worker
        mp.setenv(TOKEN_ENV, stack.proxy_token())
        stack.stack_down()  # leftovers of an interrupted run
        try:
            endpoints = stack.stack_up(timeout=90)
            wait_until_quiet(endpoints.prometheus_url)  # a fresh stack on a loaded host may alert for seconds
            yield endpoints
        finally:
            stack.stack_down()
