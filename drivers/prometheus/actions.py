"""Monitoring faults: inject a (mis-written) alert rule file into the sandbox Prometheus, and remove it.

A rule file goes to ``<state_dir>/monitoring/rules.d/<name>.yml``, which the sandbox
Prometheus loads (``rule_files`` glob). Each file is checked with ``promtool check
rules`` before it is written; Prometheus is then reloaded (``POST /-/reload``) and the
action waits until the file's groups show in ``GET /api/v1/rules``.
:func:`add_rule_file` announces its change record before writing; its undo is
:func:`remove_rule_file` (idempotent). ``url`` overrides the Prometheus URL (default: the
sandbox's), which is also the record's ``environment``; ``endpoint`` names a declared endpoint instead
(its credentials travel with every call; the undo names it too).

With ``namespace``, the Prometheus Operator form (:mod:`drivers.prometheus.operator`): the
checked rules become a labelled ``PrometheusRule`` ``mlchaos-drill-<name>`` in that namespace
(``labels``: what the operator's ruleSelector needs), created through the Kubernetes API
(``kubeconfig``, ``context``, ``in_cluster``, or the experiment's configuration), and the
rollback deletes exactly that object. The Prometheus to wait on is optional there: ``endpoint``,
``url`` (``k8s://`` goes through the API server's service proxy) or a declared ``prometheus`` endpoint.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from drivers._common.endpoints import endpoint_argument, http_for
from drivers._common.errors import http_errors
from drivers._common.http import get_json, refused
from drivers.kubernetes.prometheus_rules import object_name as operator_name
from drivers.prometheus.operator import add_rule_object, remove_rule_object
from drivers.prometheus.sandbox import DEFAULT_ENDPOINT as DEFAULT_ENDPOINT  # takes declared endpoints
from drivers.prometheus.sandbox import preflight_rule_files, prometheus_url, promtool, rules_dir
from mlchaos.driver_kit import ChangeRecord, DriverError, Target, announce, atomic_write, undo_function

UNDO_FUNC = "drivers.prometheus.actions.remove_rule_file"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,100}")
HTTP_TIMEOUT = 5.0


def add_rule_file(
    name: str,
    rules_yaml: str | None = None,
    path: str | None = None,
    url: str | None = None,
    timeout: float = 15,
    endpoint: str | None = None,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    in_cluster: bool | None = None,
    configuration: dict[str, Any] | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Load a Prometheus rule file (inline YAML or a file) into Prometheus; undo: remove_rule_file.

    Into the sandbox Prometheus (or the one at ``url`` / ``endpoint``) as a rule file; with
    ``namespace``, as a labelled PrometheusRule for the Prometheus Operator. A dry run checks the
    rules (promtool) and that Prometheus answers, and writes nothing.
    """
    if namespace is None and (labels is not None or kubeconfig or context or in_cluster):
        raise DriverError("labels, kubeconfig, context and in_cluster go with namespace (the PrometheusRule form)")
    if namespace is None:
        _check_name(name)
    else:
        operator_name(name)
    if (rules_yaml is None) == (path is None):
        raise DriverError("give exactly one of rules_yaml (the rule file's text) or path (a rule file)")
    text = rules_yaml
    if path is not None:
        try:
            text = Path(path).expanduser().read_text()
        except OSError as exc:
            raise DriverError(f"cannot read rule file {path}: {exc}") from exc
    text = str(text)
    if namespace is not None:
        _check_rules(name, text)
        return add_rule_object(name, text, (yaml.safe_load(text) or {}).get("groups"), path or "inline", namespace,
                               labels, url, endpoint, timeout, {"kubeconfig": kubeconfig, "context": context,
                                                                "in_cluster": in_cluster,
                                                                "configuration": configuration}, dry_run)
    base = prometheus_url(url, endpoint)
    groups = _check_rules(name, text)
    target = rules_dir(create=not dry_run) / f"{name}.yml"
    _loaded_groups(base, target)  # Prometheus answers (DriverError when not), before anything is announced
    record = ChangeRecord(
        driver="prometheus",
        action="add-rule-file",
        targets=[Target(kind="prometheus-rule-file", name=name, details={
            "path": str(target), "groups": groups, "alerts": _alert_names(text), "prometheus_url": base,
            "replaced": target.exists(),
        })],
        parameters={"name": name, "source": path or "inline"},
        undo={"func": UNDO_FUNC, "arguments": {"name": name, **({"url": url} if url else {}),
                                                **endpoint_argument(endpoint)}},
        dry_run=dry_run, environment=base,  # one named file: no population to choose from
    )
    announce(record)
    if dry_run:
        return record.to_dict()
    atomic_write(target, text)  # its temporary ".name.pid.tmp" is not matched by the rules.d/*.yml glob
    try:
        _reload(base)
        _wait_groups(base, target, groups, present=True, timeout=timeout)
    except DriverError:
        target.unlink(missing_ok=True)  # leave no half-applied fault behind
        _reload(base, strict=False)
        raise
    return record.to_dict()


