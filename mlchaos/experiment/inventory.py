"""What an experiment would load or run: an experiment file is code.

Every python provider imports a module (and validation already imports it to check
signatures); every process provider runs a program; every http provider makes a call.
``mlchaos validate`` lists them all so that a reviewer sees the code behind a file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlchaos.experiment.problems import printable
from mlchaos.experiment.settings import mlchaos_extension


@dataclass
class Inventory:
    """Python modules (with their functions), programs and HTTP calls, in first-seen order."""

    python: dict[str, list[str]] = field(default_factory=dict)
    processes: list[str] = field(default_factory=list)
    http: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per module, program and call, e.g. ``loads python: drivers.process.actions (kill_replicas)``."""
        result = [f"loads python: {printable(m)} ({', '.join(map(printable, f))})" for m, f in self.python.items()]
        result += [f"runs process: {printable(p)}" for p in self.processes]
        result += [f"calls http: {printable(c)}" for c in self.http]
        return result


def inventory(data: dict[str, Any]) -> Inventory:
    """Everything the activities of a validated experiment would load, run or call."""
    found = Inventory()
    for activity in _activities(data):
        _add(found, activity.get("provider"))
        tolerance = activity.get("tolerance")
        if isinstance(tolerance, dict) and tolerance.get("type") == "probe":
            _add(found, tolerance.get("provider"))
    return found


def _activities(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Hypothesis probes, method, rollbacks, and the mlchaos extension's recovery probes and guards.

    ``{ref: ...}`` entries are skipped: they name an activity declared (and listed) elsewhere.
    """
    hypothesis = data.get("steady-state-hypothesis")
    sections = [hypothesis.get("probes") if isinstance(hypothesis, dict) else None,
                data.get("method"), data.get("rollbacks")]
    extension = mlchaos_extension(data) or {}
    sections += [extension.get("recovery"), extension.get("guards")]
    for section in sections:
        for activity in section if isinstance(section, list) else []:
            if isinstance(activity, dict) and "ref" not in activity:
                yield activity


def _add(found: Inventory, provider: Any) -> None:
    if not isinstance(provider, dict):
        return
    kind = provider.get("type")
    if kind == "python":
        functions = found.python.setdefault(str(provider.get("module")), [])
        func = str(provider.get("func"))
        if func not in functions:
            functions.append(func)
    elif kind == "process":
        program = resolve_program(str(provider.get("path")))
        if program not in found.processes:
            found.processes.append(program)
    elif kind == "http":
        call = f"{str(provider.get('method') or 'GET').upper()} {provider.get('url')}"
        if call not in found.http:
            found.http.append(call)


def resolve_program(path: str) -> str:
    """The absolute path a relative program name resolves to on PATH (as it would run now)."""
    if "${" in path:
        return f"{path} (resolved at run time)"
    if os.path.isabs(path):
        return path
    resolved = shutil.which(path)
    if resolved:
        return os.path.abspath(resolved)
    return f"{path} (not found)"
