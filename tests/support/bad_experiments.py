"""A named catalogue of broken experiments: each with the pointer and message it must produce."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PROBE = {"type": "probe", "name": "ok", "tolerance": True,
         "provider": {"type": "python", "module": "testdrivers", "func": "echo", "arguments": {"value": True}}}
ACTION = {"type": "action", "name": "act",
          "provider": {"type": "python", "module": "testdrivers", "func": "echo"}}
VALID: dict[str, Any] = {
    "title": "valid",
    "description": "a valid experiment",
    "steady-state-hypothesis": {"title": "h", "probes": [PROBE]},
    "method": [ACTION],
    "rollbacks": [ACTION],
}


def valid() -> dict[str, Any]:
    """A fresh valid experiment (no shared sub-objects: deepcopy would keep method/rollbacks aliased)."""
    return json.loads(json.dumps(VALID))


def _with(path: str, value: Any) -> dict[str, Any]:
    """A valid experiment with the value at a /-separated path replaced (None deletes)."""
    data = valid()
    parts = path.strip("/").split("/")
    node: Any = data
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is None:
        del node[last]
    else:
        node[last] = value
    return data


@dataclass(frozen=True)
class Bad:
    name: str
    data: dict[str, Any]
    pointer: str
    message: str


def _provider(**changes: Any) -> dict[str, Any]:
    provider = {"type": "python", "module": "testdrivers", "func": "echo"}
    provider.update(changes)
    return {"type": "action", "name": "act", "provider": provider}


def _endpoints(declaration: dict[str, Any], method: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid experiment declaring one endpoint ``prom`` (and, given, a first method activity)."""
    data = {**valid(), "extensions": [{"name": "mlchaos", "endpoints": {"prom": declaration}}]}
    if method is not None:
        data["method"] = [method]
    return data


def _prometheus_probe(**arguments: Any) -> dict[str, Any]:
    provider = {"type": "python", "module": "drivers.prometheus.probes", "func": "query_value",
                "arguments": {"query": "up", **arguments}}
    return {"type": "probe", "name": "q", "provider": provider}


