"""Docker probes: how many selected containers run, whether all run / are healthy, restarts, health status.

Probes take the same selector as the faults (``labels``, ``name_pattern``, ``project``) and
look at containers in every state; a selector that matches no container at all is
TargetNotFound (an empty selector is an error). Containers labelled ``mlchaos.skip=true``
are left out here too, so a probe counts exactly the containers a fault could hit.
"""

from __future__ import annotations

from typing import Any

from drivers.docker.client import client, docker_errors
from drivers.docker.client import preflight as preflight  # the validation hook (not an activity)
from drivers.docker.selection import eligible, parse_selector
from drivers.docker.targets import list_candidates
from mlchaos.driver_kit import TargetNotFound

Labels = dict[str, Any] | list[str] | None


def running_count(labels: Labels = None, name_pattern: str | None = None, project: str | None = None) -> int:
    """Number of selected containers that are running (not paused, not restarting)."""
    return sum(1 for c in _selected(labels, name_pattern, project) if c.state == "running")


def containers_running(labels: Labels = None, name_pattern: str | None = None, project: str | None = None) -> bool:
    """True when every selected container is running."""
    return all(c.state == "running" for c in _selected(labels, name_pattern, project))


def containers_healthy(labels: Labels = None, name_pattern: str | None = None, project: str | None = None) -> bool:
    """True when every selected container is healthy (Docker healthcheck), or running when it has none."""
    api = client().api
    for candidate in _selected(labels, name_pattern, project, api):
        with docker_errors(f"inspect container {candidate.name}"):
            state = api.inspect_container(candidate.id)["State"]
        health = (state.get("Health") or {}).get("Status")
        if not state.get("Running") or state.get("Paused") or (health is not None and health != "healthy"):
            return False
    return True


def restart_count(name_or_id: str) -> int:
    """How many times the engine restarted the container (its restart policy at work)."""
    return int(_inspect(name_or_id).get("RestartCount", 0))


def health_status(name_or_id: str) -> str:
    """The container's health: healthy, unhealthy or starting; ``none`` without a healthcheck."""
    return str((_inspect(name_or_id)["State"].get("Health") or {}).get("Status") or "none")


def _selected(labels: Labels, name_pattern: str | None, project: str | None, api: Any = None) -> list[Any]:
    selector = parse_selector(labels, name_pattern, project)
    found = eligible(list_candidates(api or client().api, selector), selector)
    if not found:
        raise TargetNotFound(f"no container matches {selector.describe()}")
    return found


def _inspect(name_or_id: str) -> dict[str, Any]:
    with docker_errors(f"inspect container {name_or_id}"):
        return client().api.inspect_container(name_or_id)