@undo_function
def remove_rule_file(name: str, url: str | None = None, timeout: float = 15, endpoint: str | None = None,
                     namespace: str | None = None, change: str | None = None, uid: str | None = None,
                     kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None,
                     configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Roll back add_rule_file: delete the rule file (or exactly its PrometheusRule), wait until its groups are gone."""
    if namespace is not None:
        return remove_rule_object(name, namespace, change, uid, url, endpoint, timeout,
                                  {"kubeconfig": kubeconfig, "context": context, "in_cluster": in_cluster,
                                   "configuration": configuration})
    _check_name(name)
    base = prometheus_url(url, endpoint)
    target = rules_dir() / f"{name}.yml"
    existed = target.exists()
    target.unlink(missing_ok=True)
    _reload(base)  # also when the file was gone already: a reload that never happened must still take effect
    _wait_groups(base, target, [], present=False, timeout=timeout)
    return {"name": name, "path": str(target), "removed": existed, "already": [] if existed else [name]}


# -- helpers -----------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DriverError(f"rule file name must match {_NAME.pattern} (no path, no extension), got {name!r}")


def _check_rules(name: str, text: str) -> list[str]:
    """Run ``promtool check rules`` on the text; return its group names or raise DriverError."""
    tool = promtool()
    with tempfile.TemporaryDirectory(prefix="mlchaos-rules-") as tmp:
        candidate = Path(tmp) / f"{name}.yml"
        candidate.write_text(text)
        try:
            proc = subprocess.run([tool, "check", "rules", str(candidate)], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DriverError(f"cannot run promtool: {exc}") from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).replace(str(candidate), f"{name}.yml").strip()
        raise DriverError(f"invalid rule file {name!r} (promtool check rules):\n{output}")
    groups = [g.get("name") for g in (yaml.safe_load(text) or {}).get("groups") or []]
    if not groups:
        raise DriverError(f"rule file {name!r} has no rule groups")
    return [str(g) for g in groups]


def _alert_names(text: str) -> list[str]:
    """The alerts a (promtool-checked) rule file defines: a plan's probes may expect them."""
    groups = (yaml.safe_load(text) or {}).get("groups") or []
    return sorted({str(r["alert"]) for g in groups for r in g.get("rules") or [] if "alert" in r})


def _reload(base: str, strict: bool = True) -> None:
    try:
        http, capped = http_for(base)
        with http_errors(f"Prometheus at {base}", "POST /-/reload", capped(HTTP_TIMEOUT)):
            resp = http.post(f"{base}/-/reload", timeout=capped(HTTP_TIMEOUT))
        refused("Prometheus", base, "POST /-/reload", resp)
        problem = None if resp.ok else f"HTTP {resp.status_code}: {resp.text.strip()}"
    except DriverError as exc:
        problem = str(exc)
    if problem and strict:
        raise DriverError(f"Prometheus at {base} refused to reload its configuration ({problem});"
                          " is it started with --web.enable-lifecycle?")


def _loaded_groups(base: str, path: Path) -> list[str]:
    try:
        resp, body = get_json("Prometheus", base, "/api/v1/rules", None, HTTP_TIMEOUT)
    except DriverError as exc:
        raise DriverError(f"cannot read rules from Prometheus: {exc}") from None
    if not resp.ok or not isinstance(body, dict):
        raise DriverError(f"cannot read rules from Prometheus at {base}: HTTP {resp.status_code}: "
                          f"{resp.text[:200]!r}")
    groups = [g for g in body.get("data", {}).get("groups", []) if g.get("file") == str(path)]
    # a group counts once every rule in it has been evaluated (health "ok" or "err", not "unknown"),
    # so a probe right after this action sees the rule's real health
    return [g["name"] for g in groups if all(r.get("health") != "unknown" for r in g.get("rules", []))]


def _wait_groups(base: str, path: Path, groups: list[str], present: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        loaded = _loaded_groups(base, path)
        done = sorted(loaded) == sorted(groups) if present else not loaded
        if done:
            return
        if time.monotonic() >= deadline:
            what = f"groups {groups} loaded and evaluated" if present else "its groups unloaded"
            raise DriverError(f"Prometheus at {base} did not show {path.name} with {what} within {timeout} s"
                              f" (now: {loaded})")
        time.sleep(0.05)


def preflight(func: str, arguments: dict[str, Any]) -> list[str]:
    """Validation hook (not an action): rule files go into the sandbox Prometheus, which must be installed
    (the PrometheusRule form, with ``namespace``, needs promtool only)."""
    if arguments.get("namespace") is not None:
        try:
            promtool()
        except DriverError as exc:
            return [str(exc)]
        return []
    return preflight_rule_files(arguments)
