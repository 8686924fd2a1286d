"""Secrets and env-backed configuration values never reach the journal, stdout or stderr of a real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlchaos.journal.redaction import REDACTED, Redactor, sensitive_values
from tests.support.bad_experiments import valid

LITERAL_SECRET = "s3cr3t-literal-token"
ENV_SECRET = "pa55-from-the-environment"
ENV_CONFIG = "http://internal-host.example:8443/admin"
ENV_DEFAULT = "fallback-from-default"


def _leak(name: str, token: str, endpoint: str, fail: bool = False) -> dict:
    arguments = {"token": token, "endpoint": endpoint, "fail": fail}
    return {"type": "action", "name": name, "provider": {
        "type": "python", "module": "testdrivers", "func": "leak", "arguments": arguments}}


def _experiment() -> dict:
    data = valid()
    data["configuration"] = {
        "endpoint": {"type": "env", "key": "MLCHAOS_TEST_ENDPOINT"},
        "fallback": {"type": "env", "key": "MLCHAOS_TEST_SURELY_UNSET", "default": ENV_DEFAULT},
        "plain": "plain-visible-value",
    }
    data["secrets"] = {"api": {"token": LITERAL_SECRET},
                       "db": {"password": {"type": "env", "key": "MLCHAOS_TEST_PASSWORD"}}}
    data["method"] = [
        _leak("echo-literal-secret", "${token}", "${endpoint}"),
        _leak("echo-default", "${password}", "${fallback} and ${plain}"),
        _leak("raise-with-env-secret", "${password}", "${endpoint}", fail=True),
    ]
    return data


def test_run_redacts_secrets_and_env_configuration(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(_experiment()), encoding="utf-8")
    journal = tmp_path / "leaky-journal.json"
    env = {**subprocess_env, "MLCHAOS_TEST_ENDPOINT": ENV_CONFIG, "MLCHAOS_TEST_PASSWORD": ENV_SECRET}
    env.pop("MLCHAOS_TEST_SURELY_UNSET", None)
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal)],
                          env=env, capture_output=True, text=True, timeout=60)
    written = journal.read_text(encoding="utf-8")
    for where, text in (("journal", written), ("stdout", proc.stdout), ("stderr", proc.stderr)):
        for value in (LITERAL_SECRET, ENV_SECRET, ENV_CONFIG, ENV_DEFAULT):
            assert value not in text, f"{value!r} leaked into {where}"
    # the run still worked: the driver saw the real values, and said so (redacted) everywhere
    assert proc.returncode == 1, proc.stderr  # the third action raised
    runs = json.loads(written)["run"]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded", "failed"]
    assert runs[0]["output"]["seen"] == f"token={REDACTED} endpoint={REDACTED}"
    assert runs[1]["output"]["seen"] == f"token={REDACTED} endpoint={REDACTED} and plain-visible-value"
    assert f"could not use token {REDACTED} at {REDACTED}" in runs[2]["exception"][-1]
    assert f"driver stdout: token={REDACTED}" in proc.stdout
    assert f"driver stderr: token={REDACTED}" in proc.stderr
    assert f"could not use token {REDACTED} at {REDACTED}" in proc.stdout  # the summary's failure line
    assert "plain-visible-value" in written  # only sensitive values are hidden


def test_sensitive_values_covers_env_configuration_and_var_file_declarations() -> None:
    declared = {"url": {"type": "env", "key": "U"}, "port": {"type": "env", "key": "P", "env_var_type": "int"},
                "name": "public"}
    configuration = {"url": "https://hidden.example", "port": 8443, "name": "public", "other": "from-var-file"}
    overrides = {"other": {"type": "env", "key": "O"}}
    values = sensitive_values(declared, configuration, {"scope": {"key": "secret-value"}}, overrides)
    assert set(values) == {"https://hidden.example", "8443", "secret-value", "from-var-file"}
    redactor = Redactor(values)
    assert redactor.data({"port": 8443, "https://hidden.example": "x", "name": "public"}) == {
        "port": REDACTED, REDACTED: "x", "name": "public"}
