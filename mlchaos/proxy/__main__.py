"""``python -m mlchaos.proxy --api HOST:PORT [--config proxies.json] [options]``: the proxy process.

The config file is Toxiproxy's: a JSON list of ``{name, listen, upstream, enabled}``; its
addresses are allowed from then on (see :mod:`mlchaos.proxy.addresses`). The API token comes
from ``--token-file``, ``MLCHAOS_PROXY_TOKEN_FILE`` or ``MLCHAOS_PROXY_TOKEN``; without one the
process refuses to start unless the API listens on loopback only. Prints ``READY <api_port>``
once the API and every configured proxy listen; stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from mlchaos.proxy.addresses import AddressPolicy
from mlchaos.proxy.core import ProxyRegistry, parse_address
from mlchaos.proxy.errors import ProxyError
from mlchaos.proxy.guard import ApiGuard
from mlchaos.proxy.server import ApiLimits, serve
from mlchaos.proxy.token import read_token


async def main(args: argparse.Namespace) -> int:
    """Run the proxies and the API until SIGTERM/SIGINT; return the exit code."""
    policy = AddressPolicy()
    try:
        host, port = parse_address(args.api, "--api")
        guard = ApiGuard(host, read_token(args.token_file), frozenset(args.allow_host),
                         frozenset(args.allow_origin))
        limits = ApiLimits(args.max_connections, args.idle_timeout, args.request_timeout)
        if args.strict_upstreams:
            policy.upstream.loopback_ports = None
        policy.upstream.allow(args.allow_upstream)
        policy.listen.allow(args.allow_listen)
        items = json.loads(args.config.read_text()) if args.config else []
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ValueError(f"{args.config}: must be a JSON list of proxies ({{name, listen, upstream, enabled}})")
        for item in items:
            policy.configured(item.get("listen", "127.0.0.1:0"), item["upstream"])
        registry = ProxyRegistry(policy)
        for item in items:
            await registry.create(item["name"], item.get("listen", "127.0.0.1:0"), item["upstream"],
                                  item.get("enabled", True))
    except (OSError, ValueError, KeyError, TypeError, ProxyError) as exc:
        print(f"mlchaos.proxy: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        server = await serve(registry, host, port, guard, limits)
    except OSError as exc:
        print(f"mlchaos.proxy: cannot listen on {args.api}: {exc}", file=sys.stderr, flush=True)
        await registry.close()
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    print(f"event loop: {type(loop).__module__}.{type(loop).__name__}", flush=True)
    print(f"api on {args.api}: token {'required' if guard.token else 'not set (loopback only)'};"
          f" upstreams allowed: {policy.upstream.describe()}; listen addresses allowed: {policy.listen.describe()}",
          flush=True)
    for proxy in registry.proxies.values():
        print(f"proxy {proxy.name} {proxy.listen} -> {proxy.upstream}", flush=True)
    await stop.wait()
    server.close()
    await registry.close()
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line."""
    out = argparse.ArgumentParser(prog="python -m mlchaos.proxy", description=__doc__.splitlines()[0])
    out.add_argument("--api", default="127.0.0.1:8474", help="HOST:PORT of the HTTP API (port 0: any)")
    out.add_argument("--config", type=Path, help="JSON list of proxies to create at start (their addresses are"
                                                 " allowed)")
    out.add_argument("--token-file", type=Path, help="file holding the API token (default: $MLCHAOS_PROXY_TOKEN_FILE,"
                                                     " else $MLCHAOS_PROXY_TOKEN); required beyond loopback")
    out.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                     help="a Host name the API answers to besides loopback and its own address (repeatable)")
    out.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                     help="a web origin (https://ui.example) whose pages may call the API (repeatable)")
    out.add_argument("--allow-upstream", action="append", default=[], metavar="HOST:PORT",
                     help="an upstream proxies may forward to (either part may be *; repeatable)")
    out.add_argument("--allow-listen", action="append", default=[], metavar="HOST:PORT",
                     help="an address proxies may listen on besides loopback (either part may be *; repeatable)")
    out.add_argument("--strict-upstreams", action="store_true",
                     help="allow only configured and --allow-upstream upstreams, not loopback ones")
    out.add_argument("--max-connections", type=int, default=ApiLimits.max_connections,
                     help="API connections at once (at the cap the longest-idle one is closed)")
    out.add_argument("--idle-timeout", type=float, default=ApiLimits.idle_timeout,
                     help="seconds an API connection may wait between requests")
    out.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                     help="event loop: uvloop when it is installed (auto, the default), or asyncio's own")
    out.add_argument("--request-timeout", type=float, default=ApiLimits.request_timeout,
                     help="seconds to read one request, and to write its answer")
    return out


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory (``auto``: when installed), else None: asyncio's default loop."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("mlchaos.proxy: --loop uvloop, but uvloop is not installed (pip install uvloop)") from None
        return None
    return uvloop.new_event_loop


def cli(argv: list[str] | None = None) -> int:
    """Parse arguments and run."""
    args = parser().parse_args(argv)
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        return runner.run(main(args))


if __name__ == "__main__":
    sys.exit(cli())
