"""Capacity of the mlchaos fault proxy against a fast upstream (nginx), loaded by wrk.

Run from the repository root (needs Debian's ``nginx-light`` and ``wrk``: ``make bench`` installs them):

    .venv/bin/python benchmarks/proxy_capacity.py [--duration 8] [--compare REF] [--rounds R]

It starts, by itself and on loopback only:

* **nginx** (``nginx-light``) as a plain process with its own config in a temporary folder: one
  worker, ``access_log off``, ``return 200 '<json>'`` for every request (keep-alive without limit);
* **the proxy** (``python -m mlchaos.proxy``) with one proxy in front of nginx, from this checkout;
  with ``--compare REF`` also the proxy of git revision REF (extracted with ``git archive`` into a
  temporary folder), so both are measured side by side in one run;
* **wrk** (``wrk -t1 -cN -dDs --latency``, keep-alive) for every point, one after another.

It prints (figures only, no assertions):

1. no toxic, ``GET /`` at 1, 16 and 64 connections: req/s, the proxied/direct ratio, mean and p99
   latency, and the p99 the proxy adds (goals: ratio >= 0.5 at 64 connections, added p99 < 1 ms
   at 16), the proxy's CPU per request and the machine's (all CPUs' busy time, softirq included:
   loopback TCP's packet work is not charged to any process); with ``--nginx-proxy`` also nginx as
   a keep-alive HTTP reverse proxy (one worker), what a C proxy gets on the same machine;
2. a 100 ms downstream latency toxic at 64 connections: the measured round trip (mean and median,
   so the proxy's and nginx's own time counts as error too) against the configured 100 ms, and
   the error in % (goal: within 5 %);
3. request-level toxics at 16 connections, ``POST /v2/models/iris/infer`` with a JSON tensor:
   the proxy with no toxic, with ``http_transform`` scaling one feature of every request
   (train/serve skew) and with ``http_drop`` on the feedback path (every infer request framed and
   passed on); the p99 each toxic adds over the same proxy without it (goal < 1 ms).

``--pin`` (a diagnostic, not the goals' setting) puts wrk and the upstream nginx on CPU 0 and every proxy
(nginx as a proxy too) on CPU 1: each proxy gets a CPU of its own, as on a host where it does not share the
load generator's and the upstream's cores; direct is then what wrk and nginx get from one CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
REPLY = '{"model_name":"iris","outputs":[{"name":"predict","shape":[1],"datatype":"INT64","data":[0]}]}'
INFER = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                                "data": [5.1, 3.5, 1.4, 0.2]}]})
INFER_PATH = "/v2/models/iris/infer"
LATENCY_MS = 100
NGINX_HEAD = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
"""
NGINX_CONF = NGINX_HEAD + """    keepalive_requests 100000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            default_type application/json;
            return 200 '{reply}';
        }}
    }}
}}
"""
NGINX_PROXY_CONF = NGINX_HEAD + """    proxy_temp_path {dir}/proxy;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive 256;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""
K = TypeVar("K")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def free_port() -> int:
    """A port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Return once 127.0.0.1:port accepts a connection."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM ``proc``, and SIGKILL it when it has not ended 10 s later."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Result:
    """One wrk run."""

    rps: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    errors: str  # socket errors / non-2xx, "" when none
    cpu_us: float = 0.0  # CPU time (user + system) of the process measured, per request, in microseconds
    machine_us: float = 0.0  # busy time of all CPUs (softirq, other processes included) per request, microseconds


