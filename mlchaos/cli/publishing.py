"""The report and metrics options of ``mlchaos run``: ``--report-dir``, ``--metrics-textfile``, ``--pushgateway``.

Checked before the drill (:func:`preflight`: a bad option fails before anything runs), acted on
after it (:func:`publish_run`: an error is printed, the run's exit code stands).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlchaos.errors import InvalidInput, MlchaosError

ENDPOINT_PREFIX = "endpoint:"  # --pushgateway endpoint:NAME: a declared endpoint


def add_publishing_options(parser: argparse.ArgumentParser) -> None:
    """The options ``mlchaos run`` gets for reports and metrics."""
    parser.add_argument("--report-dir", default=None, metavar="DIR",
                        help="after the run, write report.html, junit.xml and report.md of its journal into DIR")
    parser.add_argument("--metrics-textfile", default=None, metavar="FILE",
                        help="after the run, add its results to this node_exporter textfile (*.prom; "
                             "counters and last success carried forward)")
    parser.add_argument("--pushgateway", default=None, metavar="URL",
                        help="after the run, push its results to this Prometheus Pushgateway "
                             "(job mlchaos, grouped by experiment); endpoint:NAME: the experiment's declared "
                             "endpoint NAME, with its credentials")


def preflight(args: argparse.Namespace) -> list[str]:
    """Problems with the report and metrics options, found before the run starts (nothing is written)."""
    problems = []
    report_dir = getattr(args, "report_dir", None)
    textfile = getattr(args, "metrics_textfile", None)
    pushgateway = getattr(args, "pushgateway", None)
    if (report_dir or textfile or pushgateway) and not getattr(args, "journal", None):
        problems.append("--report-dir, --metrics-textfile and --pushgateway read the run's journal: give --journal")
    if report_dir:
        problems += _writable_dir(Path(report_dir), "--report-dir")
    if textfile:
        from mlchaos.reports.metrics import MetricsError, MetricsState  # prometheus_client: only when asked for

        path = Path(textfile)
        if path.is_dir():
            problems.append(f"--metrics-textfile {path}: is a directory")
        else:
            problems += _writable_dir(path.parent, "--metrics-textfile")
            if path.is_file():
                try:
                    MetricsState.parse(path.read_text(encoding="utf-8"))
                except (MetricsError, OSError, UnicodeDecodeError) as exc:
                    problems.append(f"--metrics-textfile {path}: {exc}; fix or delete it")
    if pushgateway and pushgateway.startswith(ENDPOINT_PREFIX):
        if not pushgateway[len(ENDPOINT_PREFIX):]:
            problems.append(f"--pushgateway {pushgateway!r}: name the endpoint: endpoint:NAME")
    elif pushgateway:
        from mlchaos.reports.metrics import split_credentials

        parts = urlsplit(pushgateway if "://" in pushgateway else f"http://{pushgateway}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"--pushgateway {split_credentials(pushgateway)[0]!r}: not an http(s) URL")
    return problems


def _writable_dir(path: Path, option: str) -> list[str]:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return [f"{option} {path}: {existing} is not a directory"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"{option} {path}: {existing} is not writable"]
    return []


def publish_run(args: argparse.Namespace, journal: Path | None, dry_run: bool) -> list[str]:
    """After ``mlchaos run``: write its reports and metrics as asked; the errors (the run's exit code stands)."""
    report_dir = getattr(args, "report_dir", None)
    textfile = getattr(args, "metrics_textfile", None)
    pushgateway = getattr(args, "pushgateway", None)
    if not (report_dir or textfile or pushgateway):
        return []
    if journal is None or not journal.is_file():
        return [f"no journal to report on ({journal or 'none written'})"]
    from mlchaos.reports.metrics import push, split_credentials, update_textfile
    from mlchaos.reports.reader import build_suite
    from mlchaos.reports.writer import write_reports

    errors = []
    try:
        suite = build_suite([journal])
    except InvalidInput as exc:
        return [str(exc)]
    if report_dir:
        try:
            for name, path in write_reports(suite.runs, report_dir).items():
                print(f"  report ({name}): {path}")
        except (InvalidInput, OSError) as exc:
            errors.append(f"cannot write the reports into {report_dir}: {exc}")
    if dry_run and (textfile or pushgateway):
        print("  metrics: not recorded for a plan (nothing was injected)")
        return errors
    if textfile:
        try:
            counted = update_textfile(suite.runs, textfile)
            print(f"  metrics: {textfile}" + ("" if counted else " (this run was already counted)"))
        except (MlchaosError, OSError) as exc:
            errors.append(f"cannot update the metrics textfile: {exc}")
    if pushgateway:
        try:
            target, session = _pushgateway(pushgateway, journal)
            push(suite.runs, target, session=session)
            print(f"  metrics: pushed to {split_credentials(target)[0]}")
        except MlchaosError as exc:
            errors.append(str(exc))
    return errors


def _pushgateway(option: str, journal: Path) -> tuple[str, Any]:
    """(URL, session or None) of ``--pushgateway``: a URL, or ``endpoint:NAME`` of the experiment's declared
    endpoints (the ones the journal recorded: the experiment's and its var files'; a credential from a file or a
    variable)."""
    if not option.startswith(ENDPOINT_PREFIX):
        return option, None
    from mlchaos.experiment.endpoint_sources import recorded_endpoints
    from mlchaos.experiment.endpoints import table_of
    from mlchaos.journal.reader import read_file

    name = option[len(ENDPOINT_PREFIX):]
    data = read_file(journal)
    source = ((data.get("mlchaos") or {}).get("source")) if isinstance(data, dict) else None
    table = table_of(recorded_endpoints(data) if isinstance(data, dict) else {}, {},
                     Path(source).parent if isinstance(source, str) else Path.cwd())
    if table is None:
        raise InvalidInput(f"--pushgateway {option}: the experiment declares no endpoints")
    connection = table.connection(name)  # EndpointUnavailable (an InvalidInput) names what is missing
    return connection.base_url, connection.session
