"""The one surface a driver imports from mlchaos (docs/architecture.md, "drivers").

A driver is a package of plain keyword-argument functions (``drivers/<name>/actions.py``,
``probes.py``). What it needs from the core is here, and only here:

* errors: :class:`DriverError` (any failure; becomes a failed activity), :class:`TargetNotFound`
  (a selector matched nothing), and :class:`SandboxError` and :class:`CertificateError`, which a driver
  translates once (``drivers._common.errors.translated``);
* change records: an action builds a :class:`ChangeRecord` *before* it touches anything,
  :func:`announce` s it (the runner journals it at once and checks it against the bounds),
  applies the fault and returns ``record.to_dict()``; :func:`local_environment` names this host;
* undos: every function a change record names as its undo is declared with :func:`undo_function`
  (recovery refuses to call anything else a journal names);
* the run it is part of: :func:`current_run` (None outside a run): the faults injected so
  far and the run's notification receiver;
* the TTL watchdog: :func:`start_record_watchdog` for a fault that cannot expire by itself,
  :func:`stop_watchdog` / :func:`stop_covered` in its undo;
* probe outputs: :class:`NamedCount` (a count whose text names what it counted);
* helpers: :func:`state_dir` and :func:`private_dir` (a folder only this user may enter, 0700),
  :func:`atomic_write` (fsync'd), :func:`read_json`, :func:`write_json`, :func:`wait_for`, the ``procfs``
  reader, the ``certificates`` library, the ``alert_rules`` renderer, :func:`label_text` (an alert as
  ``Name{label="value"}``), :func:`proxy_api_headers` (the fault proxy's API token, as a header) and
  ``endpoints`` (the experiment's declared endpoints: :mod:`mlchaos.lib.endpoints`).

Code that talks to mlchaos' own reference systems (``mlchaos.sandbox``, ``mlchaos.containers``,
``mlchaos.proxy``) lives in a driver's adapter module (``drivers/<name>/sandbox.py``), the only
place a driver may import them. A unit test enforces both rules.

Every name is imported on first use (:func:`__getattr__`, from the table :data:`_WHERE`): validating an
experiment imports its driver modules, and a driver that only needs :class:`DriverError` at import time
should not load the alert rules, the watchdog and the state files with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names are; each is imported on first use (see __getattr__)
    from mlchaos.errors import CertificateError, DriverError, SandboxError, TargetNotFound
    from mlchaos.lib import certificates, endpoints, procfs
    from mlchaos.lib.counts import NamedCount
    from mlchaos.lib.files import atomic_write, read_json, write_json
    from mlchaos.lib.proxy_token import proxy_api_headers
    from mlchaos.lib.state_dir import private_dir, state_dir
    from mlchaos.lib.waiting import wait_for
    from mlchaos.monitoring import alert_rules
    from mlchaos.monitoring.alert_notification import ALERT_STATUSES, Notification, label_text
    from mlchaos.safety.changes import ChangeRecord, Target, announce, local_environment
    from mlchaos.safety.declared_undos import undo_function
    from mlchaos.safety.run_context import current as current_run
    from mlchaos.safety.watchdog import start_record_watchdog, stop_covered, stop_watchdog

# each name: (its module, its name there; None: the module itself). The same names as the imports above and
# __all__ (tests/unit/test_driver_kit_lazy.py compares the three)
_WHERE: dict[str, tuple[str, str | None]] = {
    "CertificateError": ("mlchaos.errors", "CertificateError"),
    "DriverError": ("mlchaos.errors", "DriverError"),
    "SandboxError": ("mlchaos.errors", "SandboxError"),
    "TargetNotFound": ("mlchaos.errors", "TargetNotFound"),
    "certificates": ("mlchaos.lib.certificates", None),  # loads cryptography (tens of ms)
    "endpoints": ("mlchaos.lib.endpoints", None),
    "procfs": ("mlchaos.lib.procfs", None),
    "NamedCount": ("mlchaos.lib.counts", "NamedCount"),
    "atomic_write": ("mlchaos.lib.files", "atomic_write"),
    "read_json": ("mlchaos.lib.files", "read_json"),
    "write_json": ("mlchaos.lib.files", "write_json"),
    "proxy_api_headers": ("mlchaos.lib.proxy_token", "proxy_api_headers"),
    "private_dir": ("mlchaos.lib.state_dir", "private_dir"),
    "state_dir": ("mlchaos.lib.state_dir", "state_dir"),
    "wait_for": ("mlchaos.lib.waiting", "wait_for"),
    "alert_rules": ("mlchaos.monitoring.alert_rules", None),
    "ALERT_STATUSES": ("mlchaos.monitoring.alert_notification", "ALERT_STATUSES"),
    "Notification": ("mlchaos.monitoring.alert_notification", "Notification"),
    "label_text": ("mlchaos.monitoring.alert_notification", "label_text"),
    "ChangeRecord": ("mlchaos.safety.changes", "ChangeRecord"),
    "Target": ("mlchaos.safety.changes", "Target"),
    "announce": ("mlchaos.safety.changes", "announce"),
    "local_environment": ("mlchaos.safety.changes", "local_environment"),
    "undo_function": ("mlchaos.safety.declared_undos", "undo_function"),
    "current_run": ("mlchaos.safety.run_context", "current"),
    "start_record_watchdog": ("mlchaos.safety.watchdog", "start_record_watchdog"),
    "stop_covered": ("mlchaos.safety.watchdog", "stop_covered"),
    "stop_watchdog": ("mlchaos.safety.watchdog", "stop_watchdog"),
}

__all__ = [
    "ALERT_STATUSES", "CertificateError", "ChangeRecord", "DriverError", "NamedCount", "Notification", "SandboxError",
    "Target",
    "TargetNotFound",
    "alert_rules", "announce", "atomic_write", "certificates", "current_run", "endpoints", "label_text",
    "local_environment",
    "private_dir", "procfs", "proxy_api_headers", "read_json", "start_record_watchdog", "state_dir",
    "stop_covered", "stop_watchdog", "undo_function", "wait_for", "write_json",
]


def __getattr__(name: str) -> Any:
    """Import ``name`` from where it lives, on first use (``from mlchaos.driver_kit import X`` comes here once;
    then X is an ordinary attribute of this module)."""
    try:
        module, attribute = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
