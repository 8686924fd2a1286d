"""Validation-time check that a driver's third-party client library is installed (``make demo`` installs mlchaos
without the Docker and Kubernetes clients: the Makefile's ``DEMO_WITHOUT``)."""

from __future__ import annotations

from importlib.util import find_spec


def missing(module: str, distribution: str, driver: str) -> list[str]:
    """A problem naming the package to install when ``module`` cannot be imported, else none."""
    if find_spec(module) is not None:
        return []
    return [f"{driver} needs the Python package {distribution!r}, which is not installed: `pip install "
            f"{distribution}` (in this repository `make install`; `make demo` installs mlchaos without it)"]
