"""The fault proxy's API token as mlchaos' own clients send it (the drivers, the sandbox's proxy process).

The same variables the proxy reads (:mod:`mlchaos.proxy.token`; that package stays
self-contained, so the few lines are repeated here and a unit test keeps them in step):
``MLCHAOS_PROXY_TOKEN_FILE`` names a file holding the token, else ``MLCHAOS_PROXY_TOKEN`` is the
token. No token configured: no header (a loopback proxy without a token needs none).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mlchaos.errors import MlchaosError

TOKEN_ENV = "MLCHAOS_PROXY_TOKEN"
TOKEN_FILE_ENV = "MLCHAOS_PROXY_TOKEN_FILE"
TOKEN_HEADER = "X-Mlchaos-Proxy-Token"


def proxy_token(environ: Mapping[str, str] | None = None, error: type[MlchaosError] = MlchaosError) -> str | None:
    """The configured token, or None; ``error`` when the token file named cannot be read."""
    environ = os.environ if environ is None else environ
    path = environ.get(TOKEN_FILE_ENV)
    if path:
        try:
            return Path(path).read_text(encoding="ascii").strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            raise error(f"cannot read the fault proxy's API token from {TOKEN_FILE_ENV}={path}: {exc}") from None
    return (environ.get(TOKEN_ENV) or "").strip() or None


def proxy_api_headers(environ: Mapping[str, str] | None = None,
                      error: type[MlchaosError] = MlchaosError) -> dict[str, str]:
    """``Authorization: Bearer TOKEN`` and ``X-Mlchaos-Proxy-Token: TOKEN`` when a token is configured, else ``{}``.

    The second header is what survives the Kubernetes API server's service proxy (it removes
    Authorization before forwarding); the proxy accepts either (:mod:`mlchaos.proxy.guard`).
    """
    token = proxy_token(environ, error)
    return {"Authorization": f"Bearer {token}", TOKEN_HEADER: token} if token else {}
