"""Which model-server replica to act on, and how to reach it: a sandbox process, a Docker container or a URL.

An :class:`Endpoint` is one replica: its ``name``, the ``instance`` label Prometheus gives it
(so ``match_fault_targets`` finds the alert that names it), its ``kind`` (``process``,
``container`` or ``url``), the ``environment`` id its change records carry and the ``details``
they list. :meth:`Endpoint.call` makes one JSON call to it; every failure is one DriverError line
naming the replica, method and path. How the call travels is the endpoint's transport:

* target ``sandbox``: the replica's own loopback URL (the admin endpoint answers loopback
  clients only; this host is one); alive while its process is;
* target ``docker``: ``docker exec <container> python3 -c <urllib snippet>`` to
  ``127.0.0.1:8000`` *inside* the container, so its loopback-only admin endpoint answers too
  (method, URL and body travel as argv, never through a shell); alive while the container runs
  (or is paused: the engine then refuses the exec, which says so);
* target ``url``: any server speaking the protocol, public API only: an ``/admin/`` call is
  refused before anything is sent.

:func:`parse_scope` validates the "where" arguments every model action takes; :meth:`Scope.select`
(:func:`select_endpoints`) picks ``count`` random live replicas (``seed`` repeats the pick, as
:mod:`drivers._common.selection` picks every driver's targets) and :meth:`Scope.named`
(:func:`named_endpoints`) finds the replicas an undo names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from drivers._common import selection as common
from drivers._common.endpoints import connection
from drivers.docker import selection
from drivers.docker.client import API_TIMEOUT, client, environment_id
from drivers.docker.targets import COMPOSE_SERVICE_LABEL, concurrently, details, inspect, list_candidates
from drivers.model import sandbox, transports
from drivers.model.sandbox import Replica, replica_details
from drivers.model.transports import ContainerTransport, GoneTransport, ProcessTransport, Response, UrlTransport
from mlchaos.driver_kit import DriverError, Target, TargetNotFound, local_environment

TARGETS = ("sandbox", "docker", "url")
DEFAULT_LABELS: Mapping[str, str] = {"mlchaos.target": "model"}  # the compose stack's model replicas
MAX_TIMEOUT = 60.0
EXEC_SLACK = 15.0  # python start-up in the container plus the engine's round trip, on top of a call's timeout
CONTAINER_PORT = transports.CONTAINER_PORT
SERVING_ENDPOINT = "serving"  # the declared endpoint target url uses when neither urls nor endpoint is given


@dataclass(frozen=True)
class Endpoint:
    """One model-server replica to act on: who it is (for the change record) and how to reach it."""

    name: str
    instance: str  # the ``instance`` label Prometheus gives the replica ("" when gone)
    kind: str  # the change record's target kind: process, container or url
    environment: str  # local:<host>, docker:<DOCKER_HOST> or the server's origin
    details: Mapping[str, Any]
    transport: transports.Transport = field(repr=False, compare=False)

    @property
    def url(self) -> str | None:
        """A base URL this host reaches the public API at (the container's published port), or None."""
        return self.details.get("url")

    def alive(self) -> bool:
        """False when the replica is gone (its process or container no longer runs): faults lived in memory."""
        return self.transport.alive()

    def target(self) -> Target:
        return Target(kind=self.kind, name=self.name, details=dict(self.details))

    def repository_index(self, model: str, timeout: float = 5.0) -> dict[str, str]:
        """Version -> state (READY, UNAVAILABLE, ...) of ``model`` in the replica's repository index.

        The Open Inference Protocol's model repository extension: ``POST /v2/repository/index`` with
        ``{}`` answers a JSON array of ``{"name", "version", "state", "reason"}`` (MLServer, Triton and
        the reference server alike); an entry without a version is listed under ``""``.
        """
        path = "/v2/repository/index"
        resp = self.send("POST", path, {}, timeout)
        try:
            entries = json.loads(resp.text)
        except ValueError:
            entries = None
        if not isinstance(entries, list) or not all(isinstance(m, dict) for m in entries):
            raise DriverError(f"{self.name}: POST {path} answered no repository index (a JSON array of models,"
                              f" as the Open Inference Protocol's model repository extension has it):"
                              f" {resp.text[:200]!r}")
        return {str(m.get("version") or ""): str(m.get("state") or "") for m in entries if m.get("name") == model}

    def served_version(self, model: str, timeout: float = 5.0) -> str | None:
        """The version of ``model`` the replica serves (the READY one), or None."""
        return served_in(self.repository_index(model, timeout))

    def request(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Response:
        """One call; any HTTP status is returned. DriverError when no answer came back."""
        data = None if body is None else json.dumps(body).encode()  # json.dumps writes NaN literals too
        try:
            return self.transport.request(method, path, data, timeout)
        except DriverError as exc:
            raise type(exc)(f"{self.name}: {method} {path} failed: {exc}") from None

    def send(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Response:
        """One call that must be answered 2xx (whatever its body: a repository load answers none), else a
        one-line DriverError."""
        resp = self.request(method, path, body, timeout)
        if not 200 <= resp.status < 300:
            detail = " ".join(resp.text.split())[:200]
            raise DriverError(f"{self.name}: {method} {path} answered HTTP {resp.status}: {detail}")
        return resp

    def call(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> dict[str, Any]:
        """One call that must be answered 2xx with a JSON object, else a one-line DriverError."""
        resp = self.send(method, path, body, timeout)
        try:
            found = json.loads(resp.text)
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise DriverError(f"{self.name}: {method} {path} answered no JSON object: {resp.text[:200]!r}")
        return found


# -- scope: where the replicas are ---------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The validated "where" of a model action: a target and the arguments that go with it."""

    target: str = "sandbox"
    service: str = "model"
    labels: Mapping[str, Any] | Sequence[str] | None = None  # docker (DEFAULT_LABELS when not given)
    name_pattern: str | None = None  # docker
    project: str | None = None  # docker
    urls: tuple[str, ...] = ()  # url
    endpoint: str | None = None  # url: the declared endpoint the one URL is (its credentials go with every call)

    def arguments(self) -> dict[str, Any]:
        """The arguments an undo needs to find the replicas again: none for the sandbox (the default); a declared
        endpoint by its name, so ``mlchaos recover`` and the guardian reach it with its credentials again (the
        run's declarations are in its journal)."""
        if self.target == "docker":
            return {"target": "docker", "labels": _jsonable(self.labels), "name_pattern": self.name_pattern,
                    "project": self.project}
        if self.target == "url" and self.endpoint is not None:
            return {"target": "url", "endpoint": self.endpoint}
        if self.target == "url":
            return {"target": "url", "urls": list(self.urls)}
        return {}

    def select(self, count: int, seed: int | None) -> tuple[list[Endpoint], list[str], int]:
        """``count`` random live replicas, the names of every live one (the population) and the seed."""
        mode = common.count_mode(count)
        seed = common.check_seed(seed)  # a drawn seed is recorded: it repeats this very pick
        if self.target == "docker":
            return (*self._select_containers(mode, seed), seed)
        if self.target == "url":
            chosen = common.choose([_url_endpoint(u) for u in self.urls], mode, seed, noun="URL(s)", scope="given",
                                   nothing="no urls given", name=lambda e: e.name)
            environment(chosen)  # one change record names one environment
            return chosen, list(self.urls), seed
        live = [r for r in sandbox.replicas(self.service) if sandbox.is_alive(r.pid, r.name)]
        picked = common.choose(live, mode, seed, noun="live replica(s)", scope=f"of service {self.service!r}",
                               nothing=f"no live replica of service {self.service!r}", order=lambda r: r.index)
        return [_process_endpoint(r) for r in picked], [r.name for r in live], seed

    def choose(self, count: int, seed: int | None, names: list[str] | None = None
               ) -> tuple[list[Endpoint], list[str], int | None]:
        """``select(count, seed)``, or exactly the live replicas ``names`` (a canary) when given."""
        if names is None:
            return self.select(count, seed)
        if isinstance(names, list) and not names:
            raise DriverError("replicas must name at least one replica (or be null for a random pick)")
        chosen = self.named(names)
        dead = [e.name for e in chosen if not e.alive()]
        if dead:
            raise DriverError(f"replica(s) {', '.join(dead)} not running: nothing to act on")
        return chosen, [e.name for e in self.named(None) if e.alive()], None

    def named(self, names: list[str] | None) -> list[Endpoint]:
        """The replicas an undo names (every one of the scope when None), alive or not.

        An unknown name is TargetNotFound, except a container that no longer exists: it is
        returned gone (not alive), since its faults went with it.
        """
        if names is not None and (isinstance(names, str) or not isinstance(names, list | tuple)
                                  or not all(isinstance(n, str) for n in names)):
            raise DriverError(f"replicas must be a list of replica names, got {names!r}")
        if self.target == "docker":
            return self._named_containers(names)
        if self.target == "url":
            unknown = sorted(set(names or ()) - set(self.urls))
            if unknown:
                raise TargetNotFound(f"no replica(s) {unknown} among the urls {list(self.urls)}")
            return [_url_endpoint(u) for u in self.urls if names is None or u in names]
        replicas = sandbox.replicas(self.service)
        unknown = sorted(set(names or ()) - {r.name for r in replicas})
        if unknown:
            raise TargetNotFound(f"no replica(s) {unknown} in service {self.service!r}")
        return [_process_endpoint(r) for r in replicas if names is None or r.name in names]

    # docker ----------------------------------------------------------------------------

    @property
    def _selector(self) -> selection.Selector:
        return selection.parse_selector(self.labels, self.name_pattern, self.project)

    def _select_containers(self, mode: common.Mode, seed: int) -> tuple[list[Endpoint], list[str]]:
        # as drivers.docker.targets.select does, with a client whose timeout covers a call's
        api, selector, own = _docker_api(), self._selector, selection.own_container_ids()
        found = list_candidates(api, selector)
        chosen = selection.choose(found, selector, mode, seed, ("running",), own)
        population = [c.name for c in selection.eligible(found, selector, ("running",), own)]
        infos = concurrently([c.id for c in chosen], lambda cid: inspect(api, cid), "inspect")
        return [_container_endpoint(api, info) for info in infos], population

    def _named_containers(self, names: list[str] | None) -> list[Endpoint]:
        api, selector = _docker_api(), self._selector
        found = selection.eligible(list_candidates(api, selector), selector, None, selection.own_container_ids())
        by_name = {c.name: c for c in found}
        wanted = [c.name for c in found] if names is None else list(names)
        infos = {n: inspect(api, by_name[n].id) for n in wanted if n in by_name}
        return [_container_endpoint(api, infos[n]) if n in infos else
                Endpoint(n, "", "container", environment_id(), {}, GoneTransport(n)) for n in wanted]


def parse_scope(
    target: str = "sandbox", service: str = "model", labels: Mapping[str, Any] | Sequence[str] | None = None,
    name_pattern: str | None = None, project: str | None = None, urls: list[str] | None = None,
    endpoint: str | None = None,
) -> Scope:
    """Validate the "where" arguments (nothing is asked of any server or engine yet).

    ``endpoint`` (with target url) names a declared endpoint instead of ``urls``: its URL, with its credentials
    and headers; target url with neither takes the endpoint declared as ``serving``. The scope then names the
    endpoint (:meth:`Scope.arguments`: what an undo is given).
    """
    if endpoint is not None and urls is not None:
        raise DriverError(f"give urls or endpoint, not both (got urls={urls!r}, endpoint={endpoint!r})")
    if endpoint is not None and target != "url":
        raise DriverError(f"endpoint names a server by URL: give it with target url, not {target}")
    if target == "url" and urls is None:
        declared = connection(endpoint, None, SERVING_ENDPOINT)
        if declared is not None:
            return Scope("url", service, urls=(declared.url,), endpoint=declared.name)
    if target not in TARGETS:
        raise DriverError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    docker_args = [n for n, v in (("labels", labels), ("name_pattern", name_pattern), ("project", project))
                   if v is not None]
    if target != "docker" and docker_args:
        raise DriverError(f"{', '.join(docker_args)} select containers: give them with target docker, not {target}")
    if target != "url" and urls is not None:
        raise DriverError(f"urls name servers by URL: give them with target url, not {target}")
    if not isinstance(service, str) or not service:
        raise DriverError(f"service must be a non-empty service name, got {service!r}")
    if target == "docker":
        labels = dict(DEFAULT_LABELS) if labels is None else labels
        selection.parse_selector(labels, name_pattern, project)  # an empty or bad selector fails here
        return Scope("docker", service, labels, name_pattern, project)
    if target == "url":
        return Scope("url", service, urls=_check_urls(urls))
    return Scope("sandbox", service)


def served_in(index: Mapping[str, str]) -> str | None:
    """The READY version of a repository index (as :meth:`Endpoint.repository_index` returns it), or None."""
    return next((v for v, state in index.items() if state == "READY"), None)


def select_endpoints(count: int = 1, seed: int | None = None, **where: Any) -> tuple[list[Endpoint], list[str], int]:
    """``parse_scope(**where).select(count, seed)``: (chosen, population names, seed)."""
    return parse_scope(**where).select(count, seed)


def named_endpoints(names: list[str] | None = None, **where: Any) -> list[Endpoint]:
    """``parse_scope(**where).named(names)``: the replicas an undo names."""
    return parse_scope(**where).named(names)


def environment(chosen: Sequence[Endpoint]) -> str:
    """The one environment of the chosen replicas (a change record names one); DriverError when they differ."""
    found = sorted({e.environment for e in chosen})
    if len(found) > 1:
        raise DriverError(f"the chosen replicas are in {len(found)} environments ({', '.join(found)}): one change "
                          "record names one environment; choose fewer replicas or URLs of one server")
    return found[0] if found else ""


# -- helpers -------------------------------------------------------------------------------


def _process_endpoint(r: Replica) -> Endpoint:
    found = replica_details(r)
    return Endpoint(r.name, found["instance"], "process", local_environment(), found,
                    ProcessTransport(r.url, r.pid, r.name))


def _container_endpoint(api: Any, info: Mapping[str, Any]) -> Endpoint:
    found = details(info)
    name = str(info.get("Name") or info["Id"][:12]).lstrip("/")
    # Prometheus scrapes a compose replica by its service name on the network (model-0:8000), as
    # deploy/docker/prometheus/targets/model.json lists it; a plain container by its name
    host = found["labels"].get(COMPOSE_SERVICE_LABEL) or name
    found["instance"] = f"{host}:{CONTAINER_PORT}"
    published = found["ports"].get(f"{CONTAINER_PORT}/tcp")
    if published:
        found["url"] = f"http://{published[0]}"
    return Endpoint(name, found["instance"], "container", environment_id(), found,
                    ContainerTransport(api, info["Id"]))


def _url_endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    instance = f"{host}:{port}"
    return Endpoint(url, instance, "url", f"{parts.scheme}://{instance}", {"url": url, "instance": instance},
                    UrlTransport(url))


def _docker_api() -> Any:
    return client(timeout=max(API_TIMEOUT, MAX_TIMEOUT + EXEC_SLACK)).api


def _check_urls(urls: Any) -> tuple[str, ...]:
    if isinstance(urls, str) or not isinstance(urls, list | tuple) or not urls:
        raise DriverError(f"urls must be a non-empty list of server base URLs (http://host:port), got {urls!r}")
    found: list[str] = []
    for url in urls:
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query \
                and not parts.fragment and (parts.port is None or parts.port > 0)
        except (TypeError, ValueError, AttributeError):  # not a string, a port out of range or not a number
            valid = False
        if not valid:
            raise DriverError(f"urls: {url!r} is not an http(s)://host[:port] base URL")
        url = url.rstrip("/")
        if url in found:
            raise DriverError(f"urls: {url!r} is given twice")
        found.append(url)
    return tuple(found)


def _jsonable(labels: Mapping[str, Any] | Sequence[str] | None) -> Any:
    if labels is None or isinstance(labels, Mapping):
        return None if labels is None else dict(labels)
    return list(labels)
