"""Chaos Toolkit's validator and mlchaos' side by side: the verdicts of both on one experiment, and the
mutations (one field changed at a time) that the differential test feeds them.

chaoslib's validator (``chaoslib.experiment.ensure_experiment_is_valid``) imports python providers' modules
(only ``testdrivers`` and ``chaoslib`` are named here), looks process programs up on PATH and reads env
configuration; it never calls a provider. The base experiments avoid vault secrets (the only thing it would
reach the network for), and the test also forbids sockets while it compares.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlchaos.experiment.loader import parse_text
from mlchaos.experiment.validation import examine

DELETE = object()  # the mutation removes the field


@dataclass(frozen=True)
class Verdicts:
    """What both validators said about one experiment."""

    chaoslib_ok: bool
    chaoslib_error: str
    problems: tuple[str, ...]  # mlchaos' problems (messages)
    warnings: tuple[str, ...]  # mlchaos' warnings (messages)

    @property
    def mlchaos_ok(self) -> bool:
        return not self.problems

    @property
    def agree(self) -> bool:
        return self.chaoslib_ok == self.mlchaos_ok


def chaoslib_verdict(data: dict[str, Any]) -> tuple[bool, str]:
    """(accepted, why not) from chaoslib's own validator, on a private copy (it mutates what it is given). A
    crash inside it (AttributeError on a value of the wrong type) is a refusal: `chaos validate` fails too."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ensure_experiment_is_valid(copy.deepcopy(data))
        except ChaosException as exc:
            return False, str(exc)
        except Exception as exc:  # chaoslib assumes types it does not check
            return False, f"crash: {type(exc).__name__}: {exc}"
    return True, ""


def verdicts(data: dict[str, Any]) -> Verdicts:
    """Both validators' verdicts on ``data``."""
    ok, error = chaoslib_verdict(data)
    findings = examine(parse_text(json.dumps(data), Path("experiment.json")))
    return Verdicts(ok, error, tuple(p.message for p in findings.problems),
                    tuple(w.message for w in findings.warnings))


