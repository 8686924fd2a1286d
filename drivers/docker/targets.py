"""What every Docker fault shares: validate + select targets, describe them, act on all of them at once,
and find the containers a rollback names (its exact ids, or a selector).

The rollbacks are named ``drivers.docker.actions.<func>`` (:data:`ROLLBACKS`), the facade
journals and watchdog command lines keep. No ``docker`` import here: the client comes from
:mod:`drivers.docker.client` when an action runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from drivers._common import concurrency
from drivers._common.undo import Rollbacks, covers
from drivers.docker import selection
from drivers.docker.client import client, docker_errors, environment_id
from mlchaos.driver_kit import ChangeRecord, DriverError, Target, TargetNotFound, announce

T = TypeVar("T")
SERVICE_LABEL = "mlchaos.service"  # the service a replica belongs to (``model``), like a sandbox replica's
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
ROLLBACKS = Rollbacks("drivers.docker.actions")
GONE = "gone (the container no longer exists)"
# how concurrently/each name containers in a failure, and their threads
_POOL: dict[str, Any] = {"noun": "container(s)", "label": lambda cid: cid[:12], "thread_prefix": "mlchaos-docker"}
Labels = dict[str, Any] | list[str] | None


@dataclass(frozen=True)
class Selection:
    """The validated selector and mode, the seed, the engine client, the chosen containers (inspected)
    and the names of every eligible container they were chosen from."""

    selector: selection.Selector
    mode: selection.Mode
    seed: int
    api: Any  # docker.APIClient
    containers: list[dict[str, Any]]  # ``docker inspect`` of each target
    population: list[str]  # every container that matched (in the wanted states) before count/percentage

    @property
    def ids(self) -> list[str]:
        return [c["Id"] for c in self.containers]

    def parameters(self, **extra: Any) -> dict[str, Any]:
        """Selector, mode and seed (to replay the drill) plus the action's own parameters."""
        return {**self.selector.describe(), **self.mode.describe(), "seed": self.seed, **extra}

    def targets(self) -> list[Target]:
        return [Target(kind="container", name=_name(c), details=details(c)) for c in self.containers]

    def record(self, action: str, undo: dict[str, Any], dry_run: bool, **parameters: Any) -> ChangeRecord:
        """The change record of ``action`` on these containers (announce it before acting)."""
        return ChangeRecord(driver="docker", action=action, targets=self.targets(),
                            parameters=self.parameters(**parameters), undo=undo, dry_run=dry_run,
                            environment=environment_id(), population=list(self.population))

    def announce(self, action: str, undo: dict[str, Any], dry_run: bool, **parameters: Any) -> ChangeRecord:
        """:meth:`record`, announced (the runner journals it and checks it against the bounds)."""
        record = self.record(action, undo, dry_run, **parameters)
        announce(record)
        return record

    def concurrently(self, work: Callable[[str], Any], what: str) -> None:
        """Run ``work(container id)`` for every chosen container at once; one DriverError naming every failure."""
        concurrently(self.ids, work, what)

    def pid(self, container_id: str) -> int:
        """The main process of a chosen container, as inspected when it was chosen."""
        return next(c["State"]["Pid"] for c in self.containers if c["Id"] == container_id)

    def refuse_host_network(self) -> None:
        """DriverError when a chosen container uses the host's network (a network fault would hit the host)."""
        shared = [c["Name"].lstrip("/") for c in self.containers
                  if (c.get("HostConfig") or {}).get("NetworkMode") == "host"]
        if shared:
            raise DriverError(f"{', '.join(shared)} use the host's network: the fault would hit the whole host; "
                              "nothing changed")


def select(
    labels: Mapping[str, Any] | Sequence[str] | None,
    name_pattern: str | None,
    project: str | None,
    count: int | None,
    percentage: float | None,
    all: bool,
    at_least_one: bool,
    seed: int | None,
    states: Iterable[str] | None = ("running",),
) -> Selection:
    """Validate selector and mode (before touching the engine), then pick and inspect the targets."""
    selector = selection.parse_selector(labels, name_pattern, project)
    mode = selection.parse_mode(count, percentage, all, at_least_one)
    seed = selection.check_seed(seed)
    api = client().api
    found = list_candidates(api, selector)
    own = selection.own_container_ids()
    chosen = selection.choose(found, selector, mode, seed, states, own)
    population = [c.name for c in selection.eligible(found, selector, states, own)]
    containers = concurrently([c.id for c in chosen], lambda cid: inspect(api, cid), "inspect")
    return Selection(selector, mode, seed, api, containers, population)


def list_candidates(api: Any, selector: selection.Selector) -> list[selection.Candidate]:
    """Every container (any state) carrying the selector's labels; the name and skip checks come later."""
    filters = {"label": selector.label_filters()} if selector.label_filters() else None
    with docker_errors("list containers"):
        entries = api.containers(all=True, filters=filters)
    return selection.candidates_from_api(entries)


