"""The compose stack's fault-proxy token (mlchaos.containers.stack.proxy_token), without Docker."""

from __future__ import annotations

import os
import stat
import subprocess

from mlchaos.containers import stack
from mlchaos.lib.state_dir import state_dir


def test_a_token_is_made_once_kept_private_and_reused(monkeypatch, capsys):
    monkeypatch.delenv("MLCHAOS_PROXY_TOKEN", raising=False)
    monkeypatch.delenv("MLCHAOS_PROXY_TOKEN_FILE", raising=False)
    first = stack.proxy_token()
    kept = state_dir() / stack.TOKEN_FILE
    assert len(first) >= 32 and kept.read_text().strip() == first
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stack.proxy_token() == first
    assert stack.main(["token"]) == 0
    assert capsys.readouterr().out == f"export MLCHAOS_PROXY_TOKEN={first}\n"


def test_a_configured_token_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("MLCHAOS_PROXY_TOKEN", "configured-token-0123456789")
    assert stack.proxy_token() == "configured-token-0123456789"
    file = tmp_path / "token"
    file.write_text("from-a-file-0123456789\n")
    monkeypatch.setenv("MLCHAOS_PROXY_TOKEN_FILE", str(file))
    assert stack.proxy_token() == "from-a-file-0123456789"
    assert not (state_dir() / stack.TOKEN_FILE).exists()


def test_stack_up_leaves_this_process_environment_alone(monkeypatch, tmp_path):
    """``docker compose`` and the readiness wait are stood in for (the real stack is the docker-marked
    tests'): what is checked is that the token reaches the compose command, never ``os.environ``, where it
    would outlive the stack (a later test module on the same worker would find it)."""
    monkeypatch.delenv("MLCHAOS_PROXY_TOKEN", raising=False)
    monkeypatch.delenv("MLCHAOS_PROXY_TOKEN_FILE", raising=False)
    monkeypatch.setattr(stack.configs, "issue_certificates", lambda: None)
    monkeypatch.setattr(stack.configs, "TOKEN_FILE", tmp_path / "webhook.token")
    monkeypatch.setattr(stack, "wait_ready", lambda found, deadline: None)
    seen: list[dict] = []

    def run(cmd, **kwargs):
        if "up" in cmd:  # the compose command (``ip addr`` for the sink's address answers nothing here)
            seen.append(kwargs["env"])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(stack.subprocess, "run", run)
    monkeypatch.setattr(stack, "compose_command", lambda: ["docker", "compose"])
    stack.stack_up(timeout=1)
    assert len(seen) == 1 and seen[0]["MLCHAOS_PROXY_TOKEN"] == stack.proxy_token()
    assert "MLCHAOS_PROXY_TOKEN" not in os.environ
