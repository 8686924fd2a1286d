"""The ``prometheus`` endpoint declared only in a ``--var-file``, with ``${name}`` variables, by the real CLI against a
real Prometheus behind ``--web.config.file`` (TLS with a private CA, basic auth with a bcrypt hash).

The var file gives the URL (``url: ${prometheus_url}``, from its own configuration), the CA (a path relative to
the var file) and basic auth whose user name is ``${prom_user}`` (a secret, from the environment) and whose
password is the secret ``monitoring.password``. ``mlchaos validate``, ``plan``, ``run`` and ``report`` all go
through it; neither the user name nor the password appears in anything they print or write.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlchaos.engine import exit_codes
from tests.support import auth_monitoring as am
from tests.support.components import require_component
from tests.support.environment import child_env

USER, PASSWORD = "vf-operator-2b7e", "vf-pw-0c4d91e7-never-shown"
SECRETS = {"monitoring": {"user": {"type": "env", "key": "MLCHAOS_VF_USER"},
                          "password": {"type": "env", "key": "MLCHAOS_VF_PASSWORD"}}}
QUERY = {"type": "python", "module": "drivers.prometheus.probes", "func": "query_value",
         "arguments": {"query": "vector(1)"}}  # no endpoint named: the one declared as prometheus


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_component("Prometheus", am.binaries_present(),
                      "apt-get install prometheus prometheus-alertmanager (scripts/install-system-packages.sh)")
    tmp = tmp_path_factory.mktemp("vf-prometheus")
    pki = am.make_pki(tmp / "pki")
    server = am.start_prometheus(tmp / "prometheus", {"global": {"scrape_interval": "15s"}},
                                 am.web_config(tmp / "web.yml", users={USER: PASSWORD}, pki=pki),
                                 ready_auth={"verify": str(pki.ca), "auth": (USER, PASSWORD)})
    yield {"url": server.url, "ca": pki.ca}
    server.stop()


@pytest.fixture
def files(prometheus: dict[str, Any], tmp_path: Path) -> dict[str, Path]:
    """The experiment (no endpoints of its own) and, in another folder, the var file and the CA it names."""
    experiment = {"title": "a query through the var file's prometheus", "description": "d", "secrets": SECRETS,
                  "steady-state-hypothesis": {"title": "up", "probes": [
                      {"type": "probe", "name": "vector-one", "tolerance": 1, "provider": QUERY}]},
                  "method": [{"type": "probe", "name": "again", "provider": QUERY}]}
    staging = tmp_path / "staging"
    (staging / "certs").mkdir(parents=True)
    shutil.copy(prometheus["ca"], staging / "certs" / "ca.crt")
    variables = {"configuration": {"prometheus_url": prometheus["url"]}, "endpoints": {"prometheus": {
        "url": "${prometheus_url}", "ca_file": "certs/ca.crt", "timeout": 10,
        "basic_auth": {"username": "${user}", "password_secret": "monitoring.password"}}}}
    (tmp_path / "experiment.json").write_text(json.dumps(experiment))
    (staging / "vars.yaml").write_text(yaml.safe_dump(variables))
    return {"experiment": tmp_path / "experiment.json", "vars": staging / "vars.yaml"}


def _mlchaos(*args: Any, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlchaos", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=120)


def test_validate_plan_run_and_report_go_through_the_var_files_endpoint_and_show_no_credential(files, tmp_path,
                                                                                              prometheus):
    env = child_env(tmp_path / "state", MLCHAOS_VF_USER=USER, MLCHAOS_VF_PASSWORD=PASSWORD)
    var_file = ["--var-file", files["vars"]]
    validated = _mlchaos("validate", files["experiment"], *var_file, env=env)
    planned = _mlchaos("plan", files["experiment"], *var_file, "--journal", tmp_path / "plan.json", env=env)
    ran = _mlchaos("run", files["experiment"], *var_file, "--journal", tmp_path / "journal.json", env=env)
    for done in (validated, planned, ran):
        assert done.returncode == exit_codes.OK, done.stdout + done.stderr
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["steady_states"]["before"]["probes"][0]["output"] == 1.0  # answered through TLS + basic auth
    assert journal["mlchaos"]["endpoints"]["prometheus"] == {
        "url": prometheus["url"], "ca_file": str(files["vars"].parent / "certs" / "ca.crt"), "timeout": 10,
        "basic_auth": {"username": "***", "password_secret": "monitoring.password"}}
    report = _mlchaos("report", tmp_path / "journal.json", "--out", tmp_path / "report", env=env)
    assert report.returncode == 0, report.stdout + report.stderr

    texts = {"validate": validated.stdout + validated.stderr, "plan": planned.stdout + planned.stderr,
             "plan journal": (tmp_path / "plan.json").read_text(), "run": ran.stdout + ran.stderr,
             "journal": (tmp_path / "journal.json").read_text(), "report": report.stdout + report.stderr,
             **{f"report {p.name}": p.read_text() for p in (tmp_path / "report").iterdir()}}
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert {name for name, text in texts.items() if USER in text or PASSWORD in text or basic in text} == set()


def test_a_var_file_endpoint_with_an_unresolved_variable_is_refused_naming_the_file_and_the_place(files, tmp_path):
    env = child_env(tmp_path / "state", MLCHAOS_VF_USER=USER, MLCHAOS_VF_PASSWORD=PASSWORD)
    text = files["vars"].read_text().replace("${prometheus_url}", "${prometheus_ur}")
    files["vars"].write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "prometheus_ur}" in row)
    done = _mlchaos("validate", files["experiment"], "--var-file", files["vars"], env=env)
    assert done.returncode == exit_codes.INVALID, done.stdout + done.stderr
    assert (f"{files['vars']}:{line}: /endpoints/prometheus/url: endpoints: endpoint 'prometheus': unresolved "
            "variable ${prometheus_ur}: not in configuration or secrets (did you mean 'prometheus_url'?)") \
        in done.stdout + done.stderr
