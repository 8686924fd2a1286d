"""Write a suite's reports to files (what ``mlchaos report``, ``run --report-dir`` and a suite runner call)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mlchaos.errors import InvalidInput
from mlchaos.lib.files import atomic_write
from mlchaos.reports.html import render_html
from mlchaos.reports.junit import render_junit
from mlchaos.reports.markdown import render_markdown
from mlchaos.reports.reader import build_suite
from mlchaos.reports.types import RunReport, Suite

RENDERERS: dict[str, Callable[[Suite], str]] = {"html": render_html, "junit": render_junit,
                                                "markdown": render_markdown}
FILE_NAMES = {"html": "report.html", "junit": "junit.xml", "markdown": "report.md"}
FORMATS = tuple(RENDERERS)

Journals = Iterable[str | os.PathLike[str] | Mapping[str, Any] | RunReport]


def render(suite: Suite, format: str) -> str:  # noqa: A002 - the word users know
    """One report of ``suite`` as text: ``html``, ``junit`` or ``markdown``."""
    try:
        renderer = RENDERERS[format]
    except KeyError:
        raise InvalidInput(f"unknown report format {format!r}; known: {', '.join(FORMATS)}") from None
    return renderer(suite)


def write_reports(journals: Journals, out_dir: str | os.PathLike[str],
                  formats: Iterable[str] = FORMATS) -> dict[str, Path]:
    """Write the reports of ``journals`` (paths, journal dicts or RunReports) into ``out_dir``.

    Files: report.html, junit.xml, report.md (each written atomically). Returns {format: path}.
    Raises InvalidInput for an unreadable journal or an unknown format, before writing anything.
    """
    formats = list(dict.fromkeys(formats))
    for name in formats:
        if name not in RENDERERS:
            raise InvalidInput(f"unknown report format {name!r}; known: {', '.join(FORMATS)}")
    suite = build_suite(journals)
    if not suite.runs:
        raise InvalidInput("no journal to report on")
    texts = {name: render(suite, name) for name in formats}
    directory = Path(out_dir)
    written = {}
    for name, text in texts.items():
        path = directory / FILE_NAMES[name]
        atomic_write(path, text, mode=0o644)
        written[name] = path
    return written


def write_files(journals: Journals, targets: Mapping[str, str | os.PathLike[str]]) -> dict[str, Path]:
    """Write each requested format to its own file: ``{"html": "out.html", ...}``."""
    suite = build_suite(journals)
    if not suite.runs:
        raise InvalidInput("no journal to report on")
    texts = {name: render(suite, name) for name in targets}
    written = {}
    for name, target in targets.items():
        atomic_write(Path(target), texts[name], mode=0o644)
        written[name] = Path(target)
    return written


