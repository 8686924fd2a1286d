"""``mlchaos sandbox up|down|status``: the local reference system (model replicas, fault proxy, monitoring)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``sandbox up [--replicas] [--base-port] [--timeout] [--no-monitoring] | down | status``."""
    parser = commands.add_parser("sandbox", help="manage the local ML sandbox")
    sandbox_commands = parser.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)
    up = sandbox_commands.add_parser("up", help="start the reference model replicas")
    up.add_argument("--replicas", type=int, default=3, help="number of replicas (default 3)")
    up.add_argument("--base-port", type=int, default=0,
                    help="first port (replica i listens on base+i); 0 picks free ports")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait until ready")
    up.add_argument("--no-monitoring", dest="monitoring", action="store_false",
                    help="do not start Prometheus, Alertmanager and the blackbox exporter")
    sandbox_commands.add_parser("down", help="stop every sandbox process")
    sandbox_commands.add_parser("status", help="show the sandbox processes and monitoring URLs")
    return parser


def main(args: argparse.Namespace) -> int:
    """``sandbox up|down|status``: start, stop or show the reference replicas, fault proxy and monitoring."""
    from mlchaos.engine import exit_codes
    from mlchaos.errors import MlchaosError
    from mlchaos.sandbox.manager import Sandbox

    box = Sandbox()
    try:
        if args.sandbox_command == "up":
            replicas = box.up(replicas=args.replicas, base_port=args.base_port, timeout=args.timeout,
                              monitoring=args.monitoring)
            for replica in replicas:
                _print_replica("ready", replica)
            _print_proxy(box)
            if args.monitoring:
                _print_monitoring(box)
            print(f"sandbox up: {len(replicas)} replicas{' with monitoring' if args.monitoring else ''}"
                  f" (state: {box.state_file})")
        elif args.sandbox_command == "down":
            monitoring_before = [r for r in box.monitoring().status() if r.state != "stopped"]
            stopped = box.down()
            print(f"sandbox down: stopped {len(stopped)} replicas and {len(monitoring_before)} monitoring processes")
        else:
            rows = box.status()
            if not rows:
                print("sandbox: not running")
            for row in rows:
                _print_replica(row.state, row.replica)
            if rows:
                _print_proxy(box)
            _print_monitoring(box)
    except MlchaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.DEVIATED
    return exit_codes.OK


def _print_replica(state: str, replica: Any) -> None:
    """One line per replica: the URL clients use (through its fault proxy) and its other ports."""
    ports = [f"direct :{replica.port}"]
    if replica.tls_port:
        ports.append(f"https :{replica.tls_port}")
    if replica.metrics_proxy_port:
        ports.append(f"scrapes via :{replica.metrics_proxy_port}")
    print(f"{state:<18} {replica.name:<12} pid {replica.pid:<8} {replica.client_url}  ({', '.join(ports)})")


def _print_proxy(box: Any) -> None:
    url = box.proxy().api_url()
    print(f"{'ready' if url else 'dead':<18} {'fault proxy':<12} {'':<12} {url or '(not running)'}"
          "  (Toxiproxy-compatible API)")


def _print_monitoring(box: Any) -> None:
    """The monitoring processes, their URLs and where Alertmanager sends notifications."""
    monitoring = box.monitoring()
    rows = monitoring.status()
    if not rows:
        print("monitoring: not started (mlchaos sandbox up starts it; --no-monitoring skips it)")
        return
    for row in rows:
        print(f"{row.state:<18} {row.name:<12} pid {row.pid:<8} {row.url}")
    state = monitoring.recorded_endpoints()
    if state is not None:
        print(f"alert sink: {state.sink_url} (Alertmanager webhook; served by `mlchaos run` while it runs)")
