"""The guardian's decision, in process: the run registry of this test's own state dir."""

from __future__ import annotations

import pytest

from mlchaos.safety import guardian, run_registry

pytestmark = pytest.mark.usefixtures("isolated_state")


def test_a_live_runner_without_a_heartbeat_file_is_recovered_and_the_log_says_why() -> None:
    """Its heartbeat file was deleted under it: the guardian must not crash formatting a missing age."""
    entry = run_registry.register(None, "a run", "experiment.yaml")
    entry.heartbeat_file.unlink()
    assert guardian.watch(entry.registry_file, timeout=60) == 0
    assert "guardian: no heartbeat file; recovering None" in guardian.log_path(entry).read_text()
    assert not entry.registry_file.exists()


def test_a_run_that_ends_is_left_alone() -> None:
    entry = run_registry.register(None, "a run", "experiment.yaml")
    run_registry.unregister(entry)
    assert guardian.watch(entry.registry_file, timeout=60) == 0
    assert not guardian.log_path(entry).exists()
