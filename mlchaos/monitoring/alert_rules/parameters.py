"""The parameters the ML-serving alert rules are rendered with: windows, thresholds, job names, two profiles.

:data:`SANDBOX` has seconds-long windows for a 1 s scrape interval, so a drill sees an alert fire
within seconds; :data:`STAGING` has minutes, for a real deployment.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from mlchaos.errors import InvalidInput
from mlchaos.experiment.problems import suggest

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
    feedback_window: str = "30m"  # no feedback event over this window while predictions awaiting it are served
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
                raise InvalidInput(f"--set {item!r}: unknown parameter {name!r}{suggest(name, fields)}; "
                                   f"known: {', '.join(fields)}")
            if isinstance(getattr(self, name), float):
                try:
                    changes[name] = float(raw)
                except ValueError:
                    raise InvalidInput(f"--set {item!r}: {name} must be a number") from None
            else:
                changes[name] = raw.strip()
        return dataclasses.replace(self, **changes)


STAGING = RuleParameters()
# a table of values, one per line
SANDBOX = RuleParameters(
    scrape_interval="1s",
    down_for="3s",
    telemetry_absent_for="5s",  # longer than down_for: the probe may lag the scrape by a cycle
    not_ready_for="3s",
    latency_window="15s",
    latency_for="5s",
    endpoint_latency_p95_seconds=0.2,
    endpoint_latency_window="10s",  # 6 s made one slow probe (0.27 s) fire it on a loaded host
    endpoint_latency_for="3s",
    error_rate_ratio=0.1,
    error_window="15s",
    error_for="5s",
    tls_for="3s",
    cert_for="3s",
    drift_for="2s",  # the server's window of 100 predictions already smooths it (mlchaos.sandbox.signals)
    model_max_age="1d",
    stale_for="3s",
    invalid_input_ratio=0.1,
    invalid_input_window="6s",
    invalid_input_for="2s",
    non_finite_window="5s",
    non_finite_for="2s",
    feedback_window="6s",  # the drills' clients send labels ten times a second per replica: it fires after a
    feedback_for="3s",  # 9 s gap at least (6 s window + 3 s), which no healthy replica has even on a loaded host
    accuracy_window="8s",  # ten labels a second per replica: ~80 in the window, four times accuracy_min_labels
    accuracy_for="2s",
    accuracy_min_labels=20.0,
    load_failure_window="6s",
    pipeline_max_age="5s",  # the sandbox pipeline pushes every second: a drill sees it stop in seconds
    pipeline_for="2s",
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
