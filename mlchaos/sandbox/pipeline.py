"""The sandbox's training pipeline: a Pushgateway and a tiny pusher, ``python -m mlchaos.sandbox.pipeline``.

``TrainingPipeline(state_dir).up()`` starts (or heals) two local processes on 127.0.0.1:

* the Pushgateway (``/usr/bin/prometheus-pushgateway``, in memory: ``--persistence.file=`` empty),
  which the sandbox Prometheus scrapes with ``honor_labels: true`` (job ``pushgateway``, its target
  in ``monitoring/targets/pushgateway.json``), and
* the pusher, which pushes the group ``job="training"`` every second, as a training pipeline
  does after each run; the Pushgateway stamps each push with ``push_time_seconds``, the series
  the ModelPipelineNotPushing rule reads.

What runs is recorded in ``<state_dir>/pipeline.json``. ``drivers.pipeline`` pauses the pusher.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from mlchaos.errors import SandboxError, TargetNotFound
from mlchaos.lib.files import atomic_write, file_lock, free_ports, read_json, write_json
from mlchaos.lib.http import http_ok
from mlchaos.lib.programs import find_program
from mlchaos.lib.state_dir import private_dir
from mlchaos.lib.state_dir import state_dir as default_state_dir
from mlchaos.sandbox import procs

HOST = "127.0.0.1"
PUSHGATEWAY = ("/usr/bin/prometheus-pushgateway", "prometheus-pushgateway")
STATE_FILE = "pipeline.json"
TARGETS_FILE = "pushgateway.json"  # under monitoring/targets/, read by the Prometheus job "pushgateway"
JOB = "training"
MODULE = "mlchaos.sandbox.pipeline"


def pushgateway_binary() -> str | None:
    """The Pushgateway binary, None when it is not installed."""
    return find_program(PUSHGATEWAY[0])


class TrainingPipeline:
    """The Pushgateway and the pusher recorded in one sandbox state directory."""

    def __init__(self, state_dir: Path | None = None) -> None:
        if state_dir is None:
            state_dir = default_state_dir()
        self.state_dir = Path(state_dir).expanduser().absolute()
        self.state_file = self.state_dir / STATE_FILE
        self.targets_file = self.state_dir / "monitoring" / "targets" / TARGETS_FILE
        self.log_dir = self.state_dir / "logs"

    def up(self, timeout: float = 30, avoid: Collection[int] = ()) -> str:
        """Start (or heal: restart dead, resume paused) the Pushgateway and the pusher; return the gateway URL
        once it holds a push of job ``training``. A new gateway port is none of ``avoid`` (ports chosen for
        others that may not be listened on yet)."""
        binary = pushgateway_binary()
        if binary is None:
            raise SandboxError(f"the Pushgateway is not installed ({PUSHGATEWAY[0]}): apt-get install {PUSHGATEWAY[1]}")
        deadline = time.monotonic() + timeout
        with file_lock(self.state_dir / "pipeline.lock"):
            state = self._load()
            port = int(state.get("port") or free_ports(1, avoid=avoid)[0])
            url = f"http://{HOST}:{port}"
            gateway, pusher = int(state.get("gateway_pid", 0)), int(state.get("pusher_pid", 0))
            if not (self._is_gateway(gateway, port) and http_ok(f"{url}/-/ready")):
                self._stop(gateway, lambda pid: self._is_gateway(pid, port))
                gateway = self._spawn([binary, f"--web.listen-address={HOST}:{port}", "--persistence.file="],
                                      "pushgateway")
            if self._is_pusher(pusher, url):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pusher, signal.SIGCONT)  # heal a pusher a fault left paused
            else:
                pusher = self._spawn([sys.executable, "-m", MODULE, "--gateway", url, "--job", JOB], "pipeline")
            self._save({"port": port, "gateway_pid": gateway, "pusher_pid": pusher})
            atomic_write(self.targets_file, f'[{{"targets": ["{HOST}:{port}"]}}]\n')
            from mlchaos.lib.http import http_json

            while True:
                groups = (http_json(f"{url}/api/v1/metrics") or {}).get("data") or []
                if any(g.get("labels", {}).get("job") == JOB for g in groups):
                    return url
                if time.monotonic() >= deadline:
                    raise SandboxError(f"no push of job {JOB!r} reached the Pushgateway at {url} in time;"
                                       f" see {self.log_dir}")
                time.sleep(0.1)

    def down(self, timeout: float = 10) -> None:
        """Stop the pusher and the Pushgateway (its pushes are in memory: gone); keep the port."""
        with file_lock(self.state_dir / "pipeline.lock"):
            state = self._load()
            if not state:
                return
            url = f"http://{HOST}:{state['port']}"
            self._stop(int(state.get("pusher_pid", 0)), lambda pid: self._is_pusher(pid, url), timeout)
            self._stop(int(state.get("gateway_pid", 0)), lambda pid: self._is_gateway(pid, int(state["port"])),
                       timeout)
            self._save({"port": state["port"], "gateway_pid": 0, "pusher_pid": 0})
            atomic_write(self.targets_file, "[]\n")

    def pusher_pid(self) -> int:
        """The pid of the running pusher; TargetNotFound when there is none."""
        state = self._load()
        pid = int(state.get("pusher_pid", 0))
        if not state or not self._is_pusher(pid, f"http://{HOST}:{state['port']}"):
            raise TargetNotFound(f"the sandbox training pipeline is not running (state in {self.state_file});"
                                 " start it with `mlchaos sandbox up`")
        return pid

    def is_pusher(self, pid: int) -> bool:
        state = self._load()
        return bool(state) and self._is_pusher(pid, f"http://{HOST}:{state['port']}")

    # -- processes ----------------------------------------------------------------------

    def _spawn(self, argv: list[str], log_name: str) -> int:
        private_dir(self.log_dir)
        with open(self.log_dir / f"{log_name}.log", "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        procs.track(proc)  # type: ignore[arg-type]
        return proc.pid

    @staticmethod
    def _is_gateway(pid: int, port: int) -> bool:
        argv = procs.cmdline(pid) if pid > 0 and procs.proc_state(pid) not in (None, "Z", "X") else []
        return bool(argv) and Path(argv[0]).name == Path(PUSHGATEWAY[0]).name \
            and f"--web.listen-address={HOST}:{port}" in argv

    @staticmethod
    def _is_pusher(pid: int, url: str) -> bool:
        argv = procs.cmdline(pid) if pid > 0 and procs.proc_state(pid) not in (None, "Z", "X") else []
        return MODULE in argv and url in argv

    @staticmethod
    def _stop(pid: int, ours: Any, timeout: float = 5) -> None:
        if not ours(pid):
            return
        for sig in (signal.SIGCONT, signal.SIGTERM):  # a paused pusher would not act on SIGTERM until resumed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while ours(pid):
            procs.reap(pid)
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
            time.sleep(0.05)

    def _load(self) -> dict[str, Any]:
        data = read_json(self.state_file, "pipeline state")
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, Any]) -> None:
        write_json(self.state_file, data)


def push_forever(gateway: str, job: str, interval: float) -> None:
    """Push the ``job`` group every ``interval`` seconds, as a training pipeline does after each run."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway

    registry = CollectorRegistry()
    last_run = Gauge("mlchaos_training_last_run_timestamp_seconds", "When the training pipeline last ran",
                     registry=registry)
    runs = Counter("mlchaos_training_runs", "Training pipeline runs", registry=registry)
    while True:
        last_run.set_to_current_time()
        runs.inc()
        try:
            push_to_gateway(gateway, job=job, registry=registry, timeout=2)
        except OSError as exc:  # the gateway restarting: the next push retries
            print(f"push to {gateway} failed: {exc}", file=sys.stderr, flush=True)
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--gateway", required=True, help="Pushgateway URL")
    parser.add_argument("--job", default=JOB)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    push_forever(args.gateway, args.job, args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

