"""Choosing and deleting 10 % of 1,000 pods in one namespace with the Kubernetes driver, against kmock's emulator.

Run from anywhere (needs the test extra: kmock):

    .venv/bin/python benchmarks/kubernetes_selection.py [--pods 1000] [--percentage 10] [--owners 10] [--rounds 5]

It starts the API emulator (drivers.kubernetes.emulator: real HTTP on 127.0.0.1, the official
``kubernetes`` client) and puts N Running pods into namespace ``bench``, owned by ``--owners``
ReplicaSets of as many Deployments. After one warm-up call (imports, kubeconfig, connection
pool: not measured), each round measures, on a fresh population:

1. **plan**: ``delete_pods(percentage=P, seed=round, dry_run=True)``: validation, one list
   call, the choice, owner resolution (one GET per distinct ReplicaSet), the change record;
2. **mlchaos**: the same call for real: the above plus the deletes, 16 at a time;
3. **sequential client**: the official client alone, one list call and the same pods deleted
   one after another (no owner lookup, no record): the floor a plain script pays.

and the number of API requests each made, counted by the emulator (per verb), plus the
driver's pure selection time (parse + filter + choose over the listed pods, no I/O). It prints
the median (min-max) wall times; no assertions on time. The emulator runs in a child process,
as an API server would (not in this process' GIL), but on the same machine: client and
server share its cores, and kmock's emulator is slower than a real API server (every request
scans its whole store), so the figures are upper bounds of the driver's cost; the request
counts are exact.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from drivers.kubernetes import actions, selection  # noqa: E402
from drivers.kubernetes.client import connect  # noqa: E402
from tests.support.kubernetes_emulator import DEPLOYMENTS, PODS, REPLICASETS, EmulatedCluster  # noqa: E402

NS = "bench"
LABELS = {"app.kubernetes.io/name": "model-server"}
SELECTOR = "app.kubernetes.io/name=model-server"


def seed(cluster: EmulatedCluster, pods: int, owners: int) -> None:
    """Put the population into the store directly (not timed, not counted)."""
    for existing in cluster.list(PODS, NS):
        cluster.delete(PODS, NS, existing["metadata"]["name"])
    per_owner = pods // owners
    for index in range(owners):
        name = f"model-{index:02d}"
        deployment = cluster.put(DEPLOYMENTS, {"apiVersion": "apps/v1", "kind": "Deployment",
                                               "metadata": {"name": name, "namespace": NS, "labels": LABELS},
                                               "spec": {"replicas": per_owner}})
        replicaset = cluster.put(REPLICASETS, {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{name}-abc", "namespace": NS, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                 "uid": deployment["metadata"]["uid"], "controller": True}]}, "spec": {"replicas": per_owner}})
        cluster.pods_for(NS, LABELS, count=per_owner, prefix=f"{name}-abc",
                         owner={"kind": "ReplicaSet", "name": f"{name}-abc", "uid": replicaset["metadata"]["uid"]})


def serve(pipe: Connection, folder: str) -> None:
    """The API server process: the emulator, driven through ``pipe`` (seed, calls, pods, stop)."""
    with EmulatedCluster(folder) as cluster:
        pipe.send(cluster.connection())
        while True:
            command, *arguments = pipe.recv()
            if command == "seed":
                seed(cluster, *arguments)
                pipe.send(None)
            elif command == "calls":
                pipe.send(Counter(f"{c.verb} {c.resource}" for c in cluster.calls))
                cluster.clear_calls()
            elif command == "pods":
                pipe.send(len(cluster.list(PODS, NS)))
            else:
                pipe.send(None)
                return


class Server:
    """The emulator in a child process (as a real API server would be: it does not share this process' GIL)."""

    def __init__(self, folder: str) -> None:
        self.pipe, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(target=serve, args=(child, folder), daemon=True)
        self.process.start()
        self.connection = self.pipe.recv()

    def ask(self, *command: object) -> object:
        self.pipe.send(command)
        return self.pipe.recv()

    def stop(self) -> None:
        self.ask("stop")
        self.process.join(10)


def measure(server: Server, run: Callable[[], object]) -> tuple[float, Counter]:
    server.ask("calls")  # forget the calls made so far
    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start
    return elapsed, server.ask("calls")  # type: ignore[return-value]


def sequential(connection: dict, names: list[str]) -> None:
    conn = connect(**connection)
    conn.call("list pods", "core", "list_namespaced_pod", NS, label_selector=SELECTOR)
    for name in names:
        conn.call(f"delete pod {name}", "core", "delete_namespaced_pod", name, NS, body={"gracePeriodSeconds": 0})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--percentage", type=float, default=10.0)
    parser.add_argument("--owners", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"plan": [], "mlchaos": [], "sequential client": [], "pure selection": []}
    counts: dict[str, Counter] = {}
    deleted = 0
    with tempfile.TemporaryDirectory() as folder:
        server = Server(folder)
        try:
            conn = server.connection
            server.ask("seed", args.pods, args.owners)  # warm-up (imports, kubeconfig, connections): not measured
            actions.delete_pods(NS, SELECTOR, percentage=args.percentage, seed=0, dry_run=True, **conn)
            for round_ in range(args.rounds):
                server.ask("seed", args.pods, args.owners)
                elapsed, counts["plan"] = measure(server, lambda r=round_: actions.delete_pods(
                    NS, SELECTOR, percentage=args.percentage, seed=r, grace_period=0, dry_run=True, **conn))
                times["plan"].append(elapsed)
                listed = connect(**conn).call("list", "core", "list_namespaced_pod", NS)["items"]
                start = time.perf_counter()
                chooser = selection.parse_pod_selector(NS, SELECTOR)
                pool = selection.eligible(listed, chooser)
                chosen = selection.choose(pool, chooser, selection.parse_mode(percentage=args.percentage), round_)
                times["pure selection"].append(time.perf_counter() - start)
                result: dict = {}
                elapsed, counts["mlchaos"] = measure(server, lambda r=round_, out=result: out.update(
                    actions.delete_pods(NS, SELECTOR, percentage=args.percentage, seed=r, grace_period=0, **conn)))
                times["mlchaos"].append(elapsed)
                deleted = len(result["targets"])
                assert server.ask("pods") == args.pods - deleted and len(chosen) == deleted
                server.ask("seed", args.pods, args.owners)
                names = [p["metadata"]["name"] for p in chosen]
                elapsed, counts["sequential client"] = measure(server, lambda n=names: sequential(conn, n))
                times["sequential client"].append(elapsed)
                assert server.ask("pods") == args.pods - len(names)
        finally:
            server.stop()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    print(f"{args.pods} pods in one namespace ({args.owners} Deployments), delete {args.percentage:g}% = {deleted} "
          f"pods; {args.rounds} rounds; emulator in its own process")
    for name, values in times.items():
        calls = counts.get(name)
        detail = f"  {sum(calls.values())} API calls ({', '.join(f'{k}: {v}' for k, v in sorted(calls.items()))})" \
            if calls is not None else "  (no I/O)"
        print(f"  {name:<18} median {statistics.median(values) * 1000:8.1f} ms  "
              f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f}){detail}")
    ratio = statistics.median(times["sequential client"]) / statistics.median(times["mlchaos"])
    print(f"  sequential / mlchaos: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
