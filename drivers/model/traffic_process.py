"""The detached traffic generator: ``python -m drivers.model.traffic_process --token T --config PATH``.

Started by :func:`drivers.model.traffic.start_traffic` in a session of its own (it outlives the
runner), it sends ``rate`` infer calls per second in total, round robin over the replicas of its
plan, each one ``batch`` real rows picked with the plan's seed, and with ``feedback`` the true
labels of every ``feedback_every``-th infer a replica answered 200 to that replica (counted per
replica, so each one gets its feedback stream whatever their number). The schedule is
open loop (call ``i`` is due ``i / rate`` seconds after the start) and each replica's calls are
served by a bounded pool of worker threads of its own: a replica that hangs costs its own workers,
never the schedule nor the other replicas' traffic, and a call due while all of its replica's
workers are busy is counted as ``skipped``, not queued without end. Every answer is counted per
replica and endpoint by status code (or exception name); no failure stops the generator. It
writes its stats atomically every second and on exit, and exits by itself after ``duration``
seconds (its time to live) or promptly on SIGTERM/SIGINT.

Traffic to a declared endpoint (``Plan.endpoint``) goes with its credentials, CA, client certificate and
headers. They never travel on the command line, in the environment or in the plan file: with
``Plan.credentials`` the generator reads them from its standard input (a pipe the driver writes once and
closes: :func:`mlchaos.lib.endpoints.client_settings` per base URL) before anything else, then puts
/dev/null in its place, and never writes them (an answer that echoes one is masked in the stats and the log).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MARKER = "drivers.model.traffic_process"
STATS_EVERY = 1.0  # seconds between two stats writes
TICK = 0.1  # the longest the schedule sleeps at once: a stop is seen within this
DRAIN = 0.3  # seconds the calls in flight get to finish after the end
MAX_WORKERS = 32
ENDPOINTS = ("infer", "feedback")

Post = Callable[[str, dict[str, Any], float], tuple[str, str | None]]  # url, body, timeout -> status, error


@dataclass(frozen=True)
class Plan:
    """What one generator does (written by the driver as JSON, read here)."""

    token: str
    replicas: list[list[str]]  # [name, base url] pairs, in round-robin order
    rows: list[list[float]]
    labels: list[int]
    rate: float
    duration: float
    batch: int
    feedback: bool
    feedback_every: int
    model: str
    seed: int
    timeout: float
    stats_path: str
    endpoint: str | None = None  # the declared endpoint the URLs are (its name; what it takes comes on stdin)
    credentials: bool = False  # the client settings of the URLs under declared endpoints come on stdin

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Job:
    """One infer call: its number, the replica (name, base url) and the rows with their true labels."""

    number: int
    replica: str
    url: str
    rows: list[list[float]]
    labels: list[int]


def infer_body(call_id: str | None, rows: list[list[float]]) -> dict[str, Any]:
    """An OIP infer request for ``rows`` (FP64, shape [N, features]), carrying ``call_id`` when given: only a
    client whose true labels follow names its calls (the server counts those as awaiting feedback)."""
    body: dict[str, Any] = {"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64",
                                        "data": [v for row in rows for v in row]}]}
    if call_id is not None:
        body["id"] = call_id
    return body


def feedback_body(call_id: str, labels: list[int]) -> dict[str, Any]:
    """The true labels of the infer call ``call_id``, OIP-shaped as the server's feedback route takes them."""
    return {"id": call_id, "inputs": [{"name": "truth", "shape": [len(labels)], "datatype": "INT64",
                                       "data": list(labels)}]}


