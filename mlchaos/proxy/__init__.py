"""A fault-injecting TCP proxy (Toxiproxy-compatible API) on asyncio: stdlib only, uvloop used when installed.

* :mod:`mlchaos.proxy.core`: :class:`ProxyRegistry`, :class:`Proxy`, toxic entries (no HTTP);
* :mod:`mlchaos.proxy.toxics`: latency, bandwidth, timeout, reset_peer, slow_close;
* :mod:`mlchaos.proxy.addresses`: where proxies may forward to and listen on (the allow-lists);
* :mod:`mlchaos.proxy.api`: the routes of the HTTP API (Toxiproxy's REST API) over the core;
* :mod:`mlchaos.proxy.server`: the HTTP server around it: strict parsing (:mod:`~mlchaos.proxy.request`),
  who may call (:mod:`~mlchaos.proxy.guard`, :mod:`~mlchaos.proxy.token`), connection limits;
* ``python -m mlchaos.proxy --api HOST:PORT [--config proxies.json]``: one process with both.
"""

from mlchaos.proxy.core import Proxy, ProxyRegistry
from mlchaos.proxy.entry import ToxicEntry
from mlchaos.proxy.errors import AlreadyExists, InvalidProxy, InvalidToxic, ProxyError, ProxyNotFound, ToxicNotFound

__all__ = ["AlreadyExists", "InvalidProxy", "InvalidToxic", "Proxy", "ProxyError", "ProxyNotFound",
           "ProxyRegistry", "ToxicEntry", "ToxicNotFound"]
