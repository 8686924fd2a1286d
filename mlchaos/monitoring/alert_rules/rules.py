"""The ML-serving alert rules, rendered as a Prometheus rule file (one group ``ml-serving``).

Every alert joins its signals on the ``instance`` label: the scrape target of a replica and the
blackbox probes of that replica share ``instance = host:port`` (the probe jobs relabel it so,
see :mod:`mlchaos.sandbox.monitoring_stack`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from mlchaos.monitoring.alert_rules.parameters import (
    COMPONENT,
    GROUP_NAME,
    STAGING,
    RuleParameters,
    format_duration,
    parse_duration,
)


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
            # the readiness probe failed all through a window in which the liveness probe never failed: the
            # failures of a replica that was down (ModelServerDown's) do not count once it answers again
            f'max by ({by}) (model_ready{{job="{p.model_job}"}}) == 0'
            f" or max by ({by}) (max_over_time({ready}[{lag}]) == 0"
            f" and on(instance) min_over_time({live}[{lag}]) == 1)",
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
            # only predictions whose labels are due count: those of infer requests naming an OIP id (a client in
            # a feedback loop). Predictions nobody will label (probes, traffic without feedback) never fire it,
            # whatever feedback the replica had before; a killed replica does not either (its series go stale).
            # Both counters are exported from start-up (0 until the first event), so increase() sees them.
            f"sum by ({by}) (increase(model_predictions_awaiting_feedback_total{{{job}}}[{fw}])) > 0"
            f" unless on(instance) sum by (instance) (increase(model_feedback_events_total{{{job}}}[{fw}])) > 0",
            p.feedback_for, "warning", "Monitoring 7",
            f"No feedback reaches {inst}",
            f"{inst} serves predictions whose true labels are due (infer requests naming an id) but has received"
            f" no true labels on its feedback endpoint for {fw}:"
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


def dump_yaml(data: Any) -> str:
    """YAML as the rule files are written: block strings for multi-line text, no anchors, key order kept."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


def render_rules(params: RuleParameters = STAGING) -> str:
    """Render the ML-serving alert rules as a Prometheus rule file (one group ``ml-serving``)."""
    header = (
        "# Alert rules for ML model serving, generated by `mlchaos rules` -- do not edit by hand.\n"
        f"# Parameters: {', '.join(f'{k}={v}' for k, v in dataclasses.asdict(params).items())}\n"
    )
    return header + dump_yaml({"groups": [{"name": GROUP_NAME, "rules": alert_rules(params)}]})


def render_prometheus_rule(params: RuleParameters = STAGING, name: str = "ml-serving-alerts",
                           namespace: str = "ml-serving", labels: dict[str, str] | None = None) -> str:
    """The same rules as :func:`render_rules`, as a Prometheus Operator ``PrometheusRule`` object."""
    from mlchaos.monitoring.alert_rules.prometheus_rule import prometheus_rule

    header = (
        "# Alert rules for ML model serving as a PrometheusRule, generated by `mlchaos rules --format prometheusrule`"
        " -- do not edit by hand.\n"
        f"# Parameters: {', '.join(f'{k}={v}' for k, v in dataclasses.asdict(params).items())}\n"
    )
    groups = [{"name": GROUP_NAME, "rules": alert_rules(params)}]
    return header + dump_yaml(prometheus_rule(groups, name, namespace, labels))
