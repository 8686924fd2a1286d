"""``python -m mlchaos.proxy --api HOST:PORT [--config proxies.json]``: the proxy process.

The config file is Toxiproxy's: a JSON list of ``{name, listen, upstream, enabled}``.
Prints ``READY <api_port>`` once the API and every configured proxy listen; stops
cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from mlchaos.proxy.api import serve
from mlchaos.proxy.core import ProxyRegistry, parse_address
from mlchaos.proxy.errors import ProxyError


async def main(api: str, config: Path | None) -> int:
    """Run the proxies and the API until SIGTERM/SIGINT; return the exit code."""
    registry = ProxyRegistry()
    try:
        host, port = parse_address(api, "--api")
        for item in json.loads(config.read_text()) if config else []:
            await registry.create(item["name"], item.get("listen", "127.0.0.1:0"), item["upstream"],
                                  item.get("enabled", True))
    except (OSError, ValueError, KeyError, TypeError, ProxyError) as exc:
        print(f"mlchaos.proxy: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        server = await serve(registry, host, port)
    except OSError as exc:
        print(f"mlchaos.proxy: cannot listen on {api}: {exc}", file=sys.stderr, flush=True)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    for proxy in registry.proxies.values():
        print(f"proxy {proxy.name} {proxy.listen} -> {proxy.upstream}", flush=True)
    await stop.wait()
    server.close()
    await registry.close()
    return 0


def cli(argv: list[str] | None = None) -> int:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(prog="python -m mlchaos.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="127.0.0.1:8474", help="HOST:PORT of the HTTP API (port 0: any)")
    parser.add_argument("--config", type=Path, help="JSON list of proxies to create at start")
    args = parser.parse_args(argv)
    return asyncio.run(main(args.api, args.config))


if __name__ == "__main__":
    sys.exit(cli())
