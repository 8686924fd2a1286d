"""Reports of runs (HTML, JUnit XML, Markdown), the ML Test Score they verify, and results as metrics.

``write_reports(journals, out_dir, formats)`` is what ``mlchaos report``, ``mlchaos run --report-dir``
and a suite runner call; see docs/reports.md.
"""

from mlchaos.reports.model import RunReport, Suite, build_suite, load_journal
from mlchaos.reports.writer import FORMATS, render, write_reports

__all__ = ["FORMATS", "RunReport", "Suite", "build_suite", "load_journal", "render", "write_reports"]