class Traffic:
    """The calls and their counts (thread-safe): what every worker shares."""

    def __init__(self, plan: Plan, post: Post, wall: Callable[[], float] = time.time) -> None:
        self.plan, self.post, self.wall = plan, post, wall
        self.started_at = wall()
        self._lock = threading.Lock()
        self._rng = random.Random(plan.seed)
        self.sent = self.in_flight = 0
        self.skipped: Counter[str] = Counter()  # per replica: calls due while all its workers were busy
        self._ok: Counter[str] = Counter()  # infer calls answered 200, per replica: when its feedback is due
        self.answers: dict[str, dict[str, Counter[str]]] = {
            name: {e: Counter() for e in ENDPOINTS} for name, _ in plan.replicas}
        self.last_error: dict[str, Any] | None = None

    def job(self, number: int) -> Job:
        """Call ``number``: the next replica in turn and ``batch`` rows drawn with the seed (one caller only)."""
        name, url = self.plan.replicas[number % len(self.plan.replicas)]
        picks = [self._rng.randrange(len(self.plan.rows)) for _ in range(self.plan.batch)]
        return Job(number, name, url, [self.plan.rows[i] for i in picks], [self.plan.labels[i] for i in picks])

    def call(self, job: Job) -> None:
        """Send the infer call, then its feedback when it is due; count every answer. Never raises."""
        plan = self.plan
        call_id = f"{plan.token[:12]}-{job.number}"
        base = f"{job.url}/v2/models/{plan.model}"
        with self._lock:
            self.sent += 1
            self.in_flight += 1
        try:
            named = call_id if plan.feedback else None  # only calls whose labels follow name themselves
            status = self._send(job.replica, "infer", f"{base}/infer", infer_body(named, job.rows))
            if plan.feedback and status == "200":
                with self._lock:
                    self._ok[job.replica] += 1
                    due = self._ok[job.replica] % plan.feedback_every == 0
                if due:
                    self._send(job.replica, "feedback", f"{base}/feedback", feedback_body(call_id, job.labels))
        finally:
            with self._lock:
                self.in_flight -= 1

    def skip(self, job: Job) -> None:
        """The call was due while every worker of its replica was busy."""
        with self._lock:
            self.skipped[job.replica] += 1

    def _send(self, replica: str, endpoint: str, url: str, body: dict[str, Any]) -> str:
        try:
            status, error = self.post(url, body, self.plan.timeout)
        except Exception as exc:  # a poster bug must not end the worker: count it like a failed call
            status, error = type(exc).__name__, str(exc)
        with self._lock:
            self.answers[replica][endpoint][status] += 1
            if error is not None:
                self.last_error = {"at": self.wall(), "replica": replica, "endpoint": endpoint, "status": status,
                                   "error": error[:300]}
        return status

    def snapshot(self, elapsed: float, *, queued: int = 0, ended: str | None = None) -> dict[str, Any]:
        """The stats as written to the stats file (``ended``: ``ttl`` or ``signal`` once finished)."""
        with self._lock:
            return {
                "token": self.plan.token, "pid": os.getpid(), "started_at": self.started_at,
                "updated_at": self.wall(), "elapsed": round(elapsed, 3), "rate": self.plan.rate,
                "duration": self.plan.duration, "replicas": [name for name, _ in self.plan.replicas],
                "sent": self.sent, "skipped": sum(self.skipped.values()),
                "skipped_per_replica": {name: self.skipped[name] for name, _ in self.plan.replicas},
                "in_flight": self.in_flight + queued,
                "answers": {name: {e: dict(sorted(c.items())) for e, c in by.items()}
                            for name, by in self.answers.items()},
                "last_error": self.last_error, "finished": ended is not None, "ended": ended,
            }


class Pool:
    """A fixed set of daemon worker threads for one replica; ``submit`` refuses a job when they are all busy."""

    def __init__(self, workers: int, work: Callable[[Job], None]) -> None:
        self._jobs: queue.Queue[Job] = queue.Queue(maxsize=workers)
        self._work = work
        for n in range(workers):
            threading.Thread(target=self._run, name=f"traffic-{n}", daemon=True).start()

    def submit(self, job: Job) -> bool:
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    def queued(self) -> int:
        return self._jobs.qsize()

    def _run(self) -> None:
        while True:
            self._work(self._jobs.get())


def workers_for(rate: float, timeout: float) -> int:
    """Enough workers for one replica to keep its `rate` while each call waits its full timeout (at most
    MAX_WORKERS)."""
    return max(2, min(MAX_WORKERS, math.ceil(rate * timeout) + 1))


