"""Chaos Toolkit controls through the real ``mlchaos run`` CLI: the same hooks as the real ``chaos run`` (compared
call by call), Chaos Toolkit's exit interface from a control, and published controls from PyPI: chaostoolkit-addons'
safeguards (a failing safeguard calls ``exit_gracefully``), chaostoolkit-prometheus' metrics control against a
real Pushgateway, and chaostoolkit-opentracing's control."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from mlchaos.engine import exit_codes
from tests.support.bad_experiments import valid
from tests.support.builders import probe, py
from tests.support.components import require_component
from tests.support.http_server import LoopbackServer
from tests.support.report_helpers import serve

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"


def logging_control(log: Path, name: str = "logger", **arguments: Any) -> dict[str, Any]:
    return {"name": name, "provider": {"type": "python", "module": "testcontrols",
                                       "arguments": {"log": str(log), **arguments}}}


def hooks(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def experiment(tmp_path: Path, *controls: dict[str, Any]) -> dict[str, Any]:
    data = valid()
    data["steady-state-hypothesis"]["probes"] = [probe("healthy", "echo", True, value=True)]
    data["method"] = [py("inject", "inject_marker", path=str(tmp_path / "fault"))]
    data["rollbacks"] = [py("repair", "remove_marker", path=str(tmp_path / "fault")),
                         py("log", "append_line", path=str(tmp_path / "rollback.log"), text="rolled back")]
    if controls:
        data["controls"] = list(controls)
    return data


def mlchaos_run(tmp_path: Path, env: dict[str, str], data: dict[str, Any], *options: str,
                name: str = "experiment.json") -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    journal = tmp_path / f"{path.stem}.journal.json"
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal), *options],
                          env=env, capture_output=True, text=True, timeout=120)
    return proc, json.loads(journal.read_text()) if journal.exists() else {}


def rolled_back(tmp_path: Path) -> bool:
    return not (tmp_path / "fault").exists() and (tmp_path / "rollback.log").read_text() == "rolled back\n"


def test_the_same_hooks_as_chaos_run_with_experiment_activity_and_settings_controls(tmp_path, subprocess_env):
    """The differential check: one experiment with a control at each level (the settings file's global one too)
    run by `chaos run` and by `mlchaos run`; the control logs every call: hook, context, state, arguments."""
    home = tmp_path / "home"
    (home / ".chaostoolkit").mkdir(parents=True)
    logs = {tool: tmp_path / f"{tool}.jsonl" for tool in ("chaos", "mlchaos")}
    for tool, log in logs.items():
        folder = tmp_path / tool
        folder.mkdir()
        (home / ".chaostoolkit" / "settings.yaml").write_text(json.dumps({"controls": {"global": {"provider": {
            "type": "python", "module": "testcontrols", "arguments": {"log": str(log), "level": "settings"}}}}}))
        data = experiment(folder, logging_control(log, "top", events=str(tmp_path / f"{tool}-events.jsonl")),
                          {**logging_control(log, "after-only", level="top"), "scope": "after"})
        data["method"][0]["controls"] = [logging_control(log, "on-inject", level="activity")]
        data["steady-state-hypothesis"]["controls"] = [logging_control(log, "on-hypothesis", level="hypothesis")]
        data["configuration"] = {"region": "eu"}
        path = folder / "experiment.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        env = {**subprocess_env, "HOME": str(home)}
        if tool == "chaos":
            command = [sys.executable, "-m", "chaostoolkit", "--no-version-check", "--log-file",
                       str(folder / "chaos.log"), "run", str(path), "--journal-path", str(folder / "journal.json")]
        else:
            command = [sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(folder / "journal.json")]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=folder)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert rolled_back(folder)

    def comparable(value: Any) -> Any:
        """What may differ: `chaos` adds a `runtime` key to the settings; the journal has mlchaos' own section, and
        its status while the run goes on is `running` (chaoslib: null)."""
        if isinstance(value, list):
            return [comparable(v) for v in value if v != "runtime"]
        if isinstance(value, dict):
            value = {k: comparable(v) for k, v in value.items() if k != "has_mlchaos"}
            if value.get("journal_status") == "running":
                value["journal_status"] = None
        return value

    chaos, ours = [[comparable(c) for c in hooks(logs[t])] for t in ("chaos", "mlchaos")]
    assert len(ours) == 69  # 5 controls at 4 levels: each hook of each (docs/chaostoolkit.md)
    assert ours == [json.loads(json.dumps(c).replace(str(tmp_path / "chaos"), str(tmp_path / "mlchaos")))
                    for c in chaos]
    assert {c["hook"] for c in ours} >= {"before_loading_experiment_control", "after_loading_experiment_control",
                                         "configure_control", "cleanup_control", "before_rollback_control"}
    # the run events a control's handler gets (chaoslib's RunEventHandler): the same too
    chaos, ours = [[comparable(c) for c in hooks(tmp_path / f"{t}-events.jsonl")] for t in ("chaos", "mlchaos")]
    assert [c["event"] for c in ours] == [
        "running", "start_hypothesis_before", "start_activity", "activity_completed", "hypothesis_before_completed",
        "start_method", "start_activity", "activity_completed", "method_completed", "start_hypothesis_after",
        "start_activity", "activity_completed", "hypothesis_after_completed", "start_rollbacks", "start_activity",
        "activity_completed", "start_activity", "activity_completed", "rollbacks_completed", "finish"]
    assert ours == [json.loads(json.dumps(c).replace(str(tmp_path / "chaos"), str(tmp_path / "mlchaos")))
                    for c in chaos]


@pytest.mark.parametrize(("how", "signum", "code"), [
    ("ungracefully", signal.SIGUSR2, exit_codes.EXIT_UNGRACEFULLY),
    ("gracefully", signal.SIGUSR1, exit_codes.EXIT_GRACEFULLY),
])
def test_a_control_calling_chaoslib_exit_interrupts_the_run_and_it_rolls_back(tmp_path, subprocess_env, how,
                                                                                signum, code):
    """Chaos Toolkit skips the rollbacks on exit_ungracefully; mlchaos never does."""
    log = tmp_path / "controls.jsonl"
    data = experiment(tmp_path, logging_control(log, exit_in="after_activity_control", exit=how))
    data["method"].append(py("never", "append_line", path=str(tmp_path / "never.log"), text="ran"))
    proc, journal = mlchaos_run(tmp_path, subprocess_env, data)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert journal["status"] == "interrupted" and journal["mlchaos"]["interrupted_by"] == signum.name
    assert rolled_back(tmp_path)
    assert not (tmp_path / "never.log").exists()
    assert [c["hook"] for c in hooks(log)][-2:] == ["after_experiment_control", "cleanup_control"]


def safeguard(probe_spec: dict[str, Any]) -> dict[str, Any]:
    return {"name": "safeguard", "provider": {"type": "python", "module": "chaosaddons.controls.safeguards",
                                              "arguments": {"probes": [probe_spec]}}}


def test_chaostoolkit_addons_safeguard_interrupts_the_run_and_it_rolls_back(tmp_path, subprocess_env):
    """A repeating safeguard sees the fault the method injected (its tolerance fails) and calls exit_gracefully
    while the method waits: the run is interrupted there and rolled back."""
    watch = {**probe("no-fault", "marker_exists", False, path=str(tmp_path / "fault")), "frequency": 0.05}
    data = experiment(tmp_path, safeguard(watch))
    data["method"].append(py("wait", "wait_for_lines", path=str(tmp_path / "never.log"), count=1, timeout=90))
    proc, journal = mlchaos_run(tmp_path, subprocess_env, data)
    assert proc.returncode == exit_codes.EXIT_GRACEFULLY, proc.stdout + proc.stderr
    assert journal["status"] == "interrupted" and journal["mlchaos"]["interrupted_by"] == "SIGUSR1"
    assert [r["status"] for r in journal["run"]] == ["succeeded", "interrupted"]
    assert rolled_back(tmp_path)
    assert journal["mlchaos"]["controls"]["problems"] == []


def test_a_failing_safeguard_precheck_interrupts_the_run_at_its_start_and_it_rolls_back(tmp_path, subprocess_env):
    """A precheck runs before the experiment, blocking it, but chaostoolkit-addons releases the experiment
    (``run_now``: the barrier is passed in a ``finally``) before it checks the probe's tolerance and calls
    ``exit_gracefully``. So SIGUSR1 may arrive once the method has begun, as under ``chaos run``: a clean-clone
    CI run saw the first action interrupted 5 ms in. Either way the run is interrupted at once and rolled back."""
    precheck = probe("precheck", "echo", True, value=False)
    data = experiment(tmp_path, safeguard(precheck))
    proc, journal = mlchaos_run(tmp_path, subprocess_env, data)
    assert proc.returncode == exit_codes.EXIT_GRACEFULLY, proc.stdout + proc.stderr
    assert journal["status"] == "interrupted" and journal["mlchaos"]["interrupted_by"] == "SIGUSR1"
    assert [(r["activity"]["name"], r["status"]) for r in journal["run"]] in ([], [("inject", "interrupted")])
    assert not (tmp_path / "fault").exists() and (tmp_path / "rollback.log").exists()


def test_a_safeguard_without_probes_is_refused_by_its_own_validation(tmp_path, subprocess_env):
    data = experiment(tmp_path, {**safeguard({}), "provider": {"type": "python",
                                                               "module": "chaosaddons.controls.safeguards"}})
    proc, journal = mlchaos_run(tmp_path, subprocess_env, data)
    assert proc.returncode == exit_codes.INVALID and journal == {}
    assert "its own validation failed: safeguard control must have at least one probe" in proc.stdout + proc.stderr


@pytest.fixture
def pushgateway(tmp_path):
    require_component("Pushgateway", os.access(PUSHGATEWAY, os.X_OK),
                      "run scripts/install-system-packages.sh (Debian package prometheus-pushgateway)")
    with serve(lambda port: [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="], "/-/ready",
               tmp_path / "pushgateway.log") as url:
        yield url


def test_chaostoolkit_prometheus_metrics_control_pushes_each_run_to_a_real_pushgateway(tmp_path, subprocess_env,
                                                                                        pushgateway):
    """chaosprometheus.metrics pushes "in progress" before the experiment and the journal's status after it."""
    metrics = {"name": "metrics", "provider": {"type": "python", "module": "chaosprometheus.metrics", "arguments": {
        "pushgateway_url": pushgateway, "job": "drill", "trace_id": "run-1", "experiment_ref": "kill"}}}
    proc, journal = mlchaos_run(tmp_path, subprocess_env, experiment(tmp_path, metrics))
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    assert journal["mlchaos"]["controls"]["problems"] == []
    text = requests.get(f"{pushgateway}/metrics", timeout=5).text
    samples = {(s.name, s.labels.get("chaostoolkit_experiment_status")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples
               if s.labels.get("job") == "drill"}
    assert samples[("chaostoolkit_experiment_status", "completed")] == 1
    assert samples[("chaostoolkit_experiment_status", "interrupted")] == 0
    assert samples[("chaostoolkit_inprogress_experiment", None)] == 0
    assert samples[("chaostoolkit_experiment_duration", None)] == pytest.approx(journal["duration"])


def test_chaostoolkit_opentracing_control_runs_every_hook_without_a_problem(tmp_path, subprocess_env):
    tracing = {"name": "tracing", "provider": {"type": "python", "module": "chaostracing.control",
                                               "arguments": {"provider": "noop"}}}
    proc, journal = mlchaos_run(tmp_path, subprocess_env, experiment(tmp_path, tracing))
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    record = journal["mlchaos"]["controls"]
    assert record["declared"] == ["tracing"] and record["problems"] == [] and record["calls"] == 22


class _TraceReceiver(http.server.BaseHTTPRequestHandler):
    """Takes OTLP/HTTP trace exports (protobuf), as an OpenTelemetry collector's receiver does."""

    requests: list[bytes]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


def test_chaostoolkit_opentracing_opentelemetry_control_traces_the_run_through_run_events(tmp_path, subprocess_env):
    """chaostracing.oltp works only through chaoslib's run events (a handler it registers in configure_control): the
    real OTLP exporter sends the run's spans. No OpenTelemetry collector is packaged here: the test takes the
    export itself (OTLP/HTTP, protobuf), on loopback."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    with LoopbackServer(_TraceReceiver) as receiver:
        server = receiver.server
        server.requests = []  # type: ignore[attr-defined]
        tracing = {"name": "otel", "provider": {"type": "python", "module": "chaostracing.oltp"}}
        env = {**subprocess_env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces",
               "OTEL_SERVICE_NAME": "drill"}
        proc, journal = mlchaos_run(tmp_path, env, experiment(tmp_path, tracing))  # exits: the exporter flushed
    assert proc.returncode == exit_codes.OK, proc.stdout + proc.stderr
    assert journal["mlchaos"]["controls"]["problems"] == [] and journal["mlchaos"]["controls"]["run_events"] == 20
    spans = {}
    for body in server.requests:  # type: ignore[attr-defined]
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    spans[span.name] = {a.key: a.value for a in span.attributes}
    assert {"experiment", "hypothesis", "method", "rollbacks", "activity: healthy", "activity: inject",
            "activity: repair"} <= set(spans)
    assert spans["experiment"]["chaostoolkit.experiment.status"].string_value == "completed"
    assert spans["activity: inject"]["chaostoolkit.activity.status"].string_value == "succeeded"
