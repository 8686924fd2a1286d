"""Reports of runs (HTML, JUnit XML, Markdown), the ML Test Score they verify, and results as metrics.

``write_reports(journals, out_dir, formats)`` is what ``mlchaos report``, ``mlchaos run --report-dir``
and a suite runner call; see docs/reports.md. Names are imported lazily, so that ``mlchaos --help``
(which declares the report options) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FORMATS": "mlchaos.reports.writer",
    "render": "mlchaos.reports.writer",
    "write_reports": "mlchaos.reports.writer",
    "RunReport": "mlchaos.reports.types",
    "Suite": "mlchaos.reports.types",
    "build_suite": "mlchaos.reports.reader",
    "load_journal": "mlchaos.reports.reader",
    "update_textfile": "mlchaos.reports.metrics",
    "push": "mlchaos.reports.metrics",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlchaos.reports' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
