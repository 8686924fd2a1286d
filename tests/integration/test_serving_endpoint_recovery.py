"""A model fault through an authenticated serving endpoint declared only in a ``--var-file``, recovered after SIGKILL.

Real `mlchaos run` processes unload the model behind a real nginx ingress (basic auth, ``Host`` routing:
tests/support/nginx_gateway.py) in front of a sandbox replica, through the endpoint ``serving`` that only the
var file declares (``url: ${serving_url}``, the URL from the var file's configuration). The runner is SIGKILLed
while the fault is in place; the change record's undo names the endpoint, and the run recorded its endpoints
in the journal (and exactly in its exact records), so:

* ``mlchaos recover`` rebuilds the endpoint, with its credentials, from the journal alone: the experiment, the
  var file and the exact records are gone;
* the guardian does it from the exact records when the user name came from a secret (``***`` in the journal,
  which never holds it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from drivers.model import probes
from mlchaos.engine import exit_codes
from mlchaos.lib import endpoints
from mlchaos.sandbox.manager import Sandbox
from tests.support import nginx_gateway
from tests.support.environment import child_env
from tests.support.nginx_gateway import PASSWORD, PASSWORD_VARIABLE, USER
from tests.support.polling import wait_until

USER_VARIABLE = "MLCHAOS_TEST_SERVING_USER"


@pytest.fixture(scope="module")
def gateway(module_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with nginx_gateway.gateway(tmp_path_factory.mktemp("nginx"), module_sandbox.replicas("model")[0].client_url) as url:
        yield url


@pytest.fixture
def env(module_sandbox: Sandbox) -> dict[str, str]:
    return child_env(module_sandbox.state_dir, **{PASSWORD_VARIABLE: PASSWORD, USER_VARIABLE: USER,
                                                  "MLCHAOS_ALLOWED_ENVIRONMENTS": None})


def _served(gateway: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """What the replica behind the gateway serves, asked through it (with the endpoint's credentials)."""
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)
    table = endpoints.EndpointTable({"serving": endpoints.Endpoint.from_dict("serving",
                                                                             nginx_gateway.declaration(gateway))})
    previous = endpoints.activate(table)
    try:
        return probes.served_versions(target="url", endpoint="serving")
    finally:
        endpoints.activate(previous)
        table.close()


def _journal(path: Path) -> dict:
    return json.loads(path.read_text())


def _run(tmp_path: Path, env: dict[str, str], gateway: str, user: str) -> tuple[subprocess.Popen, Path]:
    """`mlchaos run` unloading the model through the var file's endpoint, then holding the fault for 120 s."""
    where = {"target": "url", "endpoint": "serving"}
    experiment = {
        "title": "unload the model behind the ingress", "description": "d",
        "secrets": {"serving": {"user": {"type": "env", "key": USER_VARIABLE}}},
        "method": [
            {"type": "action", "name": "unload", "provider": {
                "type": "python", "module": "drivers.model.actions", "func": "unload_model", "arguments": where}},
            {"type": "probe", "name": "hold-the-fault", "pauses": {"after": 120}, "provider": {
                "type": "python", "module": "drivers.model.probes", "func": "served_versions", "arguments": where}},
        ]}
    declared = nginx_gateway.declaration("${serving_url}")
    declared["basic_auth"] = {**declared["basic_auth"], "username": user}  # type: ignore[dict-item]
    variables = {"configuration": {"serving_url": gateway}, "endpoints": {"serving": declared}}
    (tmp_path / "experiment.json").write_text(json.dumps(experiment))
    (tmp_path / "vars.yaml").write_text(yaml.safe_dump(variables))
    journal = tmp_path / "journal.json"
    proc = subprocess.Popen([sys.executable, "-m", "mlchaos", "run", str(tmp_path / "experiment.json"),
                             "--var-file", str(tmp_path / "vars.yaml"), "--journal", str(journal)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, journal


def _unloaded(journal: Path, gateway: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    return journal.exists() and bool(_journal(journal)["mlchaos"]["changes"]) and \
        not any(_served(gateway, monkeypatch).values())


def _kill(proc: subprocess.Popen) -> str:
    proc.kill()
    out, err = proc.communicate(timeout=10)
    return out + err


def test_mlchaos_recover_rebuilds_the_var_file_endpoint_from_the_journal_alone(gateway, env, tmp_path, monkeypatch):
    before = _served(gateway, monkeypatch)
    assert all(before.values()), before
    env[USER_VARIABLE] = "a-secret-the-endpoint-does-not-use"  # else the literal user name is redacted as well
    proc, journal = _run(tmp_path, env, gateway, USER)
    try:
        wait_until(lambda: _unloaded(journal, gateway, monkeypatch), timeout=60, what="the model unloaded")
        wait_until(lambda: _journal(journal)["mlchaos"].get("guardian_pid"), what="the guardian's pid")
        os.kill(_journal(journal)["mlchaos"]["guardian_pid"], signal.SIGKILL)  # the host went down: both
    finally:
        output = _kill(proc)
    data = _journal(journal)
    (change,) = data["mlchaos"]["changes"]
    assert change["undo"]["arguments"]["endpoint"] == "serving" and "urls" not in change["undo"]["arguments"]
    assert data["mlchaos"]["endpoints"]["serving"]["url"] == gateway  # substituted, as the run used it
    assert "endpoints" not in json.dumps(data["experiment"])  # the experiment itself declares none
    for leftover in (tmp_path / "experiment.json", tmp_path / "vars.yaml",
                     Path(data["mlchaos"]["exact_records"]["path"])):
        leftover.unlink()
    assert not any(_served(gateway, monkeypatch).values()), "nobody undid the fault"

    recovered = subprocess.run([sys.executable, "-m", "mlchaos", "recover", str(journal)], env=env,
                               capture_output=True, text=True, timeout=60)
    assert recovered.returncode == exit_codes.OK, recovered.stdout + recovered.stderr
    assert "undone  unload" in recovered.stdout
    assert _served(gateway, monkeypatch) == before
    assert PASSWORD not in journal.read_text() + output + recovered.stdout + recovered.stderr


def test_the_guardian_reaches_the_endpoint_whose_user_came_from_a_secret(gateway, env, tmp_path, monkeypatch):
    """The user name is ``${user}`` (secret serving.user): the journal shows ``***``, the exact records keep it."""
    before = _served(gateway, monkeypatch)
    proc, journal = _run(tmp_path, env, gateway, "${user}")
    try:
        wait_until(lambda: _unloaded(journal, gateway, monkeypatch), timeout=60, what="the model unloaded")
        exact = Path(_journal(journal)["mlchaos"]["exact_records"]["path"])
        assert json.loads(exact.read_text())["endpoints"]["serving"]["basic_auth"]["username"] == USER
    finally:
        output = _kill(proc)
    wait_until(lambda: _served(gateway, monkeypatch) == before, timeout=30, what="the guardian to load the model")
    wait_until(lambda: _journal(journal)["mlchaos"].get("recoveries"), what="the recovery in the journal")
    (recovery,) = _journal(journal)["mlchaos"]["recoveries"]
    assert recovery["by"] == "guardian (runner gone)" and recovery["ok"], recovery
    data = _journal(journal)
    assert data["mlchaos"]["endpoints"]["serving"]["basic_auth"]["username"] == "***"
    assert USER not in journal.read_text() and USER not in output and PASSWORD not in journal.read_text()
    assert not exact.exists()
