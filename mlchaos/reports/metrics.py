"""Results as Prometheus metrics: a textfile for node_exporter's textfile collector, or a Pushgateway.

Both are rewritten whole at each run (a textfile is replaced; a Pushgateway group is PUT), so the
previous values are read back first (from the existing textfile, or from the Pushgateway's
/metrics) and carried forward:

* ``mlchaos_experiment_runs_total{experiment,verdict}`` (counter): runs by verdict, every verdict
  present from the first run (0 until it happens, so ``increase()`` sees the first one);
* ``mlchaos_time_to_detect_seconds``, ``mlchaos_time_to_notify_seconds``,
  ``mlchaos_time_to_recover_seconds`` ``{experiment,alert}`` (histograms): one observation per run
  and alert, the fastest measurement (as budgets count it);
* ``mlchaos_experiment_last_run_timestamp_seconds{experiment}`` (gauge): when the last run ended;
* ``mlchaos_experiment_last_success_timestamp_seconds{experiment}`` (gauge): when the last run that
  held ended; a failed run keeps the previous value; 0 when it never held;
* ``mlchaos_experiment_last_verdict{experiment,verdict}`` (gauge, 1 for the last verdict, 0 for
  the others); ``mlchaos_experiment_last_duration_seconds{experiment}`` (gauge).

A run is counted once: a journal whose run did not end after the experiment's last recorded run
is skipped (feeding the same journal twice changes nothing). Deleting the textfile resets the
counters, which Prometheus treats as a counter reset.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from mlchaos.engine import verdicts
from mlchaos.errors import MlchaosError
from mlchaos.lib.files import atomic_write
from mlchaos.reports.types import RunReport

JOB = "mlchaos"
RUNS = "mlchaos_experiment_runs"
LAST_RUN = "mlchaos_experiment_last_run_timestamp_seconds"
LAST_SUCCESS = "mlchaos_experiment_last_success_timestamp_seconds"
LAST_VERDICT = "mlchaos_experiment_last_verdict"
LAST_DURATION = "mlchaos_experiment_last_duration_seconds"
HISTOGRAMS = {
    "time_to_detect": "mlchaos_time_to_detect_seconds",
    "time_to_notify": "mlchaos_time_to_notify_seconds",
    "time_to_recover": "mlchaos_time_to_recover_seconds",
}
BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0)
VERDICTS = (*(v for v in verdicts.RUN_VERDICTS if v != verdicts.PLANNED), verdicts.UNFINISHED)  # a plan is no run
HELP = {
    RUNS: "Runs of an mlchaos experiment, by verdict.",
    LAST_RUN: "When the last run of the experiment ended (Unix time).",
    LAST_SUCCESS: "When the last run of the experiment that held ended (Unix time); 0 if none ever held.",
    LAST_VERDICT: "1 for the verdict of the experiment's last run, 0 for the other verdicts.",
    LAST_DURATION: "How long the last run of the experiment took.",
    HISTOGRAMS["time_to_detect"]: "Seconds from the fault until the alert was firing.",
    HISTOGRAMS["time_to_notify"]: "Seconds from the fault until the firing notification arrived.",
    HISTOGRAMS["time_to_recover"]: "Seconds from the fault until the alert was no longer firing.",
}
PUSH_TIMEOUT = 10.0


class MetricsError(MlchaosError):
    """Metrics could not be read, written or pushed."""


@dataclass
class Histogram:
    """A histogram's buckets (counts per bucket, the last one +Inf) and sum."""

    counts: list[float] = field(default_factory=lambda: [0.0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        index = next((i for i, bound in enumerate(BUCKETS) if value <= bound), len(BUCKETS))
        self.counts[index] += 1
        self.total += value

    @property
    def count(self) -> float:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        running, out = 0.0, []
        for bound, count in zip([*map(floatToGoString, BUCKETS), "+Inf"], self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out

    @classmethod
    def from_cumulative(cls, buckets: dict[float, float], total: float) -> Histogram | None:
        """From parsed ``_bucket`` samples; None when the buckets are not ours (they changed)."""
        bounds = sorted(buckets)
        if bounds != [*BUCKETS, float("inf")]:
            return None
        counts, previous = [], 0.0
        for bound in bounds:
            counts.append(max(buckets[bound] - previous, 0.0))
            previous = buckets[bound]
        return cls(counts, total)


@dataclass
class ExperimentMetrics:
    """The carried-forward metrics of one experiment."""

    runs: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0.0))
    last_run: float | None = None
    last_success: float = 0.0
    last_verdict: str | None = None
    last_duration: float | None = None
    histograms: dict[tuple[str, str], Histogram] = field(default_factory=dict)


@dataclass
class MetricsState:
    """Every experiment's metrics: parsed from the previous exposition, updated with new runs."""

    experiments: dict[str, ExperimentMetrics] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, match: dict[str, str] | None = None) -> MetricsState:
        """Read an exposition (a textfile, a Pushgateway's /metrics); ``match`` keeps samples with those labels."""
        state = cls()
        buckets: dict[tuple[str, str, str], dict[float, float]] = {}
        sums: dict[tuple[str, str, str], float] = {}
        kinds = {name: kind for kind, name in HISTOGRAMS.items()}
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError as exc:
            raise MetricsError(f"not a Prometheus text exposition: {exc}") from None
        for family in families:
            for sample in family.samples:
                labels = sample.labels
                if match and any(labels.get(k) != v for k, v in match.items()):
                    continue
                experiment = labels.get("experiment")
                if not experiment:
                    continue
                entry = state.experiments.setdefault(experiment, ExperimentMetrics())
                value = float(sample.value)
                if sample.name == f"{RUNS}_total" and labels.get("verdict"):
                    entry.runs[labels["verdict"]] = value
                elif sample.name == LAST_RUN:
                    entry.last_run = value
                elif sample.name == LAST_SUCCESS:
                    entry.last_success = value
                elif sample.name == LAST_DURATION:
                    entry.last_duration = value
                elif sample.name == LAST_VERDICT and value == 1 and labels.get("verdict"):
                    entry.last_verdict = labels["verdict"]
                elif family.name in kinds and labels.get("alert") is not None:
                    key = (experiment, kinds[family.name], labels["alert"])
                    if sample.name.endswith("_bucket") and "le" in labels:
                        buckets.setdefault(key, {})[float(labels["le"])] = value
                    elif sample.name.endswith("_sum"):
                        sums[key] = value
        for (experiment, kind, alert), found in buckets.items():
            histogram = Histogram.from_cumulative(found, sums.get((experiment, kind, alert), 0.0))
            if histogram is not None:
                state.experiments[experiment].histograms[(kind, alert)] = histogram
        return state

    def record(self, run: RunReport) -> bool:
        """Count one finished run; False when it is not newer than the experiment's last recorded run."""
        moment = run.end or run.start
        if moment is None or run.verdict == "planned":
            return False
        at = moment.timestamp()
        entry = self.experiments.setdefault(run.experiment_id, ExperimentMetrics())
        if entry.last_run is not None and at <= entry.last_run:
            return False
        entry.runs[run.verdict] = entry.runs.get(run.verdict, 0.0) + 1
        entry.last_run, entry.last_verdict, entry.last_duration = at, run.verdict, run.duration
        if run.passed:
            entry.last_success = at
        fastest: dict[tuple[str, str], float] = {}
        for measurement in run.measurements:
            key = (measurement.kind, measurement.alert)
            if measurement.kind in HISTOGRAMS:
                fastest[key] = min(fastest.get(key, measurement.seconds), measurement.seconds)
        for key, seconds in fastest.items():
            entry.histograms.setdefault(key, Histogram()).observe(seconds)
        return True

    def families(self, only: Iterable[str] | None = None) -> list[Metric]:
        """The metric families (of every experiment, or of ``only`` those)."""
        names = sorted(self.experiments if only is None else set(only) & set(self.experiments))
        runs = CounterMetricFamily(RUNS, HELP[RUNS], labels=["experiment", "verdict"])
        last_run = GaugeMetricFamily(LAST_RUN, HELP[LAST_RUN], labels=["experiment"])
        last_success = GaugeMetricFamily(LAST_SUCCESS, HELP[LAST_SUCCESS], labels=["experiment"])
        last_verdict = GaugeMetricFamily(LAST_VERDICT, HELP[LAST_VERDICT], labels=["experiment", "verdict"])
        last_duration = GaugeMetricFamily(LAST_DURATION, HELP[LAST_DURATION], labels=["experiment"])
        histograms = {kind: HistogramMetricFamily(name, HELP[name], labels=["experiment", "alert"])
                      for kind, name in HISTOGRAMS.items()}
        for name in names:
            entry = self.experiments[name]
            for verdict in dict.fromkeys([*VERDICTS, *entry.runs]):
                runs.add_metric([name, verdict], entry.runs.get(verdict, 0.0))
                last_verdict.add_metric([name, verdict], 1.0 if verdict == entry.last_verdict else 0.0)
            if entry.last_run is not None:
                last_run.add_metric([name], entry.last_run)
            last_success.add_metric([name], entry.last_success)
            if entry.last_duration is not None:
                last_duration.add_metric([name], entry.last_duration)
            for (kind, alert), histogram in sorted(entry.histograms.items()):
                histograms[kind].add_metric([name, alert], histogram.cumulative(), histogram.total)
        return [runs, last_verdict, last_run, last_success, last_duration, *histograms.values()]

    def registry(self, only: Iterable[str] | None = None) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(self.families(only)))
        return registry

    def render(self, only: Iterable[str] | None = None) -> str:
        return generate_latest(self.registry(only)).decode("utf-8")


