"""A real fault proxy process (``python -m mlchaos.proxy``) started by a test, on free loopback ports.

:func:`start_proxy` writes the proxies' config, starts the process and waits for its ``READY <port>``
line. The proxy never takes an API token from the test worker's environment (a module run earlier on the
same worker may have left ``MLCHAOS_PROXY_TOKEN`` there): it requires exactly the token given, in its
environment or in a 0600 file passed with ``--token-file``, or none (the unauthenticated loopback API).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import requests

from tests.support.environment import child_env


@dataclass
class ProxyProcess:
    """A started proxy process: its API (``http://127.0.0.1:PORT``) and the token it requires (or None)."""

    proc: subprocess.Popen[str]
    api: str
    port: int
    token: str | None

    def headers(self) -> dict[str, str]:
        """The API's Authorization header (none without a token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def listen(self, name: str) -> str:
        """Where proxy ``name`` listens (``HOST:PORT``), as the API lists it."""
        answer = requests.get(f"{self.api}/proxies/{name}", headers=self.headers(), timeout=5)
        assert answer.ok, f"GET /proxies/{name}: HTTP {answer.status_code} {answer.text}"
        return answer.json()["listen"]

    def stop(self) -> int:
        """SIGTERM, then SIGKILL when it has not ended within 10 s; its exit status (0 after a clean stop)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start_proxy(folder: Path, proxies: list[dict], token: str | None = None,
                token_via: Literal["env", "file"] = "env") -> ProxyProcess:
    """Start a proxy process with ``proxies`` (its config, written to ``folder``) and its API on a free port.

    ``token``: the API token it requires, given as ``MLCHAOS_PROXY_TOKEN`` (``token_via="env"``) or in
    ``folder/token`` (0600) with ``--token-file``; None: no token, the API on loopback only.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "proxies.json"
    config.write_text(json.dumps(proxies))
    argv = [sys.executable, "-m", "mlchaos.proxy", "--api", "127.0.0.1:0", "--config", str(config)]
    env = child_env(MLCHAOS_PROXY_TOKEN=None, MLCHAOS_PROXY_TOKEN_FILE=None)
    if token is not None and token_via == "file":
        token_file = folder / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        argv += ["--token-file", str(token_file)]
    elif token is not None:
        env["MLCHAOS_PROXY_TOKEN"] = token
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    if not ready.startswith("READY "):
        proc.kill()
        rest = proc.stdout.read()
        proc.wait()
        raise AssertionError(f"the proxy did not start: {ready}{rest}")
    port = int(ready.split()[1])
    return ProxyProcess(proc, f"http://127.0.0.1:{port}", port, token)
