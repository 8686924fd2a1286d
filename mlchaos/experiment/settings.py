"""mlchaos' own settings, read from the experiment's ``extensions`` entry named ``mlchaos``.

Keeping them in an extension keeps the file a valid Chaos Toolkit experiment.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

DEFAULT_ACTIVITY_TIMEOUT = 60.0
DEFAULT_ROLLBACK_TIMEOUT = 120.0
DEFAULT_CONTROL_TIMEOUT = 30.0
DEFAULT_GUARD_INTERVAL = 1.0
DEFAULT_HEARTBEAT_TIMEOUT = 10.0
BLAST_RADIUS_KEYS = {"max_targets", "max_fraction", "scopes", "max_duration"}
SCOPE_KEYS = {"kind", "labels", "project", "namespace", "service", "name_pattern", "environment"}
SANDBOX = "sandbox"
BUDGET_KINDS = {"detect": "time_to_detect", "notify": "time_to_notify", "recover": "time_to_recover",
                "notify_resolved": "time_to_notify_resolved"}
ADDRESS = re.compile(r"^(?P<host>[^\s:]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")

Check = Callable[[Any], Iterator[tuple[str, str]]]


def _positive_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool) and value > 0


def _check_seconds(value: Any) -> Iterator[tuple[str, str]]:
    if not _positive_number(value):
        yield "", f"must be a positive number of seconds, got {value!r}"


def _check_probes(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, list):
        yield "", f"must be a list of probes with tolerances, got {value!r}"


LISTEN_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")  # a named listen target (sandbox, docker...)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NOTIFICATION_KEYS = {"listen", "token_file", "token_env", "token_kubernetes_secret"}
CREDENTIAL_KEYS = ("token_file", "token_env", "token_kubernetes_secret")
TOKEN_SECRET_KEYS = {"namespace", "name", "key", "reload_seconds"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
MAX_RELOAD_SECONDS = 900.0  # the longest a run waits at its start for Alertmanager to load a new token


def _check_notifications(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, dict) or set(value) - NOTIFICATION_KEYS:
        yield "", ("must be a mapping with 'listen' ('sandbox', another named target, or 'HOST:PORT') and, for "
                   "HOST:PORT, 'token_file', 'token_env' or 'token_kubernetes_secret'")
        return
    listen = value.get("listen", SANDBOX)
    address = ADDRESS.match(listen) if isinstance(listen, str) else None
    if address is None and not (isinstance(listen, str) and LISTEN_NAME.match(listen)):
        yield "/listen", f"listen must be a named listen target such as 'sandbox', or HOST:PORT, got {listen!r}"
        return
    if address is not None and not 0 < int(address["port"]) < 65536:
        yield "/listen", f"port out of range in {listen!r}"
    token_file, token_env = value.get("token_file"), value.get("token_env")
    if token_file is not None and not (isinstance(token_file, str) and token_file.strip()):
        yield "/token_file", f"token_file must be a path, got {token_file!r}"
    if token_env is not None and not (isinstance(token_env, str) and ENV_NAME.match(token_env)):
        yield "/token_env", f"token_env must be an environment variable's name, got {token_env!r}"
    if value.get("token_kubernetes_secret") is not None:
        for pointer, message in _check_token_secret(value["token_kubernetes_secret"]):
            yield "/token_kubernetes_secret" + pointer, message
    given = [key for key in CREDENTIAL_KEYS if value.get(key) is not None]
    if address is None and given:
        yield f"/{given[0]}", f"the named listen target {listen!r} brings its own credential; drop {given[0]}"
    elif address is not None and len(given) != 1:
        yield "", ("a receiver on HOST:PORT needs exactly one credential, so that only your Alertmanager can "
                   "deliver to it: token_file (mlchaos writes a fresh token there for each run; point "
                   "Alertmanager's webhook http_config.authorization.credentials_file at it), token_env (the "
                   "token Alertmanager's config holds, from a secret) or token_kubernetes_secret (the Secret "
                   "Alertmanager's config reads: each run takes a fresh token from it and rotates it at its end)")


def _check_token_secret(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, dict) or set(value) - TOKEN_SECRET_KEYS or not {"namespace", "name"} <= set(value):
        yield "", (f"must be a mapping with namespace and name (the Secret), and optionally key (default token) and "
                   f"reload_seconds (default {TokenSecret.reload_seconds:g}), got {value!r}")
        return
    if not (isinstance(value["namespace"], str) and DNS_LABEL.match(value["namespace"])):
        yield "/namespace", f"namespace must be a Kubernetes namespace name, got {value['namespace']!r}"
    if not (isinstance(value["name"], str) and DNS_SUBDOMAIN.match(value["name"])):
        yield "/name", f"name must be a Kubernetes Secret name, got {value['name']!r}"
    if "key" in value and not (isinstance(value["key"], str) and SECRET_KEY.match(value["key"])):
        yield "/key", f"key must be a Secret data key (letters, digits, '-', '_', '.'), got {value['key']!r}"
    seconds = value.get("reload_seconds", TokenSecret.reload_seconds)
    if not (_positive_number(seconds) and seconds <= MAX_RELOAD_SECONDS):
        yield "/reload_seconds", (f"reload_seconds must be a positive number of seconds, at most "
                                  f"{MAX_RELOAD_SECONDS:g}, got {seconds!r}")


def _check_budgets(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, list):
        yield "", "must be a list of {alert, detect, notify, recover, notify_resolved} budgets"
        return
    for index, budget in enumerate(value):
        if not isinstance(budget, dict):
            yield f"/{index}", "a budget must be a mapping"
            continue
        if not isinstance(budget.get("alert"), str) or not budget.get("alert"):
            yield f"/{index}/alert", "required: the name of the alert the budget is about"
        unknown = set(budget) - {"alert", *BUDGET_KINDS}
        for key in sorted(unknown):
            yield f"/{index}/{key}", f"unknown budget {key!r} (use {', '.join(BUDGET_KINDS)})"
        if not set(budget) & set(BUDGET_KINDS):
            yield f"/{index}", f"a budget needs at least one of {', '.join(BUDGET_KINDS)} (seconds)"
        for key in set(budget) & set(BUDGET_KINDS):
            if not _positive_number(budget[key]):
                yield f"/{index}/{key}", f"must be a positive number of seconds, got {budget[key]!r}"


def _unknown_keys(mapping: dict[Any, Any], allowed: set[str], what: str) -> Iterator[tuple[str, str]]:
    for key in sorted(set(mapping) - allowed, key=str):
        yield f"/{key}", f"unknown {what} key {key!r} (use {', '.join(sorted(allowed))})"


def _check_scope(scope: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(scope, dict) or not scope:
        yield "", f"a scope must be a non-empty mapping of {', '.join(sorted(SCOPE_KEYS))}, got {scope!r}"
        return
    yield from _unknown_keys(scope, SCOPE_KEYS, "scope")
    labels = scope.get("labels")
    if labels is not None and (not isinstance(labels, dict) or not labels
                               or not all(isinstance(k, str) and isinstance(v, str | None) for k, v in labels.items())):
        yield "/labels", f"labels must be a non-empty mapping of label to string value (or null), got {labels!r}"
    for key in ("kind", "project", "namespace", "service", "environment"):
        if key in scope and (not isinstance(scope[key], str) or not scope[key]):
            yield f"/{key}", f"must be a non-empty string, got {scope[key]!r}"
    if "name_pattern" in scope:
        pattern = scope["name_pattern"]
        try:
            re.compile(pattern) if isinstance(pattern, str) else None
        except re.error as exc:
            yield "/name_pattern", f"invalid regular expression {pattern!r}: {exc}"
        if not isinstance(pattern, str):
            yield "/name_pattern", f"must be a regular expression string, got {pattern!r}"


def _check_blast_radius(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, dict) or not value:
        yield "", f"must be a mapping with any of {', '.join(sorted(BLAST_RADIUS_KEYS))}"
        return
    yield from _unknown_keys(value, BLAST_RADIUS_KEYS, "blast_radius")
    if "max_targets" in value:
        count = value["max_targets"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            yield "/max_targets", f"must be an integer >= 1, got {count!r}"
    if "max_fraction" in value:
        fraction = value["max_fraction"]
        if not _positive_number(fraction) or not fraction <= 1:
            yield "/max_fraction", f"must be a number in (0, 1], got {fraction!r}"
    if "max_duration" in value:
        yield from (("/max_duration" + p, m) for p, m in _check_seconds(value["max_duration"]))
    if "scopes" in value:
        scopes = value["scopes"]
        if not isinstance(scopes, list) or not scopes:
            yield "/scopes", "must be a non-empty list of scopes (an empty list would allow nothing)"
            return
        for index, scope in enumerate(scopes):
            yield from ((f"/scopes/{index}{p}", m) for p, m in _check_scope(scope))


def _check_patterns(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        yield "", ("must be a non-empty list of environment patterns such as 'local:*' or "
                   f"'docker:unix:///var/run/docker.sock', got {value!r}")


SETTINGS_CHECKS: dict[str, Check] = {
    "activity_timeout": _check_seconds,
    "rollback_timeout": _check_seconds,
    "control_timeout": _check_seconds,
    "recovery": _check_probes,
    "notifications": _check_notifications,
    "budgets": _check_budgets,
    "blast_radius": _check_blast_radius,
    "guards": _check_probes,
    "guard_interval": _check_seconds,
    "allowed_environments": _check_patterns,
    "heartbeat_timeout": _check_seconds,
}


@dataclass(frozen=True)
class Scope:
    """Where a fault may land: every key given must match the target (kind, labels, project, ...)."""

    kind: str | None = None
    labels: tuple[tuple[str, str | None], ...] = ()
    project: str | None = None
    namespace: str | None = None
    service: str | None = None
    name_pattern: str | None = None
    environment: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scope:
        return cls(kind=data.get("kind"), labels=tuple(sorted((data.get("labels") or {}).items())),
                   project=data.get("project"), namespace=data.get("namespace"), service=data.get("service"),
                   name_pattern=data.get("name_pattern"), environment=data.get("environment"))

    def describe(self) -> str:
        parts = [f"kind={self.kind}"] if self.kind else []
        parts += [f"label {k}={v}" if v is not None else f"label {k}" for k, v in self.labels]
        parts += [f"{k}={getattr(self, k)}" for k in ("project", "namespace", "service", "name_pattern", "environment")
                  if getattr(self, k)]
        return ", ".join(parts)


@dataclass(frozen=True)
class BlastRadius:
    """The bounds of a run: how many targets, which fraction, where, and for how long."""

    max_targets: int | None = None
    max_fraction: float | None = None
    scopes: tuple[Scope, ...] = ()
    max_duration: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BlastRadius:
        data = data or {}
        return cls(
            max_targets=data.get("max_targets"),
            max_fraction=float(data["max_fraction"]) if "max_fraction" in data else None,
            scopes=tuple(Scope.from_dict(s) for s in data.get("scopes", [])),
            max_duration=float(data["max_duration"]) if "max_duration" in data else None,
        )

    @property
    def bounded(self) -> bool:
        return any(v not in (None, ()) for v in (self.max_targets, self.max_fraction, self.scopes, self.max_duration))


@dataclass(frozen=True)
class Budget:
    """How fast one alert must be detected / notified / resolved, in seconds after the fault."""

    alert: str
    limits: dict[str, float]  # measurement kind (time_to_detect...) -> seconds


@dataclass(frozen=True)
class TokenSecret:
    """The Kubernetes Secret that holds a HOST:PORT receiver's token (``token_kubernetes_secret``): each run takes a
    fresh token from it and rotates it at its end; Alertmanager needs ``reload_seconds`` to load a new one."""

    namespace: str
    name: str
    key: str = "token"
    reload_seconds: float = 120.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenSecret:
        return cls(str(data["namespace"]), str(data["name"]), str(data.get("key", cls.key)),
                   float(data.get("reload_seconds", cls.reload_seconds)))


@dataclass(frozen=True)
class Settings:
    """Run settings with their defaults filled in."""

    activity_timeout: float = DEFAULT_ACTIVITY_TIMEOUT
    rollback_timeout: float = DEFAULT_ROLLBACK_TIMEOUT
    control_timeout: float = DEFAULT_CONTROL_TIMEOUT  # each call of a Chaos Toolkit control
    notifications_listen: str | None = None
    notifications_token_file: str | None = None  # HOST:PORT receivers: where to write the run's token
    notifications_token_env: str | None = None  # ... or the variable holding the shared token
    notifications_token_secret: TokenSecret | None = None  # ... or the Secret each run takes one from and rotates
    budgets: tuple[Budget, ...] = ()
    blast_radius: BlastRadius = BlastRadius()
    guard_interval: float = DEFAULT_GUARD_INTERVAL
    allowed_environments: tuple[str, ...] = ()
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT

    @classmethod
    def from_experiment(cls, data: dict[str, Any]) -> Settings:
        """Read the (already validated) mlchaos extension of an experiment."""
        ext = mlchaos_extension(data)
        if ext is None:
            return cls()
        notifications = ext.get("notifications")
        credential = notifications or {}
        return cls(
            activity_timeout=float(ext.get("activity_timeout", DEFAULT_ACTIVITY_TIMEOUT)),
            rollback_timeout=float(ext.get("rollback_timeout", DEFAULT_ROLLBACK_TIMEOUT)),
            control_timeout=float(ext.get("control_timeout", DEFAULT_CONTROL_TIMEOUT)),
            notifications_listen=notifications.get("listen", SANDBOX) if notifications is not None else None,
            notifications_token_file=credential.get("token_file"),
            notifications_token_env=credential.get("token_env"),
            notifications_token_secret=TokenSecret.from_dict(credential["token_kubernetes_secret"])
            if credential.get("token_kubernetes_secret") is not None else None,
            budgets=tuple(
                Budget(b["alert"], {BUDGET_KINDS[k]: float(v) for k, v in b.items() if k in BUDGET_KINDS})
                for b in ext.get("budgets", [])
            ),
            blast_radius=BlastRadius.from_dict(ext.get("blast_radius")),
            guard_interval=float(ext.get("guard_interval", DEFAULT_GUARD_INTERVAL)),
            allowed_environments=tuple(ext.get("allowed_environments", ())),
            heartbeat_timeout=float(ext.get("heartbeat_timeout", DEFAULT_HEARTBEAT_TIMEOUT)),
        )


def mlchaos_extension(data: dict[str, Any]) -> dict[str, Any] | None:
    """The experiment's ``extensions`` entry named ``mlchaos``, if any."""
    index = mlchaos_extension_index(data)
    return None if index is None else data["extensions"][index]


def mlchaos_extension_index(data: dict[str, Any]) -> int | None:
    """Where the ``extensions`` entry named ``mlchaos`` is in the list, if there is one."""
    extensions = data.get("extensions")
    for index, ext in enumerate(extensions if isinstance(extensions, list) else []):
        if isinstance(ext, dict) and ext.get("name") == "mlchaos":
            return index
    return None