CATALOGUE = [
    Bad("missing-title", _with("title", None), "/title", "required: a non-empty string 'title'"),
    Bad("misspelt-top-key", {**valid(), "methd": []}, "/methd", "unknown key 'methd' (did you mean 'method'?)"),
    Bad("missing-method", _with("method", None), "/method", "required: a 'method' list"),
    Bad("ml-test-score-tag-out-of-the-rubric", _with("tags", ["sandbox", "ml-test-score:monitoring-9"]), "/tags/1",
        "'ml-test-score:monitoring-9': 'monitoring-9': the monitoring section has tests 1 to 7"),
    Bad("ml-test-score-tag-naming-a-section", _with("tags", ["ml-test-score:infrastructure"]), "/tags/0",
        "names the infrastructure section but no test of it"),
    Bad("missing-description", _with("description", None), "/description",
        "required: a non-empty string 'description'"),
    Bad("empty-tag", _with("tags", ["ok", ""]), "/tags/1", "a tag must be a non-empty string"),
    Bad("method-not-a-list", _with("method", {"a": 1}), "/method", "must be a list of activities"),
    Bad("bad-dry-run", {**valid(), "dry_run": "yes"}, "/dry_run", "dry_run must be true or false"),
    Bad("bad-provider-timeout", _with("method/0", _provider(timeout="soon")), "/method/0/provider/timeout",
        "the provider's timeout must be a positive number of seconds"),
    Bad("unsplittable-process-arguments", _with("method/0", {"type": "action", "name": "p", "provider": {
        "type": "process", "path": "true", "arguments": "'unclosed"}}), "/method/0/provider/arguments",
        "process arguments cannot be split"),
    Bad("bad-activity-type", _with("method/0", {**ACTION, "type": "acton"}), "/method/0/type",
        "type must be 'action' or 'probe'"),
    Bad("missing-name", _with("method/0", {k: v for k, v in ACTION.items() if k != "name"}),
        "/method/0/name", "required: a non-empty 'name'"),
    Bad("missing-provider", _with("method/0", {"type": "action", "name": "x"}), "/method/0/provider",
        "required: a 'provider' mapping"),
    Bad("unknown-provider-type", _with("method/0", _provider(type="grpc")), "/method/0/provider/type",
        "provider type must be python, process or http"),
    Bad("unknown-module", _with("method/0", _provider(module="drivers.proces.actions")),
        "/method/0/provider/module", "did you mean 'drivers.process.actions'"),
    Bad("unknown-function", _with("method/0", _provider(func="ecko")), "/method/0/provider/func",
        "module testdrivers has no function 'ecko' (did you mean 'echo'?)"),
    Bad("unknown-argument", _with("method/0", _provider(arguments={"valeu": 1})),
        "/method/0/provider/arguments/valeu", "testdrivers.echo() has no argument 'valeu' (did you mean 'value'?)"),
    Bad("missing-argument", _with("method/0", _provider(func="sleep")), "/method/0/provider/arguments",
        "testdrivers.sleep() needs argument 'seconds'"),
    Bad("wrong-argument-type", _with("method/0", _provider(func="typed", arguments={"count": "three"})),
        "/method/0/provider/arguments/count", "argument 'count' must be int, got 'three'"),
    Bad("wrong-optional-type", _with("method/0", _provider(func="optional", arguments={"seed": "7"})),
        "/method/0/provider/arguments/seed", "argument 'seed' must be int or null, got '7'"),
    Bad("wrong-generic-type", _with("method/0", _provider(func="optional", arguments={"names": "a,b"})),
        "/method/0/provider/arguments/names", "argument 'names' must be list or null, got 'a,b'"),
    Bad("injected-argument", _with("method/0", _provider(func="with_config", arguments={"configuration": {}})),
        "/method/0/provider/arguments/configuration", "is injected by the runner"),
    Bad("negative-timeout", _with("method/0", {**ACTION, "timeout": -1}), "/method/0/timeout",
        "timeout must be a positive number"),
    Bad("bad-pause", _with("method/0", {**ACTION, "pauses": {"before": "soon"}}), "/method/0/pauses/before",
        "a pause is a number of seconds"),
    Bad("bad-background", _with("method/0", {**ACTION, "background": "yes"}), "/method/0/background",
        "background must be true or false"),
    Bad("probe-without-tolerance",
        _with("steady-state-hypothesis/probes/0", {k: v for k, v in PROBE.items() if k != "tolerance"}),
        "/steady-state-hypothesis/probes/0", "needs a 'tolerance'"),
    Bad("empty-range", _with("steady-state-hypothesis/probes/0", {**PROBE, "tolerance": {"type": "range",
        "range": [5, 1]}}), "/steady-state-hypothesis/probes/0/tolerance/range", "range is empty: 5 > 1"),
    Bad("bad-regex", _with("steady-state-hypothesis/probes/0", {**PROBE, "tolerance": {"type": "regex",
        "pattern": "(("}}), "/steady-state-hypothesis/probes/0/tolerance/pattern", "invalid regular expression"),
    Bad("unknown-tolerance-type", _with("steady-state-hypothesis/probes/0", {**PROBE, "tolerance": {
        "type": "between"}}), "/steady-state-hypothesis/probes/0/tolerance/type", "tolerance type must be"),
    Bad("unresolved-variable", _with("method/0", _provider(arguments={"value": "${nowhere}"})),
        "/method/0/provider/arguments/value", "unresolved variable ${nowhere}"),
    Bad("unset-env-configuration", {**valid(), "configuration": {"url": {"type": "env",
        "key": "MLCHAOS_TEST_SURELY_UNSET"}}}, "/configuration/url",
        "environment variable MLCHAOS_TEST_SURELY_UNSET is not set"),
    Bad("dangling-ref", _with("method/0", {"ref": "nothing"}), "/method/0/ref", "no activity named 'nothing'"),
    Bad("unknown-secret-scope", _with("method/0", _provider(secrets=["vault"])), "/method/0/provider/secrets",
        "unknown secrets scope 'vault'"),
    Bad("missing-process-program", _with("method/0", {"type": "action", "name": "p",
        "provider": {"type": "process", "path": "/no/such/program"}}), "/method/0/provider/path",
        "program '/no/such/program' not found on PATH"),
    Bad("bad-http-url", _with("method/0", {"type": "action", "name": "h",
        "provider": {"type": "http", "url": "ftp://x"}}), "/method/0/provider/url", "not an http(s) URL"),
    Bad("control-without-provider", {**valid(), "controls": [{"name": "x"}]}, "/controls/0/provider",
        "required: a control needs a 'provider' mapping"),
    Bad("control-module-missing", {**valid(), "controls": [{"name": "x", "provider": {
        "type": "python", "module": "no_such_control_module"}}]}, "/controls/0/provider/module",
        "control module 'no_such_control_module' cannot be imported"),
    Bad("control-bad-scope", {**valid(), "controls": [{"name": "x", "scope": "during", "provider": {
        "type": "python", "module": "testcontrols"}}]}, "/controls/0/scope", "scope must be 'before' or 'after'"),
    Bad("unknown-mlchaos-setting", {**valid(), "extensions": [{"name": "mlchaos", "activity_timeot": 3}]},
        "/extensions/0/activity_timeot", "did you mean 'activity_timeout'"),
    Bad("bad-mlchaos-timeout", {**valid(), "extensions": [{"name": "mlchaos", "activity_timeout": 0}]},
        "/extensions/0/activity_timeout", "must be a positive number"),
    Bad("budget-without-alert", {**valid(), "extensions": [{"name": "mlchaos", "budgets": [{"detect": 3}]}]},
        "/extensions/0/budgets/0/alert", "required: the name of the alert"),
    Bad("budget-unknown-kind", {**valid(), "extensions": [{"name": "mlchaos", "budgets": [
        {"alert": "A", "detetc": 3}]}]}, "/extensions/0/budgets/0/detetc", "unknown budget 'detetc'"),
    Bad("budget-not-a-number", {**valid(), "extensions": [{"name": "mlchaos", "budgets": [
        {"alert": "A", "detect": "fast"}]}]}, "/extensions/0/budgets/0/detect", "positive number of seconds"),
    Bad("bad-notifications-listen", {**valid(), "extensions": [{"name": "mlchaos", "notifications": {
        "listen": "Local Host"}}]}, "/extensions/0/notifications/listen",
        "listen must be a named listen target such as 'sandbox', or HOST:PORT"),
    Bad("notifications-without-credential", {**valid(), "extensions": [{"name": "mlchaos", "notifications": {
        "listen": "127.0.0.1:9095"}}]}, "/extensions/0/notifications", "needs exactly one credential"),
    Bad("notifications-named-target-with-credential", {**valid(), "extensions": [{"name": "mlchaos",
        "notifications": {"listen": "sandbox", "token_env": "TOKEN"}}]}, "/extensions/0/notifications/token_env",
        "brings its own credential"),
    Bad("notifications-two-credentials", {**valid(), "extensions": [{"name": "mlchaos", "notifications": {
        "listen": "0.0.0.0:9095", "token_env": "TOKEN", "token_kubernetes_secret": {
            "namespace": "ml-serving", "name": "mlchaos-receiver-token"}}}]}, "/extensions/0/notifications",
        "needs exactly one credential"),
    Bad("notifications-token-secret-without-name", {**valid(), "extensions": [{"name": "mlchaos", "notifications": {
        "listen": "0.0.0.0:9095", "token_kubernetes_secret": {"namespace": "ml-serving"}}}]},
        "/extensions/0/notifications/token_kubernetes_secret", "must be a mapping with namespace and name"),
    Bad("notifications-token-secret-bad-name", {**valid(), "extensions": [{"name": "mlchaos", "notifications": {
        "listen": "0.0.0.0:9095", "token_kubernetes_secret": {"namespace": "ml-serving", "name": "Receiver_Token"}}}]},
        "/extensions/0/notifications/token_kubernetes_secret/name", "must be a Kubernetes Secret name"),
    Bad("notifications-token-secret-reload-too-long", {**valid(), "extensions": [{"name": "mlchaos",
        "notifications": {"listen": "0.0.0.0:9095", "token_kubernetes_secret": {
            "namespace": "ml-serving", "name": "mlchaos-receiver-token", "reload_seconds": 3600}}}]},
        "/extensions/0/notifications/token_kubernetes_secret/reload_seconds", "at most 900"),
    Bad("recovery-probe-without-tolerance", {**valid(), "extensions": [{"name": "mlchaos", "recovery": [
        {k: v for k, v in PROBE.items() if k != "tolerance"}]}]}, "/extensions/0/recovery/0",
        "needs a 'tolerance'"),
    *(Bad(f"endpoint-{name}", _endpoints(declaration), f"/extensions/0/endpoints/prom{pointer}", message)
      for name, declaration, pointer, message in [
          ("unknown-key", {"url": "http://p:9090", "bearer_token": "x"}, "/bearer_token",
           "endpoint 'prom': unknown key 'bearer_token'"),
          ("url-and-kubernetes", {"url": "http://p:9090", "kubernetes": {"namespace": "m", "service": "p",
                                                                        "port": 9090}}, "",
           "give url or kubernetes, not both"),
          ("no-url", {"ca_file": "/ca.crt"}, "", "needs url"),
          ("bad-url", {"url": "prom:9090"}, "/url", "url must be http(s)://HOST[:PORT][/PATH]"),
          ("bad-k8s-url", {"url": "k8s://monitoring/prometheus"}, "/url", "k8s://NAMESPACE/SERVICE:PORT"),
          ("kubernetes-without-port", {"kubernetes": {"namespace": "m", "service": "p"}}, "/kubernetes/port",
           "required: the Service's port"),
          ("cert-without-key", {"url": "https://p", "client_cert_file": "/c.crt"}, "/client_cert_file",
           "client_cert_file needs client_key_file too"),
          ("two-tokens", {"url": "https://p", "bearer_token_file": "/t", "bearer_token_env": "T"},
           "/bearer_token_env", "give one of bearer_token_file, bearer_token_env"),
          ("inline-password", {"url": "https://p", "basic_auth": {"username": "u", "password": "x"}},
           "/basic_auth/password", "a password is never written in the experiment"),
          ("authorization-header", {"url": "https://p", "headers": {"Authorization": "Bearer x"}},
           "/headers/Authorization", "would write a credential into the experiment"),
          ("bad-timeout", {"url": "https://p", "timeout": 0}, "/timeout", "timeout must be a number of seconds"),
          ("insecure-not-bool", {"url": "https://p", "insecure_skip_verify": "yes"}, "/insecure_skip_verify",
           "must be true or false"),
          ("unknown-secret", {"url": "https://p", "bearer_token_secret": "prom.token"}, "/bearer_token_secret",
           "no secret 'prom.token' in the experiment's secrets"),
      ]),
    Bad("endpoint-unknown-name", _endpoints({"url": "http://p:9090"}, _prometheus_probe(endpoint="prometeus")),
        "/method/0/provider/arguments/endpoint", "no endpoint named 'prometeus' is declared (declared: prom)"),
    Bad("endpoint-and-url", _endpoints({"url": "http://p:9090"}, _prometheus_probe(endpoint="prom",
                                                                                   url="http://p:9090")),
        "/method/0/provider/arguments/endpoint", "give url or endpoint, not both"),
]
