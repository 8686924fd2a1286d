"""Tiny loopback HTTP checks used while starting and watching the sandbox's processes."""

from __future__ import annotations

import json
from typing import Any

DEFAULT_TIMEOUT = 1.0


def http_ok(url: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """True when ``url`` answers with a 2xx status within ``timeout`` seconds."""
    import urllib.error
    import urllib.request  # on first use: it loads http.client, email and ssl, which validation never needs

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def http_json(url: str, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """The JSON body of ``url``, or None when it cannot be fetched or parsed."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
