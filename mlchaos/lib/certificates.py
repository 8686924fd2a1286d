"""Test certificates: a private CA and leaf certificates that are valid, expiring, expired or wrong.

Everything here is local and fast (EC P-256 keys, no network). Dates are computed
from ``now`` (an argument, for deterministic tests), never from a clock inside a loop.

Kinds of leaf certificate (:data:`KINDS`), and what a verifying client says about each:

* ``valid``: signed by the CA, valid for the hosts -> the handshake succeeds.
* ``expiring_soon``: like valid, but ``not_after`` is ``days`` days ahead -> still accepted.
* ``expired``: valid for one hour only (:data:`EXPIRED_WINDOW`), which ended ``days`` days ago
  -> "certificate has expired".
* ``wrong_hostname``: signed by the CA for another name only -> "hostname mismatch".
* ``untrusted``: valid dates and hosts, signed by a throw-away CA nobody trusts -> "unknown issuer".

Who signs a fault's certificate (:func:`signer_for`): the bad kinds (:data:`BAD_KINDS`: expired,
wrong_hostname, untrusted) by default by a throw-away CA made for that one certificate (its key is
never written; the serving CA's key is not even read), so a fault needs no access to the CA clients
trust. A verifying client then refuses it as "unknown issuer" before it looks at dates or names;
monitoring that reads the certificate without verifying (the blackbox exporter's expiry probe)
still sees the expiry. A drill that must see the client refuse the certificate *for its dates or
its name alone* opts in with ``signer: trusted_ca`` and a CA directory: the certificate is then
signed by that CA (the sandbox's drills do, because the sandbox's CA is mlchaos' own). ``valid`` and
``expiring_soon`` are meant to be accepted, so they default to ``trusted_ca``; ``untrusted`` is
always throw-away. What limits a trusted-CA-signed bad certificate: an expired one was valid for one
hour, long ago; a wrong-host one names only ``wrong-host.mlchaos.invalid``; their keys live where the
server's own key lives, and the TLS drivers prune their backups once the fault is undone.

On disk (:func:`write_certificate`): ``<name>.crt`` (the leaf, what a server presents),
``<name>.key`` (mode 0600), ``<name>-chain.crt`` (leaf + issuing CA) and the issuing CA's
certificate as ``ca_path``. Every file is replaced atomically. A CA directory holds
``ca.crt`` and ``ca.key`` (:meth:`CertificateAuthority.write` / :meth:`CertificateAuthority.load`).

The sandbox layout (:func:`sandbox_tls_paths`): ``<state_dir>/tls/ca/{ca.crt,ca.key}`` is the
CA clients trust; ``<state_dir>/tls/<replica>/{server.crt,server.key,server-chain.crt}`` is
what replica ``<replica>`` serves (:func:`issue_sandbox_certificates` creates or reuses them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlchaos.errors import CertificateError
from mlchaos.lib.files import atomic_write

CertificateKind = Literal["valid", "expiring_soon", "expired", "wrong_hostname", "untrusted"]
KINDS: tuple[str, ...] = ("valid", "expiring_soon", "expired", "wrong_hostname", "untrusted")
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")
WRONG_HOSTNAME = "wrong-host.mlchaos.invalid"  # the only name a wrong_hostname certificate is valid for
CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
SERVER_NAME = "server"
CA_VALID_DAYS = 3650
LEAF_VALID_DAYS = 365
BACKDATE = timedelta(minutes=5)  # not_before slightly in the past: clock skew between processes
REISSUE_MARGIN = timedelta(days=1)  # a sandbox leaf expiring sooner than this is reissued
EXPIRED_WINDOW = timedelta(hours=1)  # how long an expired leaf was ever valid (ending ``days`` ago)
# the kinds a client must refuse; signed by a throw-away CA unless a drill opts in (see the module's docstring)
BAD_KINDS: frozenset[str] = frozenset({"expired", "wrong_hostname", "untrusted"})
THROWAWAY = "throwaway"
TRUSTED_CA = "trusted_ca"
SIGNERS: tuple[str, ...] = (THROWAWAY, TRUSTED_CA)


@dataclass(frozen=True)
class CertificateFiles:
    """PEM files of one leaf certificate, and which CA issued it."""

    cert_path: Path
    key_path: Path
    ca_path: Path
    kind: str
    not_after: datetime
    chain_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (paths as strings, not_after as ISO 8601)."""
        return {
            "cert_path": str(self.cert_path),
            "key_path": str(self.key_path),
            "ca_path": str(self.ca_path),
            "chain_path": str(self.chain_path) if self.chain_path else None,
            "kind": self.kind,
            "not_after": self.not_after.isoformat(),
        }


