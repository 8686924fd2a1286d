"""Tests that need a component (a binary, a service) call ``require_component``."""

from __future__ import annotations

import os

import pytest


def require_component(name: str, available: bool, how_to_get_it: str) -> None:
    """Skip a test whose component is missing, except in CI (MLCHAOS_REQUIRE_COMPONENTS=1), where it fails."""
    if available:
        return
    message = f"{name} is not available: {how_to_get_it}"
    if os.environ.get("MLCHAOS_REQUIRE_COMPONENTS") == "1":
        pytest.fail(f"{message} (MLCHAOS_REQUIRE_COMPONENTS=1: missing components fail, never skip)")
    pytest.skip(message)


def require_monitoring() -> None:
    """The Prometheus, Alertmanager and blackbox exporter binaries (and promtool) must be installed."""
    from mlchaos.sandbox import monitoring_stack

    missing = monitoring_stack.missing_binaries()
    require_component("monitoring binaries", not missing,
                      monitoring_stack.install_hint(missing or [("", "prometheus")]))


def require_docker() -> None:
    """A Docker engine must answer through the docker SDK (DOCKER_HOST honoured)."""
    reason = ""
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:  # any failure means: no usable engine
        reason = f"{type(exc).__name__}: {exc}"
    require_component("Docker engine", not reason,
                      f"start dockerd (see shared/notes/environment.md) and check DOCKER_HOST ({reason[:200]})")


def require_stack_images() -> None:
    """The compose stack's images (built offline by scripts/docker-images.sh) must exist; implies require_docker."""
    import docker

    require_docker()
    client = docker.from_env(timeout=10)
    names = ("model-server", "fault-proxy", "prometheus", "alertmanager", "blackbox-exporter")
    missing = []
    for name in names:
        try:
            client.images.get(f"mlchaos/{name}:latest")
        except docker.errors.ImageNotFound:
            missing.append(f"mlchaos/{name}:latest")
    client.close()
    require_component("compose stack images", not missing,
                      f"missing {', '.join(missing)}: run scripts/docker-images.sh")