class _Fixed:
    """A collector that yields families built beforehand."""

    def __init__(self, families: list[Metric]):
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def _ordered(runs: Iterable[RunReport]) -> list[RunReport]:
    return sorted(runs, key=lambda r: ((r.end or r.start).timestamp() if (r.end or r.start) else 0.0))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of one textfile between processes (two runs ending at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def update_textfile(runs: Iterable[RunReport], path: str | os.PathLike[str]) -> list[RunReport]:
    """Add ``runs`` to the textfile at ``path`` (created if missing, replaced atomically); the runs counted."""
    path = Path(path)
    with _locked(path):
        try:
            previous = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            previous = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise MetricsError(f"{path}: cannot read the previous metrics: {exc}") from None
        try:
            state = MetricsState.parse(previous)
        except MetricsError as exc:
            raise MetricsError(f"{path}: {exc}; fix or delete the file (its counters would be lost)") from None
        counted = [run for run in _ordered(runs) if state.record(run)]
        atomic_write(path, state.render(), mode=0o644)  # a textfile collector may run as another user
    return counted


def push(runs: Iterable[RunReport], url: str, timeout: float = PUSH_TIMEOUT, session: Any = None) -> list[RunReport]:
    """Push ``runs`` to the Pushgateway at ``url``: job "mlchaos", one group per experiment; the runs counted.

    ``http://user:password@host:9091`` authenticates with HTTP basic auth (never shown in messages); ``session``
    (a declared endpoint's ``requests.Session``: its credentials, CA, client certificate, headers) makes every
    request instead.
    """
    from prometheus_client import push_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    runs = _ordered(runs)
    base, auth = split_credentials(url)
    state = MetricsState.parse(_fetch(base.rstrip("/") + "/metrics", timeout, auth, session), match={"job": JOB})
    counted = [run for run in runs if state.record(run)]

    def handler(url: str, method: str, timeout: float | None, headers: list, data: bytes):
        if session is not None:
            return _session_handler(session, url, method, timeout, headers, data)
        if auth is None:
            return default_handler(url, method, timeout, headers, data)
        return basic_auth_handler(url, method, timeout, headers, data, auth[0], auth[1])

    for experiment in dict.fromkeys(run.experiment_id for run in runs):
        try:
            push_to_gateway(base, job=JOB, registry=state.registry([experiment]),
                            grouping_key={"experiment": experiment}, timeout=timeout, handler=handler)
        except OSError as exc:  # URLError and HTTPError are OSErrors
            raise MetricsError(f"cannot push to the Pushgateway at {base}: {exc}") from None
    return counted


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without ``user:password@`` (with a scheme: http when none is given), and the credentials."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.username is None:
        return urlunsplit(parts), None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), (unquote(parts.username), unquote(parts.password or ""))


def _session_handler(session: Any, url: str, method: str, timeout: float | None, headers: list,
                     data: bytes) -> Any:
    """prometheus_client's push, made with ``session``; a refusal is an OSError, as its own handlers raise."""

    def handle() -> None:
        response = session.request(method, url, data=data, headers=dict(headers), timeout=timeout)
        if response.status_code >= 400:
            raise OSError(f"HTTP {response.status_code}: {response.text.strip()[:200]}")

    return handle


def _fetch(url: str, timeout: float, auth: tuple[str, str] | None = None, session: Any = None) -> str:
    """The text at ``url`` (the Pushgateway's current metrics, to carry them forward)."""
    import requests

    try:
        response = (session or requests).get(url, timeout=timeout, auth=auth)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise MetricsError(f"cannot read the Pushgateway's metrics at {url}: {exc}") from None
    return response.text
