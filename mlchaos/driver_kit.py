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
* helpers: :func:`state_dir` and :func:`private_dir` (a folder only this user may enter, 0700),
  :func:`atomic_write` (fsync'd), :func:`read_json`, :func:`write_json`, :func:`wait_for`, the ``procfs``
  reader, the ``certificates`` library, the ``alert_rules`` renderer, :func:`label_text` (an alert as
  ``Name{label="value"}``), :func:`proxy_api_headers` (the fault proxy's API token, as a header) and
  ``endpoints`` (the experiment's declared endpoints: :mod:`mlchaos.lib.endpoints`).

Code that talks to mlchaos' own reference systems (``mlchaos.sandbox``, ``mlchaos.containers``,
``mlchaos.proxy``) lives in a driver's adapter module (``drivers/<name>/sandbox.py``), the only
place a driver may import them. A unit test enforces both rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlchaos.errors import CertificateError, DriverError, SandboxError, TargetNotFound
from mlchaos.lib import endpoints, procfs
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

if TYPE_CHECKING:  # imported on first use: see __getattr__
    from mlchaos.lib import certificates

__all__ = [
    "ALERT_STATUSES", "CertificateError", "ChangeRecord", "DriverError", "Notification", "SandboxError", "Target",
    "TargetNotFound",
    "alert_rules", "announce", "atomic_write", "certificates", "current_run", "endpoints", "label_text",
    "local_environment",
    "private_dir", "procfs", "proxy_api_headers", "read_json", "start_record_watchdog", "state_dir",
    "stop_covered", "stop_watchdog", "undo_function", "wait_for", "write_json",
]


def __getattr__(name: str) -> Any:
    """``certificates`` is imported when a driver first uses it: it loads ``cryptography`` (tens of ms), which
    validating or running an experiment without a TLS fault never needs."""
    if name == "certificates":
        from mlchaos.lib import certificates

        return certificates
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