def mutated(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A copy of ``data`` with the field at ``path`` set to ``value`` (or removed: :data:`DELETE`)."""
    data = copy.deepcopy(data)
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    if value is DELETE:
        if isinstance(node, dict):
            node.pop(path[-1], None)
        else:
            del node[path[-1]]
    else:
        node[path[-1]] = copy.deepcopy(value)
    return data


# --- the valid experiments mutated -------------------------------------------------------------------------
def _python(name: str, kind: str = "action", func: str = "echo", **arguments: Any) -> dict[str, Any]:
    return {"type": kind, "name": name,
            "provider": {"type": "python", "module": "testdrivers", "func": func, "arguments": arguments}}


PYTHON_BASE: dict[str, Any] = {
    "version": "1.0.0",
    "title": "parity",
    "description": "python providers only",
    "tags": ["parity"],
    "configuration": {"limit": 3, "word": "plain"},
    "secrets": {"auth": {"token": "not-a-real-secret"}},
    "steady-state-hypothesis": {"title": "all is well", "probes": [
        {**_python("ok", "probe", value=True), "tolerance": True}]},
    "method": [
        {**_python("act", value="${word}"), "pauses": {"after": 0}},
        {**_python("look", "probe", value=1), "timeout": 5},
    ],
    "rollbacks": [_python("undo")],
}

OTHER_BASE: dict[str, Any] = {
    "title": "parity, other providers",
    "description": "process and http providers, references, chaoslib's own module",
    "steady-state-hypothesis": {"title": "h", "probes": [
        {"type": "probe", "name": "status", "tolerance": 0,
         "provider": {"type": "process", "path": "true", "arguments": ["--quiet"]}}]},
    "method": [
        {"type": "probe", "name": "http", "provider": {"type": "http", "url": "http://127.0.0.1:9/health",
                                                         "method": "GET", "headers": {"accept": "text/plain"},
                                                         "timeout": 2}},
        {"type": "probe", "name": "subst", "provider": {"type": "python", "module": "chaoslib",
                                                          "func": "decode_bytes", "arguments": {"data": "x"}}},
        {"ref": "status"},
    ],
    "rollbacks": [],
}

BASES = {"python": PYTHON_BASE, "other": OTHER_BASE}

_CONTROL = [{"name": "tracing", "provider": {"type": "python", "module": "testdrivers"}}]
_ONE = _CONTROL[0]
CONTROLS = [_CONTROL, None, [], "x", [{"name": "x"}], [{**_ONE, "scope": "before"}], [{**_ONE, "scope": "during"}],
            [{**_ONE, "automatic": False}], [{**_ONE, "provider": {"type": "python"}}],
            [{**_ONE, "provider": {"type": "python", "module": "testdriverz"}}], [{**_ONE, "ref": "tracing"}]]
_UNSET = "MLCHAOS_PARITY_SURELY_UNSET"

# field -> values tried there (DELETE removes it); paths index into the base named first
TOP_LEVEL: dict[str, list[Any]] = {
    "title": [DELETE, "", "t", 3, " "],
    "description": [DELETE, "", "d", 3, " "],
    "tags": [DELETE, [], ["a", "b"], ["a", ""], [""], ["a", 3]],
    "dry_run": [True, False, "yes"],
    "controls": CONTROLS,
    "runtime": [{"rollbacks": {"strategy": "always"}}],
    "methd": [[]],
    "method": [DELETE, [], {}],
    "rollbacks": [DELETE, []],
    "steady-state-hypothesis": [DELETE, {"title": "h"}, {"title": "", "probes": []}, {"title": "h", "probes": []}],
    "extensions": [[], [{"name": "other", "anything": 1}], [{"name": ""}], [{"name": "mlchaos"}],
                   [{"name": "mlchaos", "activity_timeout": 0}], [{"name": "mlchaos", "activty_timeout": 3}]],
    "configuration": [{}, {"x": {"type": "env", "key": _UNSET}}, {"x": {"type": "env", "key": _UNSET, "default": 1}}],
    "secrets": [{}, {"s": {"k": {"type": "env", "key": _UNSET}}}],
}
ACTIVITY: dict[str, list[Any]] = {
    "type": [DELETE, "acton", "probe", "action"],
    "name": [DELETE, "", "renamed"],
    "timeout": [DELETE, 5, 0.5, 0, -1, "soon", "${limit}"],
    "pauses": [{"before": 1}, {"before": "${limit}"}, {"before": "soon"}, {"before": -1}, {"during": 1}],
    "background": [True, False, "yes"],
    "controls": CONTROLS,
    "tiemout": [1],
    "provider": [DELETE, {}],
}
PYTHON_PROVIDER: dict[str, list[Any]] = {
    "type": [DELETE, "grpc", "process"],
    "module": [DELETE, "", "testdriverz"],
    "func": [DELETE, "", "ecko", "fail"],
    "arguments": [DELETE, {}, {"valeu": 1}, {"value": "${nowhere}"}, "x"],
    "timeout": [3, 0.25, "${limit}", "soon", -1],
    "secrets": [["auth"], ["nope"]],
}
PROCESS_PROVIDER: dict[str, list[Any]] = {
    "path": [DELETE, "", "/no/such/program", "printf", "${program}", str(Path(__file__))],
    "arguments": [DELETE, [], ["-a", "b"], "-a 'b c'", "'unclosed", {"-a": "b"}, 3],
    "timeout": [1, "soon"],
}
HTTP_PROVIDER: dict[str, list[Any]] = {
    "url": [DELETE, "", "ftp://x", "http://127.0.0.1:9/other"],
    "headers": ["x", {}],
    "timeout": [1, [1, 2], "soon"],
    "method": ["POST"],
}
TOLERANCE = [DELETE, True, 0, "x", 1.5, [1, 2], [2, 1], {"type": "range", "range": [1, 2]},
             {"type": "regex", "pattern": "(("}, {"type": "regex", "pattern": "o+"},
             {"type": "jsonpath", "path": "$.a"},
             {"type": "between"}, {"type": "probe", "name": "t", "provider": {
                 "type": "python", "module": "testdrivers", "func": "echo"}}]

PYTHON_ACTIVITIES = [("method", 0), ("method", 1), ("rollbacks", 0), ("steady-state-hypothesis", "probes", 0)]


def fields() -> list[tuple[str, tuple[str | int, ...], list[Any]]]:
    """Every (base, path, values) the differential test mutates."""
    found: list[tuple[str, tuple[str | int, ...], list[Any]]] = []
    for key, values in TOP_LEVEL.items():
        found.append(("python", (key,), values))
    for where in PYTHON_ACTIVITIES:
        found += [("python", (*where, key), values) for key, values in ACTIVITY.items()]
        found += [("python", (*where, "provider", key), values) for key, values in PYTHON_PROVIDER.items()]
    found.append(("python", ("steady-state-hypothesis", "probes", 0, "tolerance"), TOLERANCE))
    found.append(("other", ("steady-state-hypothesis", "probes", 0, "tolerance"), TOLERANCE))
    found += [("other", ("steady-state-hypothesis", "probes", 0, "provider", key), values)
              for key, values in PROCESS_PROVIDER.items()]
    found += [("other", ("method", 0, "provider", key), values) for key, values in HTTP_PROVIDER.items()]
    found += [("other", ("method", 0, key), values) for key, values in ACTIVITY.items()]
    found.append(("other", ("method", 2, "ref"), ["", "nothing", "http", 3]))
    return found


# --- where mlchaos deliberately differs (each listed in docs/chaostoolkit.md) ------------------------------
@dataclass(frozen=True)
class Deliberate:
    """One deliberate difference: mlchaos' messages that show it, and the phrase docs/chaostoolkit.md lists
    it under."""

    doc: str
    pattern: re.Pattern[str]


STRICTER = [  # chaoslib accepts, mlchaos refuses
    Deliberate("unknown keys", re.compile(r"^unknown key ")),
    Deliberate("controls", re.compile(r"control module .* cannot be imported|only python controls run|"
                                      r"automatic must be true or false")),
    Deliberate("the mlchaos extension", re.compile(r"mlchaos setting|activity_timeout: ")),
    Deliberate("types", re.compile(r"must be a (string|list|mapping)|must be a list of (strings|activities)|"
                                   r"python arguments must be a mapping|must be true or false|"
                                   r"required: a non-empty string '(title|description)'|required: a non-empty 'name'|"
                                   r"required: (the URL to call|the program to run|the Python module|the function)")),
    Deliberate("seconds", re.compile(r"timeout must be|an http timeout is|a pause is|pauses takes only")),
    Deliberate("unresolved variables", re.compile(r"^unresolved variable |unknown secrets scope")),
    Deliberate("tolerances", re.compile(r"range tolerance is empty|hypothesis needs a title|only probes may check")),
    Deliberate("control characters", re.compile(r"contains control characters")),
    Deliberate("process arguments", re.compile(r"process arguments cannot be split")),
    Deliberate("URLs", re.compile(r"not an http\(s\) URL")),
]
LOOSER = [  # chaoslib refuses, mlchaos runs it (and says so)
    Deliberate("timeouts from the configuration", re.compile(r"Chaos Toolkit rejects a timeout that is not a number")),
]


def explanation(verdict: Verdicts) -> str | None:
    """Which deliberate difference explains a disagreement (None: unexplained, or no disagreement)."""
    if verdict.agree:
        return None
    if verdict.chaoslib_ok:  # mlchaos stricter: every one of its problems must be a deliberate one
        docs = [next((d.doc for d in STRICTER if d.pattern.search(p)), None) for p in verdict.problems]
        return None if None in docs else ", ".join(sorted(set(docs)))  # type: ignore[arg-type]
    for deliberate in LOOSER:
        if any(deliberate.pattern.search(w) for w in verdict.warnings):
            return deliberate.doc
    return None
