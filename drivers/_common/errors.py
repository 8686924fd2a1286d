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
import urllib.error
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
    import requests  # only the drivers that talk HTTP pay for importing it

    try:
        yield
    except (DriverError, urllib.error.HTTPError):
        raise
    except (requests.RequestException, OSError) as exc:  # urllib's URLError is an OSError
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, requests.Timeout | TimeoutError):
            failure = f"{where} did not answer {request} within {timeout:g}s"
        else:
            failure = f"{where} is unreachable: {reason}"
        raise DriverError(failure) from None
