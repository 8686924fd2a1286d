"""Chaos Toolkit control declarations: where an experiment declares them, what makes one wrong, and the
settings file's global ones (``~/.chaostoolkit/settings.yaml``, what ``chaos`` reads).

The rules are chaoslib's ``validate_controls``, plus: the module must import (chaoslib only warns,
then runs without the control) and only python controls are accepted (chaoslib runs no other kind,
silently). A control module's own ``validate_control`` is called, as chaoslib calls it.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from mlchaos.errors import InvalidInput
from mlchaos.experiment.extensions import use_chaostoolkit_logging


# --- the settings file ------------------------------------------------------------------------
def settings_path(path: str | Path | None = None) -> Path:
    """The Chaos Toolkit settings file: ``path``, or ``~/.chaostoolkit/settings.yaml`` (what ``chaos`` reads)."""
    if path is not None:
        return Path(path).expanduser()
    return Path("~/.chaostoolkit/settings.yaml").expanduser()


def read_settings(path: str | Path | None = None) -> dict[str, Any]:
    """Chaos Toolkit's settings (a mapping); ``{}`` when the default file does not exist.

    A file named explicitly must exist; an unreadable or malformed one is an error naming it
    (``chaos`` logs it and carries on without its controls)."""
    file = settings_path(path)
    if not file.exists():
        if path is not None:
            raise InvalidInput(f"{file}: no such settings file")
        return {}
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{file}: cannot read the Chaos Toolkit settings: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{file}: the Chaos Toolkit settings must be a mapping")
    controls = data.get("controls")
    if controls is not None:
        if not isinstance(controls, dict) or not all(isinstance(c, dict) for c in controls.values()):
            raise InvalidInput(f"{file}: controls: must map each control's name to its declaration")
        for name, control in controls.items():
            for message in declaration_problems({**control, "name": name}, None):
                raise InvalidInput(f"{file}: controls: {name}: {message[1]}")
    return data


def global_controls(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The controls the settings declare (``controls: {NAME: {provider: ...}}``), each named, as chaoslib's
    ``load_global_controls`` builds them."""
    return [{**copy.deepcopy(control), "name": name} for name, control in (settings.get("controls") or {}).items()]


# --- validation -------------------------------------------------------------------------------
def declarations(experiment: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every control declared in an experiment, with its JSON pointer (chaoslib's ``get_controls`` order)."""
    def listed(value: Any, pointer: str) -> Iterator[tuple[str, Any]]:
        if isinstance(value, list):
            for index, control in enumerate(value):
                yield f"{pointer}/{index}", control

    yield from listed(experiment.get("controls"), "/controls")
    hypothesis = experiment.get("steady-state-hypothesis")
    if isinstance(hypothesis, dict):
        yield from listed(hypothesis.get("controls"), "/steady-state-hypothesis/controls")
        for index, probe in enumerate(_as_list(hypothesis.get("probes"))):
            if isinstance(probe, dict) and "controls" in probe:  # (most have none: no pointer to build)
                yield from listed(probe["controls"], f"/steady-state-hypothesis/probes/{index}/controls")
    for section in ("method", "rollbacks"):
        for index, activity in enumerate(_as_list(experiment.get(section))):
            if isinstance(activity, dict) and "controls" in activity:
                yield from listed(activity["controls"], f"/{section}/{index}/controls")


def declaration_problems(control: Any, top_level_names: set[str] | None) -> Iterator[tuple[str, str]]:
    """What is wrong with one control declaration: (relative pointer, message). chaoslib's
    ``validate_controls`` rules, plus: the module must import (chaoslib only warns, then runs without it),
    and its own ``validate_control`` is called as chaoslib calls it."""
    if not isinstance(control, dict):
        yield "", "a control must be a mapping with a 'name' and a 'provider'"
        return
    if "ref" in control and top_level_names is not None and control["ref"] not in top_level_names:
        yield "/ref", f"no control named {control['ref']!r} is declared at the top level"
    name = control.get("name")
    if not isinstance(name, str) or not name:
        yield "/name", "required: a control needs a non-empty 'name'"
        return
    scope = control.get("scope")
    if scope is not None and scope not in ("before", "after"):
        yield "/scope", f"scope must be 'before' or 'after', got {scope!r}"
    automatic = control.get("automatic", True)
    if not isinstance(automatic, bool):
        yield "/automatic", f"automatic must be true or false, got {automatic!r}"
    provider = control.get("provider")
    if not isinstance(provider, dict):
        yield "/provider", "required: a control needs a 'provider' mapping"
        return
    if provider.get("type") != "python":
        yield "/provider/type", f"only python controls run (Chaos Toolkit runs no other), got {provider.get('type')!r}"
        return
    module = provider.get("module")
    if not isinstance(module, str) or not module:
        yield "/provider/module", "required: the Python module of the control"
        return
    arguments = provider.get("arguments", {})
    if not isinstance(arguments, dict):
        yield "/provider/arguments", "a control's arguments must be a mapping"
        return
    use_chaostoolkit_logging()  # a control module may import logzero, as extensions do (chaos provides it)
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # an ImportError deep inside the module too: say which
        yield "/provider/module", (f"control module {module!r} cannot be imported ({type(exc).__name__}: {exc}); "
                                   f"Chaos Toolkit would run without this control, mlchaos refuses to")
        return
    own_check = getattr(mod, "validate_control", None)
    if callable(own_check):
        try:
            own_check(copy.deepcopy(control))
        except Exception as exc:
            yield "", f"control {name!r}: its own validation failed: {exc}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
