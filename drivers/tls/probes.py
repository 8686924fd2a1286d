"""TLS probes: what certificate an endpoint presents, and whether a verifying client accepts it.

Every probe makes one real TLS handshake with a timeout (seconds). A verifying client
fails closed: an expired, untrusted or wrong-host certificate is never accepted.
Reasons are normalised from OpenSSL's verify code (:data:`REASONS`); the raw OpenSSL
message is kept in ``detail``.
"""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from drivers._common import checks
from drivers.tls.sandbox import replica_tls
from mlchaos.driver_kit import DriverError, certificates

# OpenSSL X509_V_ERR_* codes -> the reason a probe reports
REASONS: dict[int, str] = {
    2: "unknown issuer",  # unable to get issuer certificate
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "unknown issuer",  # self-signed certificate
    19: "unknown issuer",  # self-signed certificate in chain
    20: "unknown issuer",  # unable to get local issuer certificate
    21: "unknown issuer",  # unable to verify the first certificate
    62: "hostname mismatch",
    64: "hostname mismatch",  # IP address mismatch
}


def days_until_expiry(host: str | None = None, port: int | None = None, timeout: float = 5.0,
                      service: str | None = None, replica: str | None = None) -> float:
    """Days until the presented certificate expires (negative once expired); read without verifying it."""
    host, port, _ = _endpoint(host, port, service, replica)
    return _presented(host, port, timeout)["days_left"]


def presented_certificate(host: str | None = None, port: int | None = None, timeout: float = 5.0,
                          service: str | None = None, replica: str | None = None) -> dict[str, Any]:
    """Subject, issuer, hosts, dates, fingerprint and days_left of the presented certificate (unverified)."""
    host, port, _ = _endpoint(host, port, service, replica)
    return _presented(host, port, timeout)


def handshake_result(
    host: str | None = None, port: int | None = None, ca_file: str | None = None,
    server_hostname: str | None = None, timeout: float = 5.0, service: str | None = None,
    replica: str | None = None,
) -> dict[str, Any]:
    """A verifying TLS handshake: {ok, reason, verify_code, detail}; reason e.g. "certificate has expired".

    The endpoint is ``host``/``port``, or a sandbox ``service``/``replica`` (then ``ca_file``
    defaults to the sandbox CA). ``ca_file``: the CA certificates to trust (default: the
    system's). ``server_hostname``: the name checked against the certificate (default
    ``host``). A server that cannot be reached at all raises DriverError: no TLS verdict.
    """
    host, port, sandbox_ca = _endpoint(host, port, service, replica)
    ca_file = ca_file or sandbox_ca
    context = ssl.create_default_context(cafile=ca_file)
    name = server_hostname or host
    result: dict[str, Any] = {"host": host, "port": port, "server_hostname": name, "ok": False,
                              "reason": None, "verify_code": 0, "detail": None}
    try:
        with _connect(host, port, timeout) as sock, context.wrap_socket(sock, server_hostname=name) as tls:
            result.update(ok=True, protocol=tls.version())
    except ssl.SSLCertVerificationError as exc:
        code = int(exc.verify_code or 0)
        detail = str(exc.verify_message or exc.reason or exc)
        result.update(reason=REASONS.get(code, detail), verify_code=code, detail=detail)
    except ssl.SSLError as exc:
        result.update(reason=f"handshake failed: {exc.reason or exc}", detail=str(exc))
    except OSError as exc:  # reset, timeout: no verdict
        raise DriverError(f"TLS handshake with {host}:{port} did not complete: {exc!r}") from exc
    return result


def verifying_client_refused(
    host: str | None = None, port: int | None = None, ca_file: str | None = None,
    server_hostname: str | None = None, timeout: float = 5.0, service: str | None = None,
    replica: str | None = None,
) -> bool:
    """True when a verifying client refuses the endpoint's certificate (the handshake fails)."""
    return not handshake_result(host, port, ca_file, server_hostname, timeout, service, replica)["ok"]


def _endpoint(host: str | None, port: int | None, service: str | None,
              replica: str | None) -> tuple[str, int, str | None]:
    """(host, port, sandbox CA file or None) from host/port or a sandbox service/replica."""
    if service is not None or replica is not None:
        if host is not None or port is not None:
            raise DriverError("give either host/port or service/replica, not both")
        rec = replica_tls(service, replica)
        return rec.host, rec.tls_port, str(rec.paths.ca_path)
    if host is None or port is None:
        raise DriverError("host and port are required (or service and replica of the sandbox)")
    return host, port, None


def _presented(host: str, port: int, timeout: float) -> dict[str, Any]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # read what is presented, even when it is expired or untrusted
    try:
        with _connect(host, port, timeout) as sock, context.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:  # ssl.SSLError included
        raise DriverError(f"cannot read the certificate presented by {host}:{port}: {exc!r}") from exc
    if not der:
        raise DriverError(f"{host}:{port} presented no certificate")
    cert = x509.load_der_x509_certificate(der)
    left = (cert.not_valid_after_utc - datetime.now(UTC)).total_seconds() / 86400
    return {**certificates.describe(cert), "days_left": round(left, 6)}


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    checks.port("port", port)
    checks.positive("timeout", timeout)
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise DriverError(f"cannot connect to {host}:{port}: {exc}") from exc
