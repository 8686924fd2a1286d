"""Secrets and env-backed configuration values never reach the journal, stdout or stderr of a real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlchaos.journal.redaction import REDACTED, Redactor, code_paths, sensitive_values, too_short_to_redact
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
    assert redactor.data({"port": 8443, "https://hidden.example": "x", "at": "https://hidden.example:8443/x"}) == {
        "port": 8443, "https://hidden.example": "x", "at": f"{REDACTED}:{REDACTED}/x"}


def test_only_leaf_strings_change_never_keys_numbers_booleans_or_code_paths() -> None:
    redactor = Redactor(["model", "443", "True"])
    journal = {
        "model": {"port": 443, "ready": True, "url": "https://model.example:443"},
        "activity": {"provider": {"type": "python", "module": "drivers.model.actions", "func": "model",
                                  "arguments": {"name": "model"}}},
        "undo": {"func": "drivers.model.actions.restore_model", "arguments": {"replica": "model-1"}},
    }
    assert redactor.data(journal) == {
        "model": {"port": 443, "ready": True, "url": f"https://{REDACTED}.example:{REDACTED}"},
        "activity": {"provider": {"type": "python", "module": "drivers.model.actions", "func": "model",
                                  "arguments": {"name": REDACTED}}},
        "undo": {"func": "drivers.model.actions.restore_model", "arguments": {"replica": f"{REDACTED}-1"}},
    }


def test_a_drivers_output_can_be_keyed_by_a_secret_and_that_key_is_redacted() -> None:
    """An output is data (a mapping by URL, by path): its keys are; the journal's own keys are not."""
    redactor = Redactor(["https://hidden.example"])
    entry = {"activity": {"name": "probe"}, "output": {"https://hidden.example": {"https://hidden.example/a": 1}}}
    assert redactor.data({"run": [entry]}) == {"run": [
        {"activity": {"name": "probe"}, "output": {REDACTED: {f"{REDACTED}/a": 1}}}]}


def test_text_keeps_code_paths_whole_but_redacts_the_secret_elsewhere() -> None:
    redactor = Redactor(["model", "model.actions.x1"])
    redactor.protect(code_paths({"provider": {"module": "drivers.model.actions", "func": "kill"}}))
    assert redactor.text("action kill (drivers.model.actions.kill) on model-1") == \
        f"action kill (drivers.model.actions.kill) on {REDACTED}-1"
    # a secret that reaches out of a code path is redacted whole
    assert redactor.text("drivers.model.actions.x1") == f"drivers.{REDACTED}"
    assert Redactor(["model"]).text("drivers.model.actions") == f"drivers.{REDACTED}.actions"  # nothing protected


def test_a_bare_function_name_is_not_protected() -> None:
    """Only dotted paths are code: a secret equal to a function's bare name stays hidden in texts."""
    assert code_paths({"module": "testdrivers", "func": "leak"}) == {"testdrivers", "testdrivers.leak"}
    assert code_paths({"func": "kill", "arguments": {}}) == set()
    assert code_paths({"undo": {"func": "drivers.tls.actions.restore_certificate"}}) == \
        {"drivers.tls.actions.restore_certificate"}


def test_values_too_short_to_redact_are_named_by_key_never_by_value() -> None:
    declared = {"zone": {"type": "env", "key": "Z"}, "url": {"type": "env", "key": "U", "default": ""}}
    configuration = {"zone": "eu", "url": "https://long-enough.example"}
    secrets = {"db": {"pin": 42, "password": "long-enough-password", "empty": ""}}
    assert too_short_to_redact(declared, configuration, secrets) == ["configuration.zone", "secrets.db.pin"]
    assert "eu" not in sensitive_values(declared, configuration, secrets)


def test_a_run_warns_once_naming_the_secrets_too_short_to_redact(tmp_path: Path,
                                                                    subprocess_env: dict[str, str]) -> None:
    data = valid()
    data["secrets"] = {"api": {"pin": "7x", "token": LITERAL_SECRET}}
    data["method"] = [_leak("echo", "${token}", "${pin}")]
    path = tmp_path / "short.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    journal = tmp_path / "journal.json"
    proc = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal)],
                          env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [line for line in proc.stdout.splitlines() if "too short to redact" in line]
    assert warnings == ["WARNING: secrets.api.pin: shorter than 3 characters, too short to redact safely: "
                        "shown as is in the journal and the output"]
    written = json.loads(journal.read_text(encoding="utf-8"))
    assert written["mlchaos"]["too_short_to_redact"] == ["secrets.api.pin"]
    assert LITERAL_SECRET not in journal.read_text(encoding="utf-8")


def test_a_secret_added_later_is_redacted_from_then_on() -> None:
    """The run's own receiver token is made after the redactor; it must be redacted all the same."""
    redactor = Redactor(["alpha-secret"])
    token = "a-run-token-made-later-0123456789"
    assert redactor.text(f"bearer {token}") == f"bearer {token}"
    redactor.add_secret(token)
    assert redactor.text(f"bearer {token} alpha-secret") == "bearer *** ***"
    assert redactor.data({"header": f"Bearer {token}"}) == {"header": "Bearer ***"}
