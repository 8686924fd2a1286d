"""The two places where foreign errors become driver errors: the core's own, and HTTP transports.

:func:`translated` turns a SandboxError (the sandbox state could not be read, a replica could
not be restarted...) or a CertificateError into a DriverError with the same message; a
DriverError raised inside (TargetNotFound too) passes through. :func:`http_errors` turns a
transport failure of ``requests`` or ``urllib`` (no answer in time, nothing listening) into
one DriverError line naming the server; an HTTP answer, whatever its status, is not a failure
here (urllib's HTTPError passes through to the caller, who reads the status).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from mlchaos.driver_kit import CertificateError, DriverError, SandboxError

FOREIGN = (SandboxError, CertificateError)


@contextlib.contextmanager
def translated(what: str | None = None) -> Iterator[None]:
    """SandboxError / CertificateError raised in the block become DriverError (``what: `` before the message)."""
    try:
        yield
    except FOREIGN as exc:
        raise DriverError(f"{what}: {exc}" if what else str(exc)) from exc


@contextlib.contextmanager
def http_errors(where: str, request: str, timeout: float) -> Iterator[None]:
    """Transport failures in the block become ``{where} did not answer {request} within {timeout}s`` or
    ``{where} is unreachable: {reason}``."""
    import ssl  # only the drivers that talk HTTP pay for these (validating an experiment imports this module)
    import urllib.error

    import requests

    try:
        yield
    except (DriverError, urllib.error.HTTPError):
        raise
    except (requests.RequestException, OSError) as exc:  # urllib's URLError is an OSError
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, requests.Timeout | TimeoutError):
            failure = f"{where} did not answer {request} within {timeout:g}s"
        elif isinstance(reason, requests.exceptions.SSLError | ssl.SSLError):
            failure = f"{where}: TLS failed ({_tls_reason(reason)})"
        else:
            failure = f"{where} is unreachable: {reason}"
        raise DriverError(failure) from None


def _tls_reason(exc: BaseException) -> str:
    """The innermost TLS reason of a requests/urllib3 SSL error, e.g. ``certificate verify failed: self-signed
    certificate`` or ``tlsv13 alert certificate required`` (the server wants a client certificate)."""
    text = str(exc)
    found = re.findall(r"\[SSL(?:: [A-Z0-9_]+)?\] ([^()\]\n]+?)(?: \(_ssl\.c:\d+\))?['\")\]]", text)
    reason = " ".join((found[-1] if found else text).split())[:300]
    if "bad certificate" in reason or "certificate required" in reason:
        reason += ": the server wants a client certificate it trusts (client_cert_file and client_key_file)"
    return reason