def run(
    traffic: Traffic, stopped: Callable[[], bool], write: Callable[[dict[str, Any]], None],
    submit: Callable[[Job], bool], queued: Callable[[], int] = lambda: 0,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Keep the schedule until ``duration`` passes (``ttl``) or ``stopped()`` (``signal``); return the final stats.

    Writes the stats first thing (the driver waits for them), then every STATS_EVERY seconds and at the end,
    after the calls in flight had DRAIN seconds to finish (those still unanswered are reported ``in_flight``).
    """
    plan = traffic.plan
    start = clock()
    next_write = start
    number = 0
    ended = "signal"
    while not stopped():
        now = clock()
        if now - start >= plan.duration:
            ended = "ttl"
            break
        if now >= next_write:
            write(traffic.snapshot(now - start, queued=queued()))
            next_write = now + STATS_EVERY
        due = start + number / plan.rate
        if now < due:
            sleep(min(due - now, next_write - now, start + plan.duration - now, TICK))
            continue
        job = traffic.job(number)
        if not submit(job):
            traffic.skip(job)
        number += 1
    drain_until = clock() + min(DRAIN, plan.timeout)
    while (traffic.in_flight or queued()) and clock() < drain_until:
        sleep(0.01)
    final = traffic.snapshot(clock() - start, queued=queued(), ended=ended)
    write(final)
    return final


class HttpPoster:
    """POST JSON with one keep-alive session per worker thread (and base URL); the status code, or the exception's
    name. A URL under one of ``access``'s base URLs goes with its client settings (a declared endpoint's
    credentials, CA, client certificate, headers, timeout); its credentials are masked in every error."""

    def __init__(self, access: dict[str, dict[str, Any]] | None = None) -> None:
        import requests

        self._requests = requests
        self._local = threading.local()
        self._access = dict(access or {})
        self._mask = sorted({m for s in self._access.values() for m in s.get("mask") or () if m},
                            key=len, reverse=True)

    def __call__(self, url: str, body: dict[str, Any], timeout: float) -> tuple[str, str | None]:
        base = next((b for b in self._access if url.startswith(b.rstrip("/") + "/")), None)
        sessions = self._local.__dict__.setdefault("sessions", {})
        session = sessions.get(base)
        if session is None:
            if base is None:
                session = self._requests.Session()
            else:
                from mlchaos.driver_kit import endpoints

                session = endpoints.settings_session(self._access[base])
            sessions[base] = session
        cap = self._access[base].get("timeout") if base is not None else None
        try:
            resp = session.post(url, json=body, timeout=timeout if cap is None else min(timeout, cap))
        except self._requests.RequestException as exc:
            return type(exc).__name__, self.masked(f"{type(exc).__name__}: {exc}")
        status = str(resp.status_code)
        return status, None if resp.ok else self.masked(f"{status}: {resp.text.strip()[:200]}")

    def masked(self, text: str) -> str:
        """``text`` without any credential of the client settings."""
        for value in self._mask:
            text = text.replace(value, "***")
        return text


def read_access(stream: Any) -> dict[str, dict[str, Any]]:
    """The client settings by base URL, read once from ``stream`` (the driver's pipe, to its end)."""
    data = json.loads(stream.read() or "{}")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError("the client settings on stdin are not a mapping of base URLs to settings")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MARKER}")
    parser.add_argument("--token", required=True, help="names this generator in its change record")
    parser.add_argument("--config", required=True, help="the plan (JSON) written by start_traffic")
    args = parser.parse_args(argv)
    plan = Plan(**json.loads(Path(args.config).read_text()))
    if plan.token != args.token:
        print(f"the plan's token {plan.token} is not {args.token}", file=sys.stderr)
        return 2
    try:
        access = read_access(sys.stdin) if plan.credentials else {}
    except ValueError as exc:
        print(f"traffic {plan.token}: {exc}", file=sys.stderr)
        return 2
    finally:  # the pipe is done with: stdin becomes /dev/null (fd 0 is never left free for a socket to take)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    stop = {"now": False}

    def on_signal(signum: int, _frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from mlchaos.driver_kit import atomic_write

    stats_path = Path(plan.stats_path)

    def write(stats: dict[str, Any]) -> None:
        try:
            atomic_write(stats_path, json.dumps(stats, indent=1) + "\n", sync=False)  # every second
        except OSError as exc:  # keep sending: the stats are a report, the traffic is the point
            print(f"cannot write the stats {stats_path}: {exc}", file=sys.stderr, flush=True)

    traffic = Traffic(plan, HttpPoster(access))
    workers = workers_for(plan.rate / len(plan.replicas), plan.timeout)
    pools = {name: Pool(workers, traffic.call) for name, _ in plan.replicas}
    through = f" (endpoint {plan.endpoint})" if plan.endpoint else ""
    print(f"traffic {plan.token}: {plan.rate:g}/s for {plan.duration:g}s to "
          f"{', '.join(f'{n} {u}' for n, u in plan.replicas)}{through}", flush=True)
    final = run(traffic, lambda: stop["now"], write, lambda job: pools[job.replica].submit(job),
                lambda: sum(p.queued() for p in pools.values()))
    print(f"traffic {plan.token}: ended ({final['ended']}) after {final['elapsed']:.1f}s, sent {final['sent']}, "
          f"skipped {final['skipped']}, last error {final['last_error']}", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the daemon workers may sit in a call: never wait for them
