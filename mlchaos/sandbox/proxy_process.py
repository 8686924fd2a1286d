"""The sandbox's proxy process: one ``python -m mlchaos.proxy`` with one proxy per replica.

Recorded in ``<state_dir>/proxy.json`` (pid, API port; written atomically), its
config (Toxiproxy's format) in ``<state_dir>/proxy-config.json``, its log in
``<state_dir>/logs/proxy.log``. :meth:`ProxyProcess.ensure` heals: a live process is
reconciled through its API (missing proxies created, wrong ones fixed, disabled
ones enabled, leftover toxics removed, stale ones deleted); a dead one is restarted
on the same API port with the same proxies on the same ports.

The API listens on loopback only, and still takes only requests with the sandbox's own token
(``<state_dir>/proxy.token``, 0600, made at the first start): another user of the machine can
reach loopback, so reaching it must not be enough to steer the proxy. Every call here, and the
drivers' calls to the sandbox's proxy (:meth:`ProxyProcess.api_headers`), send it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from mlchaos.errors import SandboxError
from mlchaos.lib.files import atomic_write, read_json, write_json
from mlchaos.lib.state_dir import private_dir
from mlchaos.sandbox import procs

MODULE = "mlchaos.proxy"
STATE_FILE = "proxy.json"
TOKEN_FILE = "proxy.token"
CONFIG_FILE = "proxy-config.json"
HOST = "127.0.0.1"
HTTP_TIMEOUT = 2.0
_READY_LINE = re.compile(rb"^READY (\d+)$", re.MULTILINE)
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Route:
    """One sandbox proxy: ``name`` listens on ``listen`` and forwards to ``upstream``."""

    name: str
    listen: str
    upstream: str


class ProxyProcess:
    """The proxy process recorded in one sandbox state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir).expanduser().absolute()
        self.state_file = self.state_dir / STATE_FILE
        self.config_file = self.state_dir / CONFIG_FILE
        self.log_path = self.state_dir / "logs" / "proxy.log"
        self.token_file = self.state_dir / TOKEN_FILE

    def ensure(self, routes: list[Route], timeout: float = 10.0) -> str:
        """Make the process run exactly ``routes`` (healed, see the module doc); return the API URL."""
        state = self._load()
        atomic_write(self.config_file, json.dumps(
            [{"name": r.name, "listen": r.listen, "upstream": r.upstream, "enabled": True} for r in routes],
            indent=2) + "\n")
        pid, port = int(state.get("pid", 0)), int(state.get("api_port", 0))
        if self.alive(pid) and _answers(_url(port), self.api_headers()):
            self._reconcile(_url(port), routes)
            return _url(port)
        self._stop_pid(pid, 5.0)
        return self._spawn(port, timeout)

    def api_headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer TOKEN}`` with the sandbox proxy's token ({} before its first start)."""
        try:
            token = self.token_file.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return {}
        return {"Authorization": f"Bearer {token}"} if token else {}

    def api_url(self) -> str | None:
        """The API URL when the recorded process is alive, else None."""
        state = self._load()
        return _url(int(state["api_port"])) if state and self.alive(int(state.get("pid", 0))) else None

    def pid(self) -> int:
        """The recorded pid (0 when none)."""
        return int(self._load().get("pid", 0))

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the process (SIGTERM, SIGKILL after ``timeout``); keep the API port for the next start."""
        state = self._load()
        stopped = self._stop_pid(int(state.get("pid", 0)), timeout)
        if state:
            self._save({**state, "pid": 0})
        return stopped

    def alive(self, pid: int) -> bool:
        """True when ``pid`` is our proxy process (argv names our config), not a zombie."""
        argv = procs.live_cmdline(pid)
        return argv is not None and MODULE in argv and str(self.config_file) in argv

    # -- internals ------------------------------------------------------------------------

    def _reconcile(self, api: str, routes: list[Route]) -> None:
        headers = self.api_headers()

        def request(method: str, path: str, json: Any = None) -> requests.Response:
            return _request(method, f"{api}{path}", json, headers)

        current = request("GET", "/proxies").json()
        wanted = {r.name: r for r in routes}
        for name in [n for n in current if n not in wanted]:
            request("DELETE", f"/proxies/{name}")
        for route in routes:
            have = current.get(route.name)
            if have is None:
                request("POST", "/proxies", json={"name": route.name, "listen": route.listen,
                                                  "upstream": route.upstream, "enabled": True})
                continue
            for toxic in have.get("toxics") or []:
                request("DELETE", f"/proxies/{route.name}/toxics/{toxic['name']}")
            if (have["listen"], have["upstream"], have["enabled"]) != (route.listen, route.upstream, True):
                request("POST", f"/proxies/{route.name}",
                        json={"listen": route.listen, "upstream": route.upstream, "enabled": True})

    def _spawn(self, port: int, timeout: float) -> str:
        private_dir(self.log_path.parent)
        if not self.api_headers():
            atomic_write(self.token_file, secrets.token_urlsafe(32) + "\n", mode=0o600)
        env = dict(os.environ, PYTHONUNBUFFERED="1", MLCHAOS_PROXY_TOKEN_FILE=str(self.token_file))
        env.pop("MLCHAOS_PROXY_TOKEN", None)  # the sandbox's proxy takes the sandbox's token, not one meant elsewhere
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, "-m", MODULE, "--api", f"{HOST}:{port}", "--config", str(self.config_file)]
        with open(self.log_path, "ab") as log:
            offset = log.tell()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                    start_new_session=True)
        procs.track(proc)
        self._save({"pid": proc.pid, "api_port": port, "started_at": time.time()})  # the pid before anything fails
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                text = log.read()
            match = _READY_LINE.search(text)
            if match:
                actual = int(match.group(1))
                self._save({"pid": proc.pid, "api_port": actual, "started_at": time.time()})
                return _url(actual)
            if proc.poll() is not None:
                raise SandboxError(f"the sandbox proxy exited with code {proc.returncode} before it was ready:\n"
                                   + text.decode(errors="replace")[-2000:])
            if time.monotonic() >= deadline:
                raise SandboxError(f"the sandbox proxy (pid {proc.pid}) printed no READY line in time;"
                                   f" see {self.log_path}")
            time.sleep(0.02)

    def _stop_pid(self, pid: int, timeout: float) -> bool:
        if not self.alive(pid):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive(pid):
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5.0
            time.sleep(0.02)
        return True

    def _load(self) -> dict[str, Any]:
        data = read_json(self.state_file, "proxy state")
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, Any]) -> None:
        write_json(self.state_file, data)


def _url(port: int) -> str:
    return f"http://{HOST}:{port}"


def _answers(api: str, headers: dict[str, str]) -> bool:
    try:
        return requests.get(f"{api}/version", headers=headers, timeout=HTTP_TIMEOUT).ok
    except requests.RequestException:
        return False


def _request(method: str, url: str, json: Any, headers: dict[str, str]) -> requests.Response:
    try:
        resp = requests.request(method, url, json=json, headers=headers, timeout=HTTP_TIMEOUT)
    except requests.RequestException as exc:
        raise SandboxError(f"sandbox proxy API {method} {url}: {exc}") from exc
    if resp.status_code >= 400:
        raise SandboxError(f"sandbox proxy API {method} {url}: HTTP {resp.status_code} {resp.text.strip()}")
    return resp
