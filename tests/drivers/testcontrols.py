"""A Chaos Toolkit control written for the tests: it logs every hook it gets, and misbehaves on request.

Each call appends one JSON line to the file named by the control's ``log`` argument: the hook, what
its ``context`` is (a title, a name or a string), what ``state`` is, and which of chaoslib's arguments
it got. Arguments that make a hook misbehave (each names the hook, e.g. ``before_method_control``):
``raise_in`` (raises RuntimeError), ``hang_in`` (blocks ``hang_seconds``), ``interrupt_in`` (raises
chaoslib's InterruptExecution), ``exit_in`` with ``exit`` = ``ungracefully`` | ``gracefully`` (calls
``chaoslib.exit``), ``mutate_in`` (changes what it is given: the title of ``experiment``, and the name and provider
arguments of an activity ``context``: a control may, and the run must not follow).
"""

from __future__ import annotations

import json
import threading
from typing import Any

HOOKS = [f"{scope}_{level}_control" for level in ("experiment", "hypothesis", "method", "rollback", "activity")
         for scope in ("before", "after")] + ["before_loading_experiment_control", "after_loading_experiment_control"]
_configured: dict[str, Any] = {}


def _describe(value: Any) -> Any:
    if isinstance(value, dict):
        for key in ("title", "name"):
            if isinstance(value.get(key), str):
                return {key: value[key]}
        if "steady_state_met" in value:
            return {"steady_state_met": value["steady_state_met"]}
        if "activity" in value:
            return {"run": value["activity"].get("name"), "status": value.get("status")}
        if "status" in value:
            return {"journal_status": value["status"], "has_mlchaos": "mlchaos" in value}
        return sorted(value)
    if isinstance(value, list):
        return [_describe(v) for v in value]
    return value


def _write(log: str | None, entry: dict[str, Any]) -> None:
    path = log or _configured.get("log")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")


def _mutate(context: Any, experiment: Any) -> None:
    if isinstance(experiment, dict):
        experiment["title"] = "changed by a control"
    if isinstance(context, dict) and "provider" in context:
        context["name"] = "renamed-by-a-control"
        context["provider"].setdefault("arguments", {})["value"] = "changed by a control"


def _misbehave(hook: str, arguments: dict[str, Any]) -> None:
    if arguments.get("raise_in") == hook:
        raise RuntimeError(f"control failed in {hook}")
    if arguments.get("hang_in") == hook:
        threading.Event().wait(float(arguments.get("hang_seconds", 30)))
    if arguments.get("interrupt_in") == hook:
        from chaoslib.exceptions import InterruptExecution

        raise InterruptExecution(f"stop from {hook}")
    if arguments.get("exit_in") == hook:
        from chaoslib import exit as chaos_exit

        if arguments.get("exit") == "gracefully":
            chaos_exit.exit_gracefully()
        else:
            chaos_exit.exit_ungracefully()


EVENTS = ["running", "finish", "interrupted", "signal_exit", "start_continuous_hypothesis",
          "continuous_hypothesis_iteration", "continuous_hypothesis_completed", "start_hypothesis_before",
          "hypothesis_before_completed", "start_hypothesis_after", "hypothesis_after_completed", "start_method",
          "method_completed", "start_rollbacks", "rollbacks_completed", "start_activity", "activity_completed"]


def _event_logger(path: str) -> Any:
    """A chaoslib RunEventHandler that logs each event (and what its arguments are) to ``path``."""
    from chaoslib.run import RunEventHandler

    def method(event: str) -> Any:
        def log(self: Any, *args: Any) -> None:
            _write(path, {"event": event, "args": [_describe(a) if not hasattr(a, "fail_fast") else "schedule"
                                                   for a in args]})
        return log

    return type("EventLog", (RunEventHandler,), {event: method(event) for event in EVENTS})()


def configure_control(configuration: Any = None, secrets: Any = None, settings: Any = None,
                      experiment: Any = None, event_registry: Any = None, **arguments: Any) -> None:
    """Remember where to log (cleanup_control gets no arguments), then log. With ``events`` (a path), register
    a run event handler that logs every event there."""
    _configured.update(arguments)
    if arguments.get("events") and event_registry is not None:
        event_registry.register(_event_logger(arguments["events"]))
    _write(arguments.get("log"), {"hook": "configure_control", "experiment": _describe(experiment),
                                  "configuration": configuration, "secret_keys": sorted(secrets or {}),
                                  "settings": sorted(settings or {}), "event_registry": event_registry is not None,
                                  "arguments": sorted(arguments)})
    _misbehave("configure_control", arguments)


def cleanup_control() -> None:
    """Log; forget the configuration."""
    _write(None, {"hook": "cleanup_control"})
    _misbehave("cleanup_control", _configured)
    _configured.clear()


def _make(hook: str) -> Any:
    def control(context: Any, state: Any = None, configuration: Any = None, secrets: Any = None,
                settings: Any = None, experiment: Any = None, extensions: Any = None, **arguments: Any) -> None:
        _write(arguments.get("log"), {
            "hook": hook, "context": _describe(context), "state": _describe(state),
            "configuration": configuration, "secret_keys": sorted(secrets or {}),
            "settings": sorted(settings or {}), "experiment": _describe(experiment),
            "extensions": extensions is not None, "arguments": sorted(arguments)})
        if arguments.get("mutate_in") == hook:
            _mutate(context, experiment)
        _misbehave(hook, arguments)

    def loading(context: Any, state: Any = None, configuration: Any = None, secrets: Any = None,
                settings: Any = None, experiment: Any = None, **arguments: Any) -> None:
        # no ``extensions``: chaoslib reads it from the experiment, which does not exist yet when loading
        control(context, state, configuration, secrets, settings, experiment, None, **arguments)

    chosen = loading if "loading" in hook else control
    chosen.__name__ = hook
    chosen.__doc__ = f"Log the call of {hook}."
    return chosen


for _hook in HOOKS:
    globals()[_hook] = _make(_hook)
