"""The API token: where the proxy process reads it, and what a valid one looks like.

Read from ``--token-file PATH``, else the file named by ``MLCHAOS_PROXY_TOKEN_FILE``, else
``MLCHAOS_PROXY_TOKEN`` itself (a file's surrounding whitespace, such as its final newline, is
dropped). A token is 16 to 4096 visible ASCII characters, so it fits in a header as it is.

Clients send it as ``Authorization: Bearer TOKEN``, or as the password of HTTP basic
authentication (any user name): what Toxiproxy clients that know nothing of tokens can be made
to send (``requests`` reads ``~/.netrc``, or the file ``NETRC`` names, for that). mlchaos' own
clients read the same variables (:mod:`mlchaos.lib.proxy_token`, kept apart on purpose: the
fault-proxy image ships ``mlchaos/proxy/`` alone).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

TOKEN_ENV = "MLCHAOS_PROXY_TOKEN"
TOKEN_FILE_ENV = "MLCHAOS_PROXY_TOKEN_FILE"
MIN_LENGTH = 16
_TOKEN = re.compile(r"[!-~]{16,4096}")  # visible ASCII, no spaces


class TokenError(ValueError):
    """A token that cannot be read or is not a valid token (the message says which and where)."""


def check_token(token: str, where: str) -> str:
    """``token`` when it is a valid token; TokenError naming ``where`` it came from otherwise."""
    if not _TOKEN.fullmatch(token):
        raise TokenError(f"the API token from {where} must be {MIN_LENGTH} to 4096 visible ASCII characters"
                         f" (no spaces), got {len(token)} characters; make one with"
                         " `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return token


def read_token(token_file: Path | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The configured token (see the module doc), or None when none is configured."""
    environ = os.environ if environ is None else environ
    if token_file is None and environ.get(TOKEN_FILE_ENV):
        token_file = Path(environ[TOKEN_FILE_ENV])
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"cannot read the API token file {token_file}: {exc}") from None
        return check_token(text.strip(), str(token_file))
    value = environ.get(TOKEN_ENV)
    if value is None or value == "":
        return None
    return check_token(value.strip(), TOKEN_ENV)