@dataclass(frozen=True)
class SandboxTLSPaths:
    """Where the sandbox keeps its CA and the certificate files of one replica."""

    ca_dir: Path
    directory: Path

    @property
    def ca_path(self) -> Path:
        """The CA certificate clients trust."""
        return self.ca_dir / CA_CERT_FILE

    @property
    def cert_path(self) -> Path:
        """The leaf certificate the replica presents."""
        return self.directory / f"{SERVER_NAME}.crt"

    @property
    def key_path(self) -> Path:
        """The replica's private key (mode 0600)."""
        return self.directory / f"{SERVER_NAME}.key"


@dataclass(frozen=True)
class CertificateAuthority:
    """A private certificate authority: its certificate and signing key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, common_name: str = "mlchaos sandbox CA", valid_days: int = CA_VALID_DAYS,
               now: datetime | None = None) -> CertificateAuthority:
        """A new self-signed CA valid from (a few minutes before) ``now`` for ``valid_days`` days."""
        if valid_days <= 0:
            raise CertificateError(f"valid_days must be > 0, got {valid_days}")
        now = _utc(now)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, ca_dir: Path | str) -> CertificateAuthority:
        """Read ``ca.crt`` and ``ca.key`` from ``ca_dir``; CertificateError when missing or unreadable."""
        ca_dir = Path(ca_dir)
        try:
            cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT_FILE).read_bytes())
            key = serialization.load_pem_private_key((ca_dir / CA_KEY_FILE).read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise CertificateError(f"no usable CA in {ca_dir} ({CA_CERT_FILE} + {CA_KEY_FILE}): {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"{ca_dir / CA_KEY_FILE}: expected an EC private key")
        if cert.public_key() != key.public_key():
            raise CertificateError(f"{ca_dir}: {CA_CERT_FILE} and {CA_KEY_FILE} do not belong together")
        return cls(cert, key)

    def write(self, ca_dir: Path | str) -> Path:
        """Write ``ca.crt`` and ``ca.key`` (0600) into ``ca_dir``; return the certificate's path."""
        ca_dir = Path(ca_dir)
        atomic_write(ca_dir / CA_KEY_FILE, key_pem(self.key), mode=0o600)
        atomic_write(ca_dir / CA_CERT_FILE, cert_pem(self.certificate), mode=0o644)
        return ca_dir / CA_CERT_FILE

    def issue(self, hosts: Sequence[str], not_before: datetime, not_after: datetime,
              common_name: str | None = None,
              client: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A new server certificate and key for ``hosts`` (DNS names and/or IP addresses, as SANs); ``client``: one
        usable as a TLS client certificate too (extended key usage clientAuth, which mTLS servers require)."""
        if not hosts:
            raise CertificateError("a certificate needs at least one host name or IP address")
        if not_after <= not_before:
            raise CertificateError(f"not_after ({not_after}) must be later than not_before ({not_before})")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or hosts[0])])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(_san_entries(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]
                                                 + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert, key

    def signed(self, cert: x509.Certificate) -> bool:
        """True when ``cert`` was issued (and signed) by this CA."""
        if cert.issuer != self.certificate.subject:
            return False
        try:
            cert.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def validity(kind: str, days: int = 3, now: datetime | None = None) -> tuple[datetime, datetime]:
    """(not_before, not_after) of a leaf of ``kind``: expired was valid for one hour ending ``days`` ago,
    expiring_soon ends in ``days``."""
    _check_kind(kind)
    if days <= 0:
        raise CertificateError(f"days must be > 0, got {days}")
    now = _utc(now)
    if kind == "expired":
        return now - timedelta(days=days) - EXPIRED_WINDOW, now - timedelta(days=days)
    if kind == "expiring_soon":
        return now - BACKDATE, now + timedelta(days=days)
    return now - BACKDATE, now + timedelta(days=LEAF_VALID_DAYS)


def signer_for(kind: str, signer: str | None) -> str:
    """Who signs a ``kind`` certificate: ``signer`` if given and allowed, else the kind's default.

    Defaults: :data:`THROWAWAY` for the :data:`BAD_KINDS`, :data:`TRUSTED_CA` for valid and
    expiring_soon. ``untrusted`` can only be signed by a throw-away CA.
    """
    _check_kind(kind)
    if signer is None:
        return THROWAWAY if kind in BAD_KINDS else TRUSTED_CA
    if signer not in SIGNERS:
        raise CertificateError(f"signer must be one of {', '.join(SIGNERS)}, got {signer!r}")
    if kind == "untrusted" and signer == TRUSTED_CA:
        raise CertificateError("an untrusted certificate is signed by a throw-away CA by definition: "
                               f"signer {TRUSTED_CA} is not allowed with it")
    return signer


def issue_certificate(
    kind: str, hosts: Sequence[str] = DEFAULT_HOSTS, ca: CertificateAuthority | None = None,
    days: int = 3, now: datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, CertificateAuthority]:
    """A leaf of ``kind`` for ``hosts`` and the CA that signed it.

    Signed by ``ca`` when one is given (the caller decided, with :func:`signer_for`, that the CA
    clients trust signs it), else by a fresh throw-away CA that nobody trusts. ``untrusted`` is
    always signed by a throw-away CA. ``days``: how long ago an expired certificate ended, or how
    soon an expiring_soon one ends.
    """
    _check_kind(kind)
    now = _utc(now)
    not_before, not_after = validity(kind, days, now)
    if ca is None or kind == "untrusted":
        ca = CertificateAuthority.create("mlchaos throw-away CA (trusted by nobody)", now=now)
    names = [WRONG_HOSTNAME] if kind == "wrong_hostname" else list(hosts)
    cert, key = ca.issue(names, not_before, not_after)
    return cert, key, ca


def write_certificate(
    cert_path: Path | str, key_path: Path | str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
    ca: CertificateAuthority, kind: str, ca_path: Path | str | None = None,
) -> CertificateFiles:
    """Write a leaf, its key (0600) and chain atomically, the key first; return the files.

    ``ca_path``: where the issuing CA's certificate already is, or where to write it
    (default ``<cert stem>-ca.crt`` next to the leaf). The chain is ``<cert stem>-chain.crt``.
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    chain_path = cert_path.with_name(f"{cert_path.stem}-chain{cert_path.suffix or '.crt'}")
    ca_file = Path(ca_path) if ca_path is not None else cert_path.with_name(f"{cert_path.stem}-ca.crt")
    if not ca_file.exists() or ca_file.read_bytes() != cert_pem(ca.certificate):
        atomic_write(ca_file, cert_pem(ca.certificate), mode=0o644)
    atomic_write(key_path, key_pem(key), mode=0o600)
    atomic_write(cert_path, cert_pem(cert), mode=0o644)
    atomic_write(chain_path, cert_pem(cert) + cert_pem(ca.certificate), mode=0o644)
    return CertificateFiles(cert_path, key_path, ca_file, kind, cert.not_valid_after_utc, chain_path)


def sandbox_tls_paths(state_dir: Path | str, replica: str) -> SandboxTLSPaths:
    """The sandbox layout: CA in ``<state_dir>/tls/ca``, replica files in ``<state_dir>/tls/<replica>``."""
    if not replica or "/" in replica or replica in (".", "..", "ca"):
        raise CertificateError(f"invalid replica name for a certificate directory: {replica!r}")
    base = Path(state_dir) / "tls"
    return SandboxTLSPaths(ca_dir=base / "ca", directory=base / replica)


def load_or_create_ca(ca_dir: Path | str, common_name: str = "mlchaos sandbox CA") -> CertificateAuthority:
    """The CA in ``ca_dir``, created (and written) when there is none yet."""
    ca_dir = Path(ca_dir)
    if (ca_dir / CA_CERT_FILE).exists() or (ca_dir / CA_KEY_FILE).exists():
        ca = CertificateAuthority.load(ca_dir)  # a broken CA is an error, never silently replaced
        if ca.certificate.not_valid_after_utc > datetime.now(UTC) + REISSUE_MARGIN:
            return ca
    ca = CertificateAuthority.create(common_name)
    ca.write(ca_dir)
    return ca


def issue_sandbox_certificates(
    directory: Path | str, hosts: Sequence[str] = DEFAULT_HOSTS, ca_dir: Path | str | None = None,
) -> CertificateFiles:
    """Create (or reuse) the CA and a valid leaf for ``hosts`` in ``directory``: what a replica serves.

    The CA lives in ``ca_dir`` (default: ``directory``). Existing files are reused when the
    leaf is signed by that CA, covers every host and is valid for at least another day;
    otherwise (e.g. an expired certificate left behind by an interrupted drill) a fresh
    valid leaf replaces them. Files: ``server.crt``, ``server.key`` (0600), ``server-chain.crt``.
    """
    directory = Path(directory)
    ca_dir = Path(ca_dir) if ca_dir is not None else directory
    ca = load_or_create_ca(ca_dir)
    cert_path, key_path = directory / f"{SERVER_NAME}.crt", directory / f"{SERVER_NAME}.key"
    ca_path = ca_dir / CA_CERT_FILE
    current = _reusable_leaf(cert_path, key_path, ca, hosts)
    if current is not None:
        chain = cert_path.with_name(f"{SERVER_NAME}-chain.crt")
        return CertificateFiles(cert_path, key_path, ca_path, "valid", current.not_valid_after_utc, chain)
    cert, key, _ = issue_certificate("valid", hosts, ca)
    return write_certificate(cert_path, key_path, cert, key, ca, "valid", ca_path=ca_path)


def read_certificate(path: Path | str) -> x509.Certificate:
    """The first certificate in a PEM file; CertificateError when unreadable."""
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot read a PEM certificate from {path}: {exc}") from exc


def describe(cert: x509.Certificate) -> dict[str, Any]:
    """Subject, issuer, SANs, dates and SHA-256 fingerprint of a certificate, JSON-serialisable."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "hosts": certificate_hosts(cert),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "sha256": fingerprint(cert),
    }


def certificate_hosts(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses in the certificate's subjectAltName (empty when none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of a certificate, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def cert_pem(cert: x509.Certificate) -> bytes:
    """A certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _reusable_leaf(cert_path: Path, key_path: Path, ca: CertificateAuthority,
                   hosts: Iterable[str]) -> x509.Certificate | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    now = datetime.now(UTC)
    fresh = cert.not_valid_before_utc <= now and cert.not_valid_after_utc > now + REISSUE_MARGIN
    covered = {_normal_host(h) for h in hosts} <= {_normal_host(h) for h in certificate_hosts(cert)}
    if fresh and covered and ca.signed(cert) and cert.public_key() == key.public_key():
        return cert
    return None


def _san_entries(hosts: Iterable[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return entries


def _normal_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise CertificateError(f"unknown certificate kind {kind!r}; one of {', '.join(KINDS)}")


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise CertificateError("now must be timezone-aware (UTC)")
    return now.astimezone(UTC)