def inspect(api: Any, container_id: str) -> dict[str, Any]:
    """``docker inspect`` of one container."""
    with docker_errors(f"inspect container {container_id[:12]}"):
        return api.inspect_container(container_id)


def details(info: Mapping[str, Any]) -> dict[str, Any]:
    """A target's details for the change record: id, image, every label, project, service, pid, state, ports.

    ``project`` is the compose project (label ``com.docker.compose.project``), ``service`` the
    ``mlchaos.service`` label or else the compose service; each only when the label is there.
    ``instance`` is the first published address.
    """
    state = info.get("State") or {}
    config = info.get("Config") or {}
    labels = dict(config.get("Labels") or {})
    ports = published_ports(info)
    found: dict[str, Any] = {
        "id": info["Id"],
        "image": config.get("Image"),
        "labels": labels,  # all of them: blast-radius scopes match on any label
        "pid": state.get("Pid") or None,
        "state": state.get("Status"),
        "restart_policy": (info.get("HostConfig") or {}).get("RestartPolicy"),
        "restart_count": info.get("RestartCount", 0),
        "ports": ports,
    }
    if labels.get(selection.PROJECT_LABEL):
        found["project"] = labels[selection.PROJECT_LABEL]
    service = labels.get(SERVICE_LABEL) or labels.get(COMPOSE_SERVICE_LABEL)
    if service:
        found["service"] = service
    first = next((addr for addrs in ports.values() for addr in addrs), None)
    if first:
        found["instance"] = first
    return found


def published_ports(info: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{"8000/tcp": ["127.0.0.1:32768"]}``: where each container port is published on the host."""
    ports = ((info.get("NetworkSettings") or {}).get("Ports")) or {}
    found: dict[str, list[str]] = {}
    for port, bindings in sorted(ports.items()):
        addresses = []
        for binding in bindings or []:
            host = binding.get("HostIp") or "127.0.0.1"
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            address = f"[{host}]:{binding['HostPort']}" if ":" in host else f"{host}:{binding['HostPort']}"
            if address not in addresses:
                addresses.append(address)
        if addresses:
            found[port] = addresses
    return found


def concurrently(items: Sequence[str], work: Callable[[str], T], what: str) -> list[T]:
    """Run ``work(item)`` for every container id at once; one DriverError naming every failure."""
    return concurrency.concurrently(items, work, what, **_POOL)


def each(ids: list[str], work: Callable[[str], str], what: str) -> dict[str, str]:
    """:func:`concurrently`, as ``{container id: result}``."""
    return concurrency.each(ids, work, what, **_POOL)


def status(api: Any, container_id: str) -> str | None:
    """The container's state (running, exited, paused...), None when it no longer exists."""
    try:
        return inspect(api, container_id)["State"]["Status"]
    except TargetNotFound:
        return None


def running_pid(api: Any, container_id: str) -> int | None:
    """The container's main process when it runs (None when it does not, or no longer exists)."""
    try:
        state = inspect(api, container_id)["State"]
    except TargetNotFound:
        return None
    return state["Pid"] if state.get("Running") and state.get("Pid") else None


def rollback_ids(api: Any, ids: list[str] | None, labels: Labels, name_pattern: str | None, project: str | None,
                 states: tuple[str, ...] | None) -> list[str]:
    """The exact ``ids`` of a change record, or the matching containers in ``states`` (one of the two)."""
    if ids is not None:
        if labels is not None or name_pattern is not None or project is not None:
            raise DriverError("give either ids or a selector (labels, name_pattern, project), not both")
        return check_ids(ids)
    selector = selection.parse_selector(labels, name_pattern, project)
    found = selection.eligible(list_candidates(api, selector), selector, None, selection.own_container_ids())
    if not found:
        raise TargetNotFound(f"no container matches {selector.describe()}")
    return [c.id for c in found if states is None or c.state in states]


def stop_watchdogs(func: str, ids: list[str], **same: Any) -> None:
    """Stop the TTL watchdogs of ``func`` whose every container is in ``ids`` and whose ``same`` arguments match
    (a rollback by selector, or one replayed from the journal, is not told their pids)."""
    ROLLBACKS.stop_watchdogs(func, covers("ids", ids, **same))


def check_ids(ids: Any) -> list[str]:
    """Container ids given to a rollback: a non-empty list of strings."""
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list | tuple) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise DriverError(f"ids must be a non-empty list of container ids, got {ids!r}")
    return list(ids)


def _name(info: Mapping[str, Any]) -> str:
    return str(info.get("Name") or info["Id"][:12]).lstrip("/")
