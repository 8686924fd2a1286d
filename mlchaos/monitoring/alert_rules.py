"""Prometheus alert rules for ML model serving, rendered from typed parameters.

Two profiles: :data:`SANDBOX` (seconds-long windows for a 1 s scrape interval, so a
drill sees an alert fire within seconds) and :data:`STAGING` (minutes, for a real
deployment). :func:`render_rules` turns either into a rule file with one group
``ml-serving``; :func:`render_rule_tests` writes the matching ``promtool test rules``
file, whose cases prove which alert answers which fault (a kill fires only
``ModelServerDown``, a telemetry-only outage only ``ModelTelemetryAbsent``...).

Every alert joins its signals on the ``instance`` label: the scrape target of a
replica and the blackbox probes of that replica share ``instance = host:port``
(the probe jobs relabel it so, see :mod:`mlchaos.sandbox.monitoring`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from mlchaos.errors import InvalidInput

GROUP_NAME = "ml-serving"
COMPONENT = "model-serving"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as ``90s``, ``5m`` or ``1h30m``."""
    match = _DURATION.match(str(text))
    if not text or match is None or not any(match.groups()):
        raise InvalidInput(f"not a Prometheus duration: {text!r} (e.g. 30s, 5m, 1h30m)")
    return sum(int(g) * unit for g, (_, unit) in zip(match.groups(), _UNITS, strict=True) if g)


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for ``seconds`` (whole milliseconds)."""
    left = round(seconds * 1000)
    if left <= 0:
        return "0s"
    parts = []
    for suffix, unit in _UNITS:
        size = round(unit * 1000)
        if left >= size:
            parts.append(f"{left // size}{suffix}")
            left %= size
    return "".join(parts)


@dataclass(frozen=True)
class RuleParameters:
    """Windows, thresholds and job names the ML-serving alert rules are rendered with."""

    scrape_interval: str = "15s"  # how often the signals are sampled (sets the unit-test step)
    model_job: str = "model"  # scrape job of the replicas' /metrics
    blackbox_job: str = "model-live"  # blackbox http_2xx probe of /v2/health/live
    readiness_job: str = "model-ready"  # blackbox http_2xx probe of /v2/health/ready
    tls_job: str = "model-tls"  # blackbox probe that verifies the certificate
    tls_insecure_job: str = "model-tls-insecure"  # blackbox probe with insecure_skip_verify
    down_for: str = "1m"
    telemetry_absent_for: str = "5m"
    not_ready_for: str = "2m"
    latency_p95_seconds: float = 0.25
    latency_window: str = "5m"
    latency_for: str = "10m"
    endpoint_latency_p95_seconds: float = 0.5  # client-side: p95 of the liveness probe's duration
    endpoint_latency_window: str = "5m"
    endpoint_latency_for: str = "5m"
    error_rate_ratio: float = 0.05
    error_endpoints: str = "infer"  # regex of the `endpoint` label counted in the error ratio
    error_window: str = "5m"
    error_for: str = "5m"
    tls_for: str = "5m"
    cert_expiring_days: float = 14.0
    cert_for: str = "15m"
    drift_psi_threshold: float = 0.2  # population stability index of the predicted classes
    drift_for: str = "15m"
    model_max_age: str = "14d"  # ModelStale: the served version was trained longer ago than this
    stale_for: str = "10m"
    invalid_input_ratio: float = 0.05  # rejected / all infer requests
    invalid_input_window: str = "10m"
    invalid_input_for: str = "10m"
    non_finite_window: str = "5m"
    non_finite_for: str = "1m"
    feedback_window: str = "30m"  # no feedback event over this window while predictions are served
    feedback_for: str = "15m"
    accuracy_threshold: float = 0.8  # ModelAccuracyLow: matched labels predicted right, over accuracy_window
    accuracy_window: str = "30m"
    accuracy_for: str = "15m"
    accuracy_min_labels: float = 100.0  # fewer matched labels than this in the window: no verdict (idle replica)
    load_failure_window: str = "30m"  # ModelLoadFailed: a repository load failed within this window
    load_failure_for: str = "0s"  # a failed rollout is news at once: the old version keeps serving silently
    training_job: str = "training"  # Pushgateway group of the training pipeline (push_time_seconds)
    pipeline_max_age: str = "1d"
    pipeline_for: str = "15m"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_for", "_window", "_interval", "_age")):
                parse_duration(value)  # raises InvalidInput
            elif f.name.endswith("_job") and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]*", value):
                raise InvalidInput(f"{f.name}: not a valid job name: {value!r}")
        for name in ("latency_p95_seconds", "endpoint_latency_p95_seconds", "error_rate_ratio", "cert_expiring_days",
                     "drift_psi_threshold", "invalid_input_ratio", "accuracy_min_labels"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.accuracy_threshold <= 1:
            raise InvalidInput(f"accuracy_threshold must be in (0, 1], got {self.accuracy_threshold!r}")

    def with_overrides(self, assignments: list[str]) -> RuleParameters:
        """Return a copy with ``name=value`` assignments applied (values typed like the field)."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for item in assignments:
            name, sep, raw = item.partition("=")
            name = name.strip()
            if not sep:
                raise InvalidInput(f"--set {item!r}: expected NAME=VALUE")
            if name not in fields:
                close = difflib.get_close_matches(name, fields, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InvalidInput(f"--set {item!r}: unknown parameter {name!r}{hint}; known: {', '.join(fields)}")
            if isinstance(getattr(self, name), float):
                try:
                    changes[name] = float(raw)
                except ValueError:
                    raise InvalidInput(f"--set {item!r}: {name} must be a number") from None
            else:
                changes[name] = raw.strip()
        return dataclasses.replace(self, **changes)


STAGING = RuleParameters()
SANDBOX = RuleParameters(
    scrape_interval="1s",
    down_for="3s",
    telemetry_absent_for="5s",  # longer than down_for: the probe may lag the scrape by a cycle
    not_ready_for="3s",
    latency_window="15s",
    latency_for="5s",
    endpoint_latency_p95_seconds=0.2,
    endpoint_latency_window="10s",
    endpoint_latency_for="3s",
    error_rate_ratio=0.1,
    error_window="15s",
    error_for="5s",
    tls_for="3s",
    cert_for="3s",
    drift_for="5s",
    model_max_age="1d",
    stale_for="3s",
    invalid_input_ratio=0.1,
    invalid_input_window="15s",
    invalid_input_for="5s",
    non_finite_window="10s",
    non_finite_for="2s",
    feedback_window="30s",
    feedback_for="5s",
    accuracy_window="15s",
    accuracy_for="3s",
    accuracy_min_labels=20.0,
    load_failure_window="20s",
    pipeline_max_age="15s",  # the sandbox pipeline pushes every second: a drill sees it stop in seconds
    pipeline_for="3s",
)
PROFILES: dict[str, RuleParameters] = {"sandbox": SANDBOX, "staging": STAGING}
ALERT_NAMES = (
    "ModelServerDown",
    "ModelTelemetryAbsent",
    "ModelNotReady",
    "ModelHighLatencyP95",
    "ModelEndpointLatencyHigh",
    "ModelHighErrorRate",
    "ModelCertificateExpiringSoon",
    "ModelCertificateExpired",
    "ModelEndpointTLSProbeFailing",
    "ModelPredictionDrift",
    "ModelStale",
    "ModelInvalidInputRatioHigh",
    "ModelNonFiniteOutputs",
    "ModelFeedbackAbsent",
    "ModelAccuracyLow",
    "ModelLoadFailed",
    "ModelPipelineNotPushing",
)


def profile(name: str) -> RuleParameters:
    """The parameters of the profile ``name`` (sandbox or staging)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise InvalidInput(f"unknown rule profile {name!r}; known: {', '.join(PROFILES)}") from None


def _alert(name: str, expr: str, duration: str, severity: str, score: str, summary: str,
           description: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity, "ml_test_score": score, "component": COMPONENT},
        "annotations": {"summary": summary, "description": description},
    }


def alert_rules(p: RuleParameters) -> list[dict[str, Any]]:
    """The alerting rules as mappings (what :func:`render_rules` writes)."""
    up = f'up{{job="{p.model_job}"}}'
    probe_time = f'probe_duration_seconds{{job="{p.blackbox_job}"}}'
    ew = p.endpoint_latency_window
    live = f'probe_success{{job="{p.blackbox_job}"}}'
    ready = f'probe_success{{job="{p.readiness_job}"}}'
    expiry = f'probe_ssl_earliest_cert_expiry{{job="{p.tls_insecure_job}"}}'
    by = "instance, replica"
    inst = "{{ $labels.instance }}"
    lag = format_duration(2 * parse_duration(p.scrape_interval))  # two scrapes: how far probes may lag
    return [
        _alert(
            "ModelServerDown",
            # the scrape fails AND the replica does not answer its liveness probe either
            f"{up} == 0 unless on(instance) {live} == 1",
            p.down_for, "critical", "Infrastructure",
            f"Model server {inst} is down",
            f"Replica {{{{ $labels.replica }}}} ({inst}) answers neither its metrics scrape nor its"
            f" liveness probe for {p.down_for}.",
        ),
        _alert(
            "ModelTelemetryAbsent",
            # the replica answers its liveness probe, but its metrics are not scraped (failing or gone)
            # over a window of two scrapes, so the one-scrape lag between the two signals after a
            # kill never makes it match, not even as pending
            f"min_over_time({live}[{lag}]) == 1 unless on(instance) max_over_time({up}[{lag}]) == 1",
            p.telemetry_absent_for, "warning", "Monitoring",
            f"No telemetry from model server {inst}",
            f"{inst} answers its liveness probe but its metrics have not been scraped for"
            f" {p.telemetry_absent_for}: every model-quality alert is blind for it.",
        ),
        _alert(
            "ModelNotReady",
            f'max by ({by}) (model_ready{{job="{p.model_job}"}}) == 0'
            f" or max by ({by}) (max_over_time({ready}[{lag}]) == 0 and on(instance) {live} == 1)",
            p.not_ready_for, "warning", "Infrastructure",
            f"Model server {inst} is live but not ready",
            f"{inst} reports its model not ready (model_ready 0 or /v2/health/ready failing) for"
            f" {p.not_ready_for}.",
        ),
        _alert(
            "ModelHighLatencyP95",
            f"histogram_quantile(0.95, sum by ({by}, le) (rate(model_inference_duration_seconds_bucket"
            f'{{job="{p.model_job}"}}[{p.latency_window}]))) > {p.latency_p95_seconds:g}',
            p.latency_for, "warning", "Monitoring 6",
            f"p95 inference latency of {inst} above {p.latency_p95_seconds:g}s",
            f"p95 inference latency of {inst} has been above {p.latency_p95_seconds:g}s over"
            f" {p.latency_window} for {p.latency_for}: computing performance regressed.",
        ),
        _alert(
            "ModelEndpointLatencyHigh",
            # what clients see: the liveness probe's duration (through the network path, e.g. a proxy);
            # only while every probe in the window succeeded, so a dead or hung replica does not fire it
            f"max by ({by}) (quantile_over_time(0.95, {probe_time}[{ew}])) > {p.endpoint_latency_p95_seconds:g}"
            f" and on(instance) min by (instance) (min_over_time({live}[{ew}])) == 1",
            p.endpoint_latency_for, "warning", "Monitoring 6",
            f"Clients see {inst} respond slowly",
            f"p95 of the liveness probe's duration to {inst} has been above {p.endpoint_latency_p95_seconds:g}s"
            f" over {ew} for {p.endpoint_latency_for} while the probes succeed: the network path or the"
            " server is slow as seen by clients. ModelHighLatencyP95 (server-side inference time) cannot see"
            " network latency.",
        ),
        _alert(
            "ModelHighErrorRate",
            f"sum by ({by}) (rate(model_requests_total{{job=\"{p.model_job}\",endpoint=~\"{p.error_endpoints}\","
            f"code=~\"5..\"}}[{p.error_window}])) / sum by ({by}) (rate(model_requests_total"
            f"{{job=\"{p.model_job}\",endpoint=~\"{p.error_endpoints}\"}}[{p.error_window}]))"
            f" > {p.error_rate_ratio:g}",
            p.error_for, "critical", "Infrastructure 7",
            f"High 5xx ratio on {inst}",
            f"More than {p.error_rate_ratio:g} of the {p.error_endpoints} requests to {inst} failed with 5xx"
            f" over {p.error_window}, for {p.error_for}: roll the model back.",
        ),
        _alert(
            "ModelCertificateExpiringSoon",
            f"{expiry} - time() > 0 and {expiry} - time() < {p.cert_expiring_days:g} * 86400",
            p.cert_for, "warning", "Infrastructure",
            f"TLS certificate of {inst} expires soon",
            f"The certificate served by {inst} expires in less than {p.cert_expiring_days:g} days.",
        ),
        _alert(
            "ModelCertificateExpired",
            f"{expiry} - time() <= 0",
            p.cert_for, "critical", "Infrastructure",
            f"TLS certificate of {inst} has expired",
            f"The certificate served by {inst} has expired; verifying clients refuse it.",
        ),
        _alert(
            "ModelEndpointTLSProbeFailing",
            # TLS answers (insecure probe ok) but verification fails, for a reason other than expiry
            # over two scrapes, so the lag between the two probes after a kill never makes it match
            f'(max_over_time(probe_success{{job="{p.tls_job}"}}[{lag}]) == 0 and on(instance)'
            f' min_over_time(probe_success{{job="{p.tls_insecure_job}"}}[{lag}]) == 1)'
            f" unless on(instance) ({expiry} - time() <= 0)",
            p.tls_for, "critical", "Infrastructure",
            f"TLS verification of {inst} fails",
            f"A verifying TLS probe of {inst} has failed for {p.tls_for} although the endpoint answers"
            " (untrusted issuer, wrong host name...).",
        ),
        *_ml_rules(p),
    ]


def _ml_rules(p: RuleParameters) -> list[dict[str, Any]]:
    """Model-quality alerts, on the signals of :mod:`mlchaos.sandbox.signals` (see docs/ml-signals.md)."""
    job = f'job="{p.model_job}"'
    by = "instance, replica"
    inst = "{{ $labels.instance }}"
    max_age = parse_duration(p.model_max_age)
    push_age = parse_duration(p.pipeline_max_age)
    fw = p.feedback_window
    aw = p.accuracy_window
    matched = f"sum by ({by}) (increase(model_feedback_matched_total{{{job}}}[{aw}]))"
    return [
        _alert(
            "ModelPredictionDrift",
            # the server computes the PSI over its last predictions; a killed replica's gauge goes stale
            f"max by ({by}) (model_prediction_drift_psi{{{job}}}) > {p.drift_psi_threshold:g}",
            p.drift_for, "warning", "Monitoring 3",
            f"Predictions of {inst} drifted from the training distribution",
            f"The population stability index of the classes {inst} predicted recently, against the training"
            f" classes, has been above {p.drift_psi_threshold:g} for {p.drift_for}: serving inputs are skewed.",
        ),
        _alert(
            "ModelStale",
            f"time() - max by ({by}) (model_trained_timestamp_seconds{{{job}}}) > {max_age:g}",
            p.stale_for, "warning", "Monitoring 4",
            f"Model served by {inst} is stale",
            f"The model version {inst} serves was trained more than {p.model_max_age} ago (an old version is"
            " pinned, or retraining stopped).",
        ),
        _alert(
            "ModelInvalidInputRatioHigh",
            f"sum by ({by}) (rate(model_invalid_inputs_total{{{job}}}[{p.invalid_input_window}]))"
            f' / sum by ({by}) (rate(model_requests_total{{{job},endpoint="infer"}}[{p.invalid_input_window}]))'
            f" > {p.invalid_input_ratio:g}",
            p.invalid_input_for, "warning", "Monitoring 2",
            f"Many invalid inputs reach {inst}",
            f"More than {p.invalid_input_ratio:g} of the infer requests to {inst} were rejected as invalid (NaN,"
            f" out of range, wrong shape or datatype) over {p.invalid_input_window}, for {p.invalid_input_for}.",
        ),
        _alert(
            "ModelNonFiniteOutputs",
            f"sum by ({by}) (increase(model_non_finite_outputs_total{{{job}}}[{p.non_finite_window}])) > 0",
            p.non_finite_for, "critical", "Monitoring 5",
            f"Model on {inst} outputs NaN or infinite values",
            f"{inst} produced non-finite outputs over the last {p.non_finite_window}: the model is numerically"
            " unstable.",
        ),
        _alert(
            "ModelFeedbackAbsent",
            # the feedback counter is exported from start-up (0 until the first event), so increase() sees it;
            # it must have counted something since the process started: a replica that never had a feedback
            # loop (the sandbox's drill traffic) does not fire, nor does a killed one (its series go stale)
            f"sum by ({by}) (increase(model_predictions_total{{{job}}}[{fw}])) > 0"
            f" unless on(instance) sum by (instance) (increase(model_feedback_events_total{{{job}}}[{fw}])) > 0"
            f" and on(instance) max by (instance) (model_feedback_events_total{{{job}}}) > 0",
            p.feedback_for, "warning", "Monitoring 7",
            f"No feedback reaches {inst}",
            f"{inst} serves predictions but has received no true labels on its feedback endpoint for {fw}:"
            " prediction quality cannot be measured.",
        ),
        _alert(
            "ModelAccuracyLow",
            # only labels matched to the prediction they are for count; with fewer than the minimum in the
            # window there is no verdict (an idle replica, 0/0, or a handful of labels never fires it)
            f"sum by ({by}) (increase(model_feedback_correct_total{{{job}}}[{aw}])) / {matched}"
            f" < {p.accuracy_threshold:g} and {matched} >= {p.accuracy_min_labels:g}",
            p.accuracy_for, "critical", "Monitoring 7",
            f"Predictions of {inst} are often wrong",
            f"Less than {p.accuracy_threshold:g} of the true labels fed back to {inst} over {aw} (at least"
            f" {p.accuracy_min_labels:g} matched to their predictions) agree with what it predicted, for"
            f" {p.accuracy_for}: a bad model is served; roll it back.",
        ),
        _alert(
            "ModelLoadFailed",
            f"sum by ({by}) (increase(model_load_failures_total{{{job}}}[{p.load_failure_window}])) > 0",
            p.load_failure_for, "warning", "Monitoring 4",
            f"A model version failed to load on {inst}",
            f"A repository load on {inst} failed within the last {p.load_failure_window}: the rollout did not"
            " happen there and the previous version is still served (the updated model was not pushed).",
        ),
        _alert(
            "ModelPipelineNotPushing",
            f'time() - max by (job) (push_time_seconds{{job="{p.training_job}"}}) > {push_age:g}',
            p.pipeline_for, "warning", "Monitoring 4",
            "Training pipeline {{ $labels.job }} has not pushed",
            f"The last push of the {{{{ $labels.job }}}} pipeline to the Pushgateway is older than"
            f" {p.pipeline_max_age}: models are not being retrained.",
        ),
    ]


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # shared series rows are written out in full, no &anchors


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


def render_rules(params: RuleParameters = STAGING) -> str:
    """Render the ML-serving alert rules as a Prometheus rule file (one group ``ml-serving``)."""
    header = (
        "# Alert rules for ML model serving, generated by `mlchaos rules` -- do not edit by hand.\n"
        f"# Parameters: {', '.join(f'{k}={v}' for k, v in dataclasses.asdict(params).items())}\n"
    )
    return header + _dump({"groups": [{"name": GROUP_NAME, "rules": alert_rules(params)}]})


# -- promtool unit tests -----------------------------------------------------------------------

_INSTANCE = "127.0.0.1:9000"
_REPLICA = "model-0"


def _steps(seconds: float, step: float) -> int:
    return max(1, math.ceil(seconds / step))


def render_rule_tests(params: RuleParameters = STAGING, rule_file: str = "ml-serving-rules.yml") -> str:
    """Render a ``promtool test rules`` file whose cases prove which alert answers which fault.

    Cases: healthy replica (nothing fires), kill (only ModelServerDown, also with the
    probe lagging the scrape by one cycle), restart after a kill (resolved),
    telemetry-only outages (scrape failing, target gone: only ModelTelemetryAbsent),
    not ready, high latency, high error rate, certificate expiring / expired / untrusted, and
    the model-quality alerts, each with the cases that must not fire it (for accuracy: good
    accuracy, too few matched labels, an idle replica).
    """
    step = parse_duration(params.scrape_interval)
    windows = [parse_duration(getattr(params, f.name)) for f in dataclasses.fields(params)
               if f.name.endswith(("_for", "_window"))]
    warm = _steps(2 * max(windows), step)  # healthy steps before the fault
    # evaluate once every window has passed since the fault, plus slack
    after = _steps(max(windows) * 2 + 3 * step, step)
    total = warm + after
    at = format_duration((warm + after) * step)
    cases = _cases(params, warm, after, total)
    tests = [
        {
            "name": name,
            "interval": params.scrape_interval,
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": at, "alertname": alert, "exp_alerts": expected.get(alert, [])}
                for alert in ALERT_NAMES
            ],
        }
        for name, series, expected in cases
    ]
    # the kill must not fire ModelTelemetryAbsent even for an instant after its own window
    early = _steps(parse_duration(params.telemetry_absent_for) + 2 * step, step)
    kill_series = _cases(params, warm, after, total)[1][1]
    tests.append({
        "name": "kill, evaluated just after the telemetry window: still only ModelServerDown",
        "interval": params.scrape_interval,
        "input_series": kill_series,
        "alert_rule_test": [
            {"eval_time": format_duration((warm + early) * step), "alertname": "ModelTelemetryAbsent",
             "exp_alerts": []},
        ],
    })
    header = (
        "# promtool unit tests of the ML-serving alert rules, generated by mlchaos.alert_rules.render_rule_tests"
        " -- do not edit by hand.\n# Run: promtool test rules <this file>\n"
    )
    return header + _dump({
        "rule_files": [rule_file],
        "evaluation_interval": params.scrape_interval,
        "tests": tests,
    })


def _seq(*parts: tuple[float, float, int]) -> str:
    """promtool series notation: each (start, increment, steps) expands to ``steps`` samples."""
    out = []
    for start, inc, count in parts:
        if count <= 0:
            continue
        out.append(f"{start:g}+{inc:g}x{count - 1}" if count > 1 else f"{start:g}")
    return " ".join(out)


def _const(value: float | str, count: int) -> str:
    if count <= 0:
        return ""
    if value == "_":
        return f"_x{count}"  # promtool: '_xn' is n missing samples, 'axn' is n+1 samples
    return str(value) if count == 1 else f"{value}+0x{count - 1}"


def _cases(p: RuleParameters, warm: int, after: int, total: int) -> list[tuple[str, list[dict], dict]]:
    inst, rep = _INSTANCE, _REPLICA
    base = f'instance="{inst}", replica="{rep}"'

    def s(metric: str, job: str, values: str, extra: str = "") -> dict[str, str]:
        return {"series": f'{metric}{{job="{job}", {base}{extra}}}', "values": values}

    def healthy(n: int) -> str:
        return _const(1, n)

    def with_tail(head: str, tail: str) -> str:
        return " ".join(x for x in (head, tail) if x)

    rate = 10  # requests per step
    thr = p.latency_p95_seconds
    buckets = [f"{thr / 50:g}", f"{thr:g}", f"{thr * 4:g}", "+Inf"]

    def latency(slow: bool) -> list[dict[str, str]]:
        rows = []
        for le in buckets:
            fast_bucket = le != f"{thr * 4:g}" and le != "+Inf"
            # after a slow-down fault every observation lands in (thr, 4*thr]
            values = _seq((0, rate, warm), (rate * warm, 0, after)) if slow and fast_bucket else _seq((0, rate, total))
            rows.append(s("model_inference_duration_seconds_bucket", p.model_job, values,
                          f', model="iris", le="{le}"'))
        return rows

    def requests(errors: bool) -> list[dict[str, str]]:
        ok = _seq((0, rate, total)) if not errors else _seq((0, rate, warm), (rate * warm, rate / 2, after))
        rows = [s("model_requests_total", p.model_job, ok, ', model="iris", endpoint="infer", code="200"')]
        if errors:  # a counter never incremented is not exported: the 500 series appears with the fault
            rows.append(s("model_requests_total", p.model_job, with_tail(_const("_", warm), _seq((1, rate / 2, after))),
                          ', model="iris", endpoint="infer", code="500"'))
        return rows

    fast_probe = _const(0.005, total)  # seconds: a healthy loopback probe
    slow_probe = with_tail(_const(0.005, warm), _const(f"{p.endpoint_latency_p95_seconds * 2:g}", after))

    def serving(up: str, live: str, ready: str | None = None, model_ready: str | None = None,
                probe_time: str | None = None) -> list[dict]:
        return [
            s("up", p.model_job, up),
            s("probe_success", p.blackbox_job, live),
            s("probe_success", p.readiness_job, ready or live),
            s("model_ready", p.model_job, model_ready or up, ', model="iris"'),
            s("probe_duration_seconds", p.blackbox_job, probe_time or fast_probe),
        ]

    day = 86400
    expiry_far = 10 * p.cert_expiring_days * day + total * parse_duration(p.scrape_interval)

    def tls(verify: str, insecure: str, expiry: str) -> list[dict]:
        return [
            s("probe_success", p.tls_job, verify),
            s("probe_success", p.tls_insecure_job, insecure),
            s("probe_ssl_earliest_cert_expiry", p.tls_insecure_job, expiry),
        ]

    ok = healthy(total)
    dead = with_tail(healthy(warm), _const(0, after))
    gone = with_tail(healthy(warm), "stale")  # a series that disappears (target dropped / process gone)

    def labels(alert: str, severity: str, score: str, extra: dict[str, str] | None = None) -> list[dict]:
        return [{
            "exp_labels": {"severity": severity, "ml_test_score": score, "component": COMPONENT,
                           "instance": inst, "replica": rep, **(extra or {})},
        }]

    def alert(name: str, severity: str, score: str, job: str | None = None,
              extra: dict[str, str] | None = None) -> list[dict]:
        more = dict(extra or {})
        if job:
            more["job"] = job
        rule = next(r for r in alert_rules(p) if r["alert"] == name)
        annotations = {k: v.replace("{{ $labels.instance }}", inst).replace("{{ $labels.replica }}", rep)
                       for k, v in rule["annotations"].items()}
        return [{**labels(name, severity, score, more)[0], "exp_annotations": annotations}]

    step = parse_duration(p.scrape_interval)
    model = ', model="iris"'

    def ml(n: int = total, psi: str | None = None, trained: str | None = None, predictions: str | None = None,
           feedback: str | None = None, non_finite: str | None = None, invalid: str | None = None,
           push: str | None = None, matched: str | None = None, correct: str | None = None,
           load_failures: str | None = None) -> list[dict[str, str]]:
        """The model-quality signals, healthy unless given; ``n < total``: the replica's series end (killed)."""
        end = " stale" if n < total else ""
        rows = [
            s("model_feedback_matched_total", p.model_job, (matched or _seq((0, rate, n))) + end, model),
            s("model_feedback_correct_total", p.model_job, (correct or _seq((0, rate * good, n))) + end, model),
            s("model_prediction_drift_psi", p.model_job, (psi or _const(0.01, n)) + end, model),
            s("model_trained_timestamp_seconds", p.model_job, (trained or _const(0, n)) + end, model),
            s("model_predictions_total", p.model_job, (predictions or _seq((0, rate, n))) + end,
              model + ', class_name="setosa"'),
            s("model_feedback_events_total", p.model_job, (feedback or _seq((1, rate, n))) + end, model),
            s("model_non_finite_outputs_total", p.model_job, (non_finite or _const(0, n)) + end, model),
            s("model_invalid_inputs_total", p.model_job, (invalid or _const(0, n)) + end, model + ', reason="nan"'),
            s("model_load_failures_total", p.model_job, (load_failures or _const(0, n)) + end, model),
        ]
        return rows + [{"series": f'push_time_seconds{{job="{p.training_job}"}}',
                        "values": push or _seq((0, step, total))}]

    def fault(healthy_value: float | str, faulty: float | str) -> str:
        return with_tail(_const(healthy_value, warm), _const(faulty, after))

    good = 0.95  # share of the matched labels a healthy model predicted right

    def counter(before: float, then: float) -> str:
        """A counter increasing by ``before`` per step, then by ``then`` from the fault on."""
        return _seq((0, before, warm), (before * (warm - 1) + then, then, after))

    window_steps = parse_duration(p.accuracy_window) / step
    few = p.accuracy_min_labels / window_steps / 4  # matched labels per step: a quarter of the minimum per window
    silent = _const(0, total)
    flat_after = _seq((0, rate, warm), (rate * warm, 0, after))  # a counter that stops increasing
    rising_after = _seq((0, 0, warm), (0, rate, after))  # a counter that starts increasing
    long_ago = f"{-2 * max(parse_duration(p.model_max_age), parse_duration(p.pipeline_max_age)):.0f}"
    invalid_requests = [s("model_requests_total", p.model_job, with_tail(_const("_", warm), _seq((1, rate, after))),
                          ', model="iris", endpoint="infer", code="400"')]

    def pipeline_alert() -> list[dict]:
        rule = next(r for r in alert_rules(p) if r["alert"] == "ModelPipelineNotPushing")
        return [{"exp_labels": {"severity": "warning", "ml_test_score": "Monitoring 4", "component": COMPONENT,
                                "job": p.training_job},
                 "exp_annotations": {k: v.replace("{{ $labels.job }}", p.training_job)
                                     for k, v in rule["annotations"].items()}}]

    lagging_probe = with_tail(healthy(warm + 1), _const(0, after - 1))
    model_stale = with_tail(healthy(warm), "stale")
    steady_metrics = latency(False) + requests(False)
    steady_tls = tls(ok, ok, _const(f"{expiry_far:.0f}", total))
    cert_soon = p.cert_expiring_days * day / 2
    cert_far = f"{expiry_far:.0f}"
    tls_jobs = {"job": p.tls_insecure_job}

    healthy_ml = serving(ok, ok) + steady_metrics + steady_tls
    return [
        ("healthy replica: nothing fires", healthy_ml + ml(), {}),
        (
            "kill (probe lags the scrape by one cycle): only ModelServerDown",
            [s("up", p.model_job, dead), s("probe_success", p.blackbox_job, lagging_probe),
             s("probe_success", p.readiness_job, lagging_probe),
             s("probe_duration_seconds", p.blackbox_job, fast_probe),  # refused at once
             s("model_ready", p.model_job, model_stale, ', model="iris"')] + steady_tls
            # the model-quality series end with the process: no drift, staleness or feedback alert
            + ml(warm, feedback=_const(1, warm)),
            {"ModelServerDown": alert("ModelServerDown", "critical", "Infrastructure", p.model_job)},
        ),
        (
            "restart after a kill: everything resolved",
            [s("up", p.model_job, _seq((1, 0, warm), (0, 0, 5), (1, 0, after - 5))),
             s("probe_success", p.blackbox_job, _seq((1, 0, warm), (0, 0, 5), (1, 0, after - 5))),
             s("probe_success", p.readiness_job, _seq((1, 0, warm), (0, 0, 5), (1, 0, after - 5))),
             s("model_ready", p.model_job, with_tail(healthy(warm), with_tail(_const("_", 5), healthy(after - 5))),
               ', model="iris"')] + steady_metrics + steady_tls,
            {},
        ),
        (
            "telemetry-only outage (scrape fails, replica answers): only ModelTelemetryAbsent",
            serving(dead, ok, ok, model_stale) + steady_tls,
            {"ModelTelemetryAbsent": alert("ModelTelemetryAbsent", "warning", "Monitoring", p.blackbox_job)},
        ),
        (
            "telemetry-only outage (target dropped from the scrape): only ModelTelemetryAbsent",
            serving(gone, ok, ok, model_stale) + steady_tls,
            {"ModelTelemetryAbsent": alert("ModelTelemetryAbsent", "warning", "Monitoring", p.blackbox_job)},
        ),
        (
            "model not ready (live, model_ready 0, readiness probe failing): only ModelNotReady",
            serving(ok, ok, dead, dead) + steady_metrics + steady_tls,
            {"ModelNotReady": alert("ModelNotReady", "warning", "Infrastructure")},
        ),
        (
            "slow inference: only ModelHighLatencyP95",
            serving(ok, ok) + latency(True) + requests(False) + steady_tls,
            {"ModelHighLatencyP95": alert("ModelHighLatencyP95", "warning", "Monitoring 6")},
        ),
        (
            "network latency to the endpoint (probes succeed, slowly): only ModelEndpointLatencyHigh",
            serving(ok, ok, probe_time=slow_probe) + steady_metrics + steady_tls,
            {"ModelEndpointLatencyHigh": alert("ModelEndpointLatencyHigh", "warning", "Monitoring 6")},
        ),
        (
            "hung replica (scrape and probes time out, slowly): only ModelServerDown",
            serving(dead, dead, dead, model_stale, probe_time=with_tail(_const(0.005, warm), _const(1, after)))
            + steady_tls,
            {"ModelServerDown": alert("ModelServerDown", "critical", "Infrastructure", p.model_job)},
        ),
        (
            "half of the infer calls fail with 500: only ModelHighErrorRate",
            serving(ok, ok) + latency(False) + requests(True) + steady_tls,
            {"ModelHighErrorRate": alert("ModelHighErrorRate", "critical", "Infrastructure 7")},
        ),
        (
            "certificate expires soon: only ModelCertificateExpiringSoon",
            serving(ok, ok) + steady_metrics
            + tls(ok, ok, with_tail(_const(cert_far, warm), _const(f"{cert_soon:.0f}", after))),
            {"ModelCertificateExpiringSoon": alert("ModelCertificateExpiringSoon", "warning", "Infrastructure",
                                                   extra=tls_jobs)},
        ),
        (
            "certificate expired (verifying probe fails too): only ModelCertificateExpired",
            serving(ok, ok) + steady_metrics + tls(dead, ok, with_tail(_const(cert_far, warm), _const(1, after))),
            {"ModelCertificateExpired": alert("ModelCertificateExpired", "critical", "Infrastructure",
                                              extra=tls_jobs)},
        ),
        (
            "untrusted certificate (valid dates): only ModelEndpointTLSProbeFailing",
            serving(ok, ok) + steady_metrics + tls(dead, ok, _const(cert_far, total)),
            {"ModelEndpointTLSProbeFailing": alert("ModelEndpointTLSProbeFailing", "critical", "Infrastructure",
                                                   extra={"job": p.tls_job})},
        ),
        (
            "prediction drift (PSI 0.5, replica healthy): only ModelPredictionDrift",
            healthy_ml + ml(psi=fault(0.01, f"{max(0.5, 2 * p.drift_psi_threshold):g}")),
            {"ModelPredictionDrift": alert("ModelPredictionDrift", "warning", "Monitoring 3")},
        ),
        (
            "an old model version is served (trained long ago): only ModelStale",
            healthy_ml + ml(trained=fault(0, long_ago)),
            {"ModelStale": alert("ModelStale", "warning", "Monitoring 4")},
        ),
        (
            "half of the infer calls are invalid (400): only ModelInvalidInputRatioHigh",
            healthy_ml + invalid_requests + ml(invalid=rising_after),
            {"ModelInvalidInputRatioHigh": alert("ModelInvalidInputRatioHigh", "warning", "Monitoring 2")},
        ),
        (
            "NaN outputs (answered 200, not counted as predictions): only ModelNonFiniteOutputs",
            healthy_ml + ml(non_finite=rising_after, predictions=flat_after),
            {"ModelNonFiniteOutputs": alert("ModelNonFiniteOutputs", "critical", "Monitoring 5")},
        ),
        (
            "feedback stops while predictions are served: only ModelFeedbackAbsent",
            healthy_ml + ml(feedback=_seq((1, rate, warm), (rate * (warm - 1) + 1, 0, after)),
                            matched=counter(rate, 0), correct=counter(rate * good, 0)),
            {"ModelFeedbackAbsent": alert("ModelFeedbackAbsent", "warning", "Monitoring 7")},
        ),
        (
            "no feedback loop at all (counter 0 since start-up): nothing fires",
            healthy_ml + ml(feedback=silent, matched=silent, correct=silent),
            {},
        ),
        (
            "bad model pushed (a third of the matched labels right): only ModelAccuracyLow",
            healthy_ml + ml(correct=counter(rate * good, rate / 3)),
            {"ModelAccuracyLow": alert("ModelAccuracyLow", "critical", "Monitoring 7")},
        ),
        (
            f"accuracy dips to 0.9 (threshold {p.accuracy_threshold:g}): nothing fires",
            healthy_ml + ml(correct=counter(rate * good, rate * 0.9)),
            {},
        ),
        (
            "too few matched labels in the window (every one wrong): nothing fires",
            healthy_ml + ml(matched=_seq((0, few, total)), correct=silent),
            {},
        ),
        (
            "idle replica after wrong predictions (no traffic, no labels in the window): nothing fires",
            healthy_ml + ml(predictions=flat_after, feedback=counter(rate, 0), matched=counter(rate, 0),
                            correct=counter(rate / 3, 0)),
            {},
        ),
        (
            "repository loads fail (the rollout retries; the old version keeps serving): only ModelLoadFailed",
            healthy_ml + ml(load_failures=rising_after),
            {"ModelLoadFailed": alert("ModelLoadFailed", "warning", "Monitoring 4")},
        ),
        (
            "a load that failed before the window (the counter does not move): nothing fires",
            healthy_ml + ml(load_failures=_const(1, total)),
            {},
        ),
        (
            "the training pipeline stopped pushing: only ModelPipelineNotPushing",
            healthy_ml + ml(push=fault(0, long_ago)),
            {"ModelPipelineNotPushing": pipeline_alert()},
        ),
    ]
