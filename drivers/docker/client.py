"""The Docker SDK client and the one place where its errors become mlchaos errors.

``docker`` is imported lazily (inside :func:`client` and :func:`translate`), so importing
this module costs nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from drivers._common import packages
from mlchaos.driver_kit import DriverError, TargetNotFound

API_TIMEOUT = 30.0
POOL_SIZE = 32  # connections to the engine: one per concurrent worker
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def environment_id() -> str:
    """The environment id of changes made through this engine: ``docker:<DOCKER_HOST>``."""
    return "docker:" + (os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST)


def client(timeout: float = API_TIMEOUT) -> Any:
    """A ``docker.DockerClient`` from the environment (DOCKER_HOST honoured) with a request timeout."""
    with docker_errors("connect to the Docker engine"):
        import docker

        return docker.from_env(timeout=int(max(timeout, 1)), max_pool_size=POOL_SIZE)


def api(timeout: float = API_TIMEOUT) -> Any:
    """The low-level ``docker.APIClient`` of :func:`client`."""
    return client(timeout).api


def call(method: Any, container_id: str, what: str, **kwargs: Any) -> Any:
    """``method(container_id, **kwargs)`` of the APIClient, its errors translated (``what`` names the call)."""
    with docker_errors(what):
        return method(container_id, **kwargs)


@contextlib.contextmanager
def docker_errors(what: str) -> Iterator[None]:
    """Translate docker / requests errors raised inside the block into DriverError or TargetNotFound."""
    try:
        yield
    except DriverError:
        raise
    except Exception as exc:
        raise translate(exc, what) from exc


def translate(exc: BaseException, what: str) -> DriverError:
    """The mlchaos error for a Docker SDK (or transport) exception, with a one-line message."""
    import docker.errors
    import requests.exceptions

    if isinstance(exc, docker.errors.NotFound):
        return TargetNotFound(f"{what}: not found ({_explanation(exc)})")
    if isinstance(exc, docker.errors.APIError):
        return DriverError(f"{what}: the Docker engine refused ({_explanation(exc)})")
    if isinstance(exc, docker.errors.DockerException):
        return DriverError(f"{what}: {_one_line(exc)}")
    if isinstance(exc, requests.exceptions.Timeout):
        return DriverError(f"{what}: the Docker engine did not answer in time")
    if isinstance(exc, requests.exceptions.RequestException):
        return DriverError(f"{what}: cannot talk to the Docker engine ({_one_line(exc)})")
    return DriverError(f"{what}: {type(exc).__name__}: {_one_line(exc)}")


def _explanation(exc: Any) -> str:
    return _one_line(getattr(exc, "explanation", None) or exc)


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def preflight(func: str, arguments: dict[str, Any]) -> list[str]:
    """Validation hook of the modules that take it from here: the Docker SDK for Python is installed."""
    return packages.missing("docker", "docker", "drivers.docker")
