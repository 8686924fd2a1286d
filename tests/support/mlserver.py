"""A real MLServer (Seldon's Open Inference Protocol server) with an iris model, for tests against it.

MLServer lives in a virtual environment of its own (``pip install mlserver mlserver-sklearn``, see
shared/notes/external-systems.md): its ``mlserver`` executable is ``$MLCHAOS_MLSERVER``, else
``/var/tmp/mlserver-venv/bin/mlserver``, else the one on PATH. :func:`start` trains a scikit-learn
classifier on iris *with that environment's Python* (its joblib and scikit-learn read the file back),
writes ``model-settings.json`` and ``settings.json`` (free loopback ports, ``parallel_workers: 0``) and
starts ``mlserver start`` in its own process group; :meth:`MLServer.stop` ends that group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import requests

from mlchaos.lib.files import free_ports
from tests.support.polling import poll

DEFAULT_VENV_BINARY = Path("/var/tmp/mlserver-venv/bin/mlserver")
MODEL = "iris"
VERSION = "v1"
START_TIMEOUT = 120.0  # about 10 s on an idle machine; the shared test machines are often busy
TRAIN = """\
import sys, joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
x, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=500).fit(x, y), sys.argv[1])
"""
HOW_TO_GET_IT = ("python3 -m venv /var/tmp/mlserver-venv && /var/tmp/mlserver-venv/bin/pip install mlserver"
                 " mlserver-sklearn (or set MLCHAOS_MLSERVER to an mlserver executable)")


def binary() -> Path | None:
    """The ``mlserver`` executable to run, or None when there is none."""
    configured = os.environ.get("MLCHAOS_MLSERVER")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    if DEFAULT_VENV_BINARY.is_file():
        return DEFAULT_VENV_BINARY
    found = shutil.which("mlserver")
    return Path(found) if found else None


@dataclass
class MLServer:
    """One running model server (MLServer; tests/support/kserve.py's too): its base URL and its process."""

    url: str
    metrics_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it after 20 s."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self) -> str:
        """The last lines the server wrote (for a failure message)."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])


def command(executable: Path, folder: Path) -> list[str]:
    """The command line that starts MLServer on ``folder`` (what :func:`start` runs)."""
    return [str(executable), "start", str(folder)]


def start(executable: Path, folder: Path, parallel_workers: int = 0) -> MLServer:
    """Train the iris model into ``folder``, start MLServer on it and wait until the model is ready.

    ``parallel_workers`` > 0 runs inference in that many worker processes (children of the server); MLServer
    1.7.1's workers need uvloop < 0.22 (SeldonIO/MLServer#2286; scripts/install-model-servers.sh pins it).
    """
    python = executable.parent / "python"
    model_dir = folder / MODEL
    model_dir.mkdir(parents=True)
    subprocess.run([str(python), "-c", TRAIN, str(model_dir / "model.joblib")], check=True, timeout=120,
                   capture_output=True)
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": MODEL, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": VERSION}}))
    http_port, grpc_port, metrics_port = free_ports(3)
    (folder / "settings.json").write_text(json.dumps({
        "http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port, "host": "127.0.0.1",
        "parallel_workers": parallel_workers}))
    log = folder / "mlserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command(executable, folder), cwd=folder, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = MLServer(f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{metrics_port}", process, log)
    if not ready(server, START_TIMEOUT):
        server.stop()
        raise RuntimeError(f"MLServer did not get ready within {START_TIMEOUT:g}s:\n{server.log_tail()}")
    return server


def ready(server: MLServer, timeout: float) -> bool:
    """Wait until the server's iris model answers ready (V2); False when the process ended or time ran out."""
    def answered() -> bool:
        try:
            return requests.get(f"{server.url}/v2/models/{MODEL}/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    done = poll(lambda: server.process.poll() is not None or answered(), timeout=timeout, interval=0.5)
    return done and server.process.poll() is None