def millis(text: str) -> float:
    """``262.51us`` -> 0.26251 (ms)."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk: unexpected latency {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(out: str) -> Result:
    """Requests/sec, mean latency and the 50th/99th percentiles from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    mean = millis(re.search(r"Latency\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p50 = millis(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = millis(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = []
    if m := re.search(r"Socket errors: (.*)", out):
        errors.append("socket errors: " + m.group(1).strip())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors.append(f"non-2xx: {m.group(1)}")
    return Result(rps, mean, p50, p99, "; ".join(errors))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (from /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """Seconds all CPUs together have not been idle so far (from /proc/stat: softirq and steal count as busy)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


LOAD_CPU, PROXY_CPU = 0, 1  # --pin: wrk and the upstream nginx, every proxy
PINNED: list[bool] = [False]


def pin(pid: int, cpu: int) -> None:
    """With --pin, every thread of ``pid`` to ``cpu`` alone."""
    if PINNED[0]:
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), {cpu})


def wrk(port: int, connections: int, duration: int, path: str = "/", script: Path | None = None,
        pids: list[int] | None = None) -> Result:
    """One wrk run against 127.0.0.1:port (one thread, keep-alive); ``pids``: whose CPU to count per request."""
    cmd = (["taskset", "-c", str(LOAD_CPU)] if PINNED[0] else []) + [
        "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    before, busy = cpu_seconds(pids or []), busy_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    result = parse_wrk(out)
    requests = max(int(re.search(r"(\d+) requests in", out).group(1)), 1)  # type: ignore[union-attr]
    result.cpu_us = (cpu_seconds(pids or []) - before) / requests * 1e6
    result.machine_us = (busy_seconds() - busy) / requests * 1e6
    return result


class Nginx:
    """nginx-light as a plain process, its config and files in a temporary folder."""

    def __init__(self, root: Path, name: str = "nginx", upstream: int = 0) -> None:
        """The fast upstream; with ``upstream``, a keep-alive HTTP reverse proxy in front of that port instead."""
        self.dir, self.port = root / name, free_port()
        self.dir.mkdir()
        conf = self.dir / "nginx.conf"
        template = NGINX_PROXY_CONF if upstream else NGINX_CONF
        conf.write_text(template.format(dir=self.dir, port=self.port, reply=REPLY, upstream=upstream))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
                                      "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_port(self.port)
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        self.pids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
        for pid in [self.proc.pid, *self.pids]:
            pin(pid, PROXY_CPU if upstream else LOAD_CPU)

    def stop(self) -> None:
        """Stop nginx (SIGTERM: fast shutdown) and wait."""
        stop_process(self.proc)


class ProxyProcess:
    """``python -m mlchaos.proxy`` from ``source`` (a checkout) with proxy ``bench`` in front of ``upstream``."""

    def __init__(self, label: str, source: Path, root: Path, upstream: int, extra: list[str]) -> None:
        self.label = label
        config = root / f"proxies-{label}.json"
        config.write_text(json.dumps([{"name": "bench", "listen": "127.0.0.1:0",
                                       "upstream": f"127.0.0.1:{upstream}"}]))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLCHAOS_PROXY_TOKEN")}
        env["PYTHONPATH"] = str(source)
        self.proc = subprocess.Popen([sys.executable, "-m", "mlchaos.proxy", "--api", "127.0.0.1:0",
                                      "--config", str(config), *extra], cwd=source, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.api_port = self.port = 0
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("READY "):
                self.api_port = int(line.split()[1])
            elif line.startswith("proxy bench "):
                self.port = int(line.split()[2].rsplit(":", 1)[1])
                break
        if not self.port:
            raise RuntimeError(f"the {label} proxy did not start (exit {self.proc.poll()})")
        pin(self.proc.pid, PROXY_CPU)
        wait_port(self.port)

    def api(self, method: str, path: str, body: dict | None = None) -> None:
        """One call to the proxy's API (loopback: no token)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def add_toxic(self, toxic: dict) -> None:
        """Add a toxic to proxy ``bench``."""
        self.api("POST", "/proxies/bench/toxics", toxic)

    def reset(self) -> None:
        """Remove every toxic."""
        self.api("POST", "/reset")

    def with_toxic(self, toxic: dict, measure: Callable[[], Result]) -> Result:
        """``measure()`` while ``toxic`` is on proxy ``bench`` (removed again after)."""
        self.add_toxic(toxic)
        try:
            return measure()
        finally:
            self.reset()

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 10 s)."""
        stop_process(self.proc)


def extract(ref: str, root: Path) -> Path:
    """The tree of git revision ``ref`` (its mlchaos package) in a folder under ``root``."""
    out = root / "ref"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "mlchaos"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def alternate(points: dict[K, Callable[[], Result]], rounds: int) -> dict[K, Result]:
    """Run every point once a round, in turn, for ``rounds`` rounds; the median of each figure per point."""
    runs: dict[K, list[Result]] = {key: [] for key in points}
    for _ in range(rounds):
        for key, measure in points.items():
            runs[key].append(measure())
    median = statistics.median
    return {key: Result(median(r.rps for r in rs), median(r.mean_ms for r in rs), median(r.p50_ms for r in rs),
                        median(r.p99_ms for r in rs), "; ".join(r.errors for r in rs if r.errors),
                        median(r.cpu_us for r in rs), median(r.machine_us for r in rs)) for key, rs in runs.items()}


def row(*cells: object) -> str:
    """One row of a Markdown table (a last empty cell, such as no errors, is left out)."""
    items = [str(c) for c in cells]
    while items and not items[-1]:
        items.pop()
    return "| " + " | ".join(items) + " |"


def main() -> int:
    """Start nginx and the proxies, run every point, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of every point, alternated between direct and the proxies; medians (default 1)")
    parser.add_argument("--connections", default="1,16,64", help="connection counts (default 1,16,64)")
    parser.add_argument("--compare", metavar="REF", help="also measure the proxy of git revision REF")
    parser.add_argument("--nginx-proxy", action="store_true",
                        help="table 1 also measures nginx as a keep-alive reverse proxy (one worker): a C reference")
    parser.add_argument("--pin", action="store_true",
                        help="wrk and nginx on CPU 0, every proxy on CPU 1 (a diagnostic: a proxy with its own CPU)")
    parser.add_argument("--proxy-arg", action="append", default=[], metavar="ARG",
                        help="an extra argument for this checkout's proxy (repeatable): --proxy-arg=--loop=asyncio")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} not found: apt-get install -y nginx-light wrk (make bench does)", file=sys.stderr)
            return 2
    if args.pin and (os.cpu_count() or 1) < 2:
        print("--pin needs two CPUs", file=sys.stderr)
        return 2
    PINNED[0] = args.pin
    conns = [int(c) for c in args.connections.split(",")]
    d = args.duration
    with tempfile.TemporaryDirectory(prefix="mlchaos-proxy-capacity-") as tmp:
        root = Path(tmp)
        script = root / "infer.lua"
        script.write_text(f"wrk.method = \"POST\"\nwrk.body = '{INFER}'\n"
                          "wrk.headers[\"Content-Type\"] = \"application/json\"\n")
        nginx = Nginx(root)
        reference = Nginx(root, "nginx-proxy", nginx.port) if args.nginx_proxy else None
        proxies: list[ProxyProcess] = []
        try:
            proxies.append(ProxyProcess("this", REPO, root, nginx.port, args.proxy_arg))
            if args.compare:
                proxies.append(ProxyProcess(args.compare, extract(args.compare, root), root, nginx.port, []))
            head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True).stdout.strip()
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; wrk -t1 -cN -d{d}s --latency, keep-alive;"
                  f" median of {args.rounds} alternated run(s) per point")
            if args.pin:
                print(f"pinned: wrk and the upstream nginx on CPU {LOAD_CPU}, every proxy on CPU {PROXY_CPU}")
            extra = " " + " ".join(args.proxy_arg) if args.proxy_arg else ""
            print("proxies: " + ", ".join(f"{p.label} = " + (f"this checkout (HEAD {head}){extra}" if p.label == "this"
                                                             else f"git {p.label}") for p in proxies))
            print("CPU us/req: CPU time (user + system) of the proxy process (direct: of nginx) per request; machine"
                  " us/req: busy time of all CPUs (softirq and other work included) per request")
            wrk(nginx.port, 16, 1)  # warm-up
            if reference is not None:
                wrk(reference.port, 16, 1)
            for p in proxies:
                wrk(p.port, 16, 1)
            rounds = args.rounds

            print("\n1. no toxic, GET / (nginx return 200)\n")
            print(row("conns", "path", "req/s", "ratio", "mean ms", "p99 ms", "+p99 ms", "CPU us/req",
                      "machine us/req"))
            print(row(*["---"] * 9))
            for n in conns:
                points = {"direct": lambda n=n: wrk(nginx.port, n, d, pids=nginx.pids)}
                if reference is not None:
                    points["nginx proxy"] = lambda n=n, r=reference: wrk(r.port, n, d, pids=r.pids)
                points |= {p.label: lambda n=n, p=p: wrk(p.port, n, d, pids=[p.proc.pid]) for p in proxies}
                got = alternate(points, rounds)
                direct = got.pop("direct")
                print(row(n, "direct", f"{direct.rps / 1000:.1f}k", "", f"{direct.mean_ms:.2f}", f"{direct.p99_ms:.2f}",
                          "", f"{direct.cpu_us:.0f}", f"{direct.machine_us:.0f}", direct.errors))
                for label, r in got.items():
                    print(row(n, label, f"{r.rps / 1000:.1f}k", f"{r.rps / direct.rps:.2f}", f"{r.mean_ms:.2f}",
                              f"{r.p99_ms:.2f}", f"{r.p99_ms - direct.p99_ms:+.2f}", f"{r.cpu_us:.0f}",
                              f"{r.machine_us:.0f}", r.errors))

            print(f"\n2. latency toxic {LATENCY_MS} ms (downstream), 64 connections: the whole round trip against"
                  f" the configured {LATENCY_MS} ms\n")
            print(row("proxy", "mean ms", "error (mean)", "p50 ms", "error (p50)", "p99 ms", "req/s"))
            print(row(*["---"] * 7))
            latency = {"type": "latency", "name": "lat", "attributes": {"latency": LATENCY_MS}}
            got = alternate({p.label: lambda p=p: p.with_toxic(latency, lambda: wrk(p.port, 64, d))
                             for p in proxies}, rounds)
            for label, r in got.items():
                print(row(label, f"{r.mean_ms:.2f}", f"{100 * (r.mean_ms - LATENCY_MS) / LATENCY_MS:+.2f} %",
                          f"{r.p50_ms:.2f}", f"{100 * (r.p50_ms - LATENCY_MS) / LATENCY_MS:+.2f} %", f"{r.p99_ms:.2f}",
                          f"{r.rps:.0f}", r.errors))

            print(f"\n3. request-level toxics, POST {INFER_PATH} (JSON tensor), 16 connections\n")
            print(row("path", "toxic", "req/s", "mean ms", "p99 ms", "toxic adds p99 ms", "toxic adds mean ms",
                      "CPU us/req"))
            print(row(*["---"] * 8))
            skew = {"type": "http_transform", "stream": "upstream", "name": "skew",
                    "attributes": {"transforms": [{"op": "scale", "feature": 2, "factor": 10}]}}
            drop = {"type": "http_drop", "stream": "upstream", "name": "drop", "attributes": {}}
            points = {("direct", ""): lambda: wrk(nginx.port, 16, d, INFER_PATH, script, pids=nginx.pids)}
            for p in proxies:
                def infer(p: ProxyProcess = p) -> Result:
                    return wrk(p.port, 16, d, INFER_PATH, script, pids=[p.proc.pid])
                points[(p.label, "none")] = infer
                for name, toxic in (("http_transform (skew)", skew), ("http_drop (feedback)", drop)):
                    points[(p.label, name)] = lambda p=p, toxic=toxic, infer=infer: p.with_toxic(toxic, infer)
            got = alternate(points, rounds)
            for (label, name), r in got.items():
                base = got.get((label, "none"))
                added = ("", "") if base is None or base is r else (f"{r.p99_ms - base.p99_ms:+.2f}",
                                                                    f"{r.mean_ms - base.mean_ms:+.2f}")
                print(row(label, name, f"{r.rps / 1000:.1f}k", f"{r.mean_ms:.2f}", f"{r.p99_ms:.2f}", *added,
                          f"{r.cpu_us:.0f}", r.errors))
            print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        finally:
            for p in proxies:
                p.stop()
            if reference is not None:
                reference.stop()
            nginx.stop()  # last: even when a proxy would not stop
    return 0


if __name__ == "__main__":
    sys.exit(main())
