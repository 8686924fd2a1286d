"""Overhead and accuracy of the mlchaos fault proxy, against a sandbox model-server replica on loopback.

Run from anywhere:

    .venv/bin/python benchmarks/proxy_overhead.py [--requests N] [--rounds R] [--clients C]

It starts a one-replica sandbox (no monitoring) in a temporary state directory, which
also starts the proxy process with proxy ``model-0`` in front of the replica, and
prints figures only (no assertions):

1. **added latency, no toxic**: keep-alive ``POST /v2/models/iris/infer`` (http.client,
   one single-row request at a time), direct and through the proxy, alternated in R
   rounds of N requests each; median and p99 of each, and the difference;
2. **throughput**: C client threads, each with its own keep-alive connection, send
   N requests each, direct then through the proxy (alternated over R rounds); requests
   per second, and the proxied/direct ratio (goal >= 0.8);
3. **latency accuracy**: with a 200 ms downstream latency toxic, the added median over
   N/10 requests against the direct median (goal: within 5 % of 200 ms);
4. **request-level toxic**: with an ``http_transform`` toxic scaling one feature of every infer
   request (train/serve skew: framing, JSON parse, rewrite), the proxied median and p99 against
   the proxied figures of 1 (what framing and rewriting add on top of the proxy).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from mlchaos.lib.proxy_token import proxy_api_headers  # noqa: E402
from mlchaos.sandbox.manager import Sandbox  # noqa: E402

BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                               "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
HEADERS = {"Content-Type": "application/json"}
PATH = "/v2/models/iris/infer"


def timed_requests(port: int, count: int) -> list[float]:
    """Milliseconds of ``count`` sequential keep-alive infer calls to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn.request("POST", PATH, BODY, HEADERS)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            out.append((time.perf_counter() - started) * 1000.0)
    finally:
        conn.close()
    return out


def throughput(port: int, clients: int, count: int) -> float:
    """Requests per second of ``clients`` threads sending ``count`` keep-alive calls each."""
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            timed_requests(port, count)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")
    return clients * count / elapsed


def p(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> int:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per round (default 500)")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds (default 5)")
    parser.add_argument("--clients", type=int, default=4, help="client threads for throughput (default 4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlchaos-proxy-bench-") as state:
        os.environ["MLCHAOS_STATE_DIR"] = state
        sandbox = Sandbox(Path(state))
        try:
            (replica,) = sandbox.up(replicas=1, timeout=60, monitoring=False)
            direct_port, proxy_port = replica.port, replica.proxy_port
            api = sandbox.proxy_api_url()
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
            print(f"replica 127.0.0.1:{direct_port}, proxy model-0 127.0.0.1:{proxy_port}, API {api}")
            timed_requests(direct_port, 50)  # warm-up
            timed_requests(proxy_port, 50)
            direct: list[float] = []
            proxied: list[float] = []
            for _ in range(args.rounds):
                direct += timed_requests(direct_port, args.requests)
                proxied += timed_requests(proxy_port, args.requests)
            dm, pm = statistics.median(direct), statistics.median(proxied)
            d99, p99 = p(direct, 99), p(proxied, 99)
            print(f"\n1. latency, no toxic ({len(direct)} sequential keep-alive infer calls each)")
            print(f"   direct : median {dm:.3f} ms  p99 {d99:.3f} ms")
            print(f"   proxied: median {pm:.3f} ms  p99 {p99:.3f} ms")
            print(f"   added  : median {pm - dm:+.3f} ms  p99 {p99 - d99:+.3f} ms   (goal: added p99 < 1 ms)")

            rates_d, rates_p = [], []
            per_client = max(args.requests // 2, 1)
            for _ in range(args.rounds):
                rates_d.append(throughput(direct_port, args.clients, per_client))
                rates_p.append(throughput(proxy_port, args.clients, per_client))
            rd, rp = statistics.median(rates_d), statistics.median(rates_p)
            print(f"\n2. throughput ({args.clients} clients x {per_client} keep-alive calls, median of {args.rounds})")
            print(f"   direct {rd:.0f} req/s, proxied {rp:.0f} req/s, ratio {rp / rd:.3f}   (goal >= 0.8)")

            auth = proxy_api_headers()  # the sandbox proxy's token, when MLCHAOS_PROXY_TOKEN sets one
            toxic = {"type": "latency", "attributes": {"latency": 200}, "ttl": 120}
            requests.post(f"{api}/proxies/model-0/toxics", json=toxic, headers=auth, timeout=5).raise_for_status()
            n = max(args.requests // 10, 10)
            base = statistics.median(timed_requests(direct_port, n))
            slow = statistics.median(timed_requests(proxy_port, n))
            added = slow - base
            print(f"\n3. latency toxic 200 ms ({n} calls): proxied median {slow:.2f} ms, direct median {base:.2f} ms")
            print(f"   added {added:.2f} ms, error {100 * (added - 200) / 200:+.2f} %   (goal: within 5 %)")
            requests.post(f"{api}/reset", timeout=5).raise_for_status()

            skew = {"type": "http_transform", "stream": "upstream", "name": "skew", "ttl": 300,
                    "attributes": {"transforms": [{"op": "scale", "feature": 2, "factor": 10}]}}
            requests.post(f"{api}/proxies/model-0/toxics", json=skew, headers=auth, timeout=5).raise_for_status()
            timed_requests(proxy_port, 50)  # warm-up
            skewed: list[float] = []
            for _ in range(args.rounds):
                skewed += timed_requests(proxy_port, args.requests)
            stats = requests.get(f"{api}/proxies/model-0/toxics/skew", headers=auth, timeout=5).json()["stats"]
            sm, s99 = statistics.median(skewed), p(skewed, 99)
            print(f"\n4. http_transform toxic, one feature scaled ({len(skewed)} keep-alive infer calls)")
            print(f"   proxied + transform: median {sm:.3f} ms  p99 {s99:.3f} ms;"
                  f" added over 1.'s proxied: median {sm - pm:+.3f} ms  p99 {s99 - p99:+.3f} ms")
            print(f"   requests changed {stats['changed']} of {stats['seen']}")
            requests.post(f"{api}/reset", timeout=5).raise_for_status()
        finally:
            sandbox.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
