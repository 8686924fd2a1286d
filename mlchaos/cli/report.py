"""``mlchaos report JOURNAL...``: HTML, JUnit XML and Markdown reports of journals (:mod:`mlchaos.reports`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``mlchaos report JOURNAL... [--html FILE] [--junit FILE] [--markdown FILE] [--out DIR]``."""
    report = commands.add_parser(
        "report", help="write HTML, JUnit XML or Markdown reports of journals",
        description="Reports of one or more journals (a suite, or the history of one drill: several journals "
                    "of one experiment show its trend). Without an output option, the Markdown goes to stdout.")
    report.add_argument("journals", nargs="+", metavar="JOURNAL")
    report.add_argument("--html", default=None, metavar="FILE", help="self-contained HTML report")
    report.add_argument("--junit", default=None, metavar="FILE", help="JUnit XML (one testsuite per experiment)")
    report.add_argument("--markdown", default=None, metavar="FILE", help="Markdown for a drill or incident review")
    report.add_argument("--out", default=None, metavar="DIR", help="write all three (report.html, junit.xml, "
                        "report.md) into DIR")
    return report


def main(args: argparse.Namespace) -> int:
    """``mlchaos report``: exit 0 when the reports were written, 2 for a bad journal or option."""
    from mlchaos.engine import exit_codes
    from mlchaos.errors import InvalidInput
    from mlchaos.reports.reader import build_suite
    from mlchaos.reports.writer import FILE_NAMES, FORMATS, render, write_files

    targets = {name: path for name, path in (("html", args.html), ("junit", args.junit), ("markdown", args.markdown))
               if path}
    if args.out:
        for name in FORMATS:
            targets.setdefault(name, str(Path(args.out) / FILE_NAMES[name]))
    try:
        if not targets:
            sys.stdout.write(render(build_suite(args.journals), "markdown"))
            return exit_codes.OK
        written = write_files(args.journals, targets)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.INVALID
    except OSError as exc:
        print(f"error: cannot write the report: {exc}", file=sys.stderr)
        return exit_codes.INVALID
    for name, path in written.items():
        print(f"{name}: {path}")
    return exit_codes.OK
