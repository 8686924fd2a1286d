"""mlchaos.certificates: dates, SANs, issuers, files and the sandbox layout (no network)."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from mlchaos.lib import certificates as certs
from mlchaos.lib.certificates import CertificateAuthority, CertificateError

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("test CA", valid_days=30, now=NOW)


def _san(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName), [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def test_ca_is_a_self_signed_ca(ca: CertificateAuthority) -> None:
    cert = ca.certificate
    assert cert.subject == cert.issuer
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.not_valid_after_utc == NOW + timedelta(days=30)
    assert cert.not_valid_before_utc < NOW
    assert ca.signed(cert)


@pytest.mark.parametrize(
    ("kind", "after"),
    [("valid", timedelta(days=certs.LEAF_VALID_DAYS)), ("expiring_soon", timedelta(days=3)),
     ("expired", timedelta(days=-3)), ("wrong_hostname", timedelta(days=certs.LEAF_VALID_DAYS))],
)
def test_leaf_dates_and_issuer(ca: CertificateAuthority, kind: str, after: timedelta) -> None:
    cert, key, issuer = certs.issue_certificate(kind, ["127.0.0.1", "localhost"], ca, days=3, now=NOW)
    assert issuer is ca and ca.signed(cert)
    assert cert.not_valid_after_utc == NOW + after
    assert cert.not_valid_before_utc < cert.not_valid_after_utc
    assert cert.public_key() == key.public_key()
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_sans_hold_dns_names_and_ip_addresses(ca: CertificateAuthority) -> None:
    cert, _, _ = certs.issue_certificate("valid", ["127.0.0.1", "localhost", "::1"], ca, now=NOW)
    dns, ips = _san(cert)
    assert dns == ["localhost"]
    assert ips == ["127.0.0.1", "::1"]
    assert all(ipaddress.ip_address(ip) for ip in ips)


def test_wrong_hostname_names_neither_requested_host(ca: CertificateAuthority) -> None:
    cert, _, _ = certs.issue_certificate("wrong_hostname", ["127.0.0.1", "localhost"], ca, now=NOW)
    assert _san(cert) == ([certs.WRONG_HOSTNAME], [])


def test_untrusted_is_signed_by_another_ca(ca: CertificateAuthority) -> None:
    cert, _, issuer = certs.issue_certificate("untrusted", ["127.0.0.1"], ca, now=NOW)
    assert issuer is not ca and issuer.signed(cert)
    assert not ca.signed(cert)
    assert cert.issuer != ca.certificate.subject
    assert cert.not_valid_after_utc > NOW  # only the issuer is wrong


def test_without_a_ca_every_kind_is_signed_by_a_fresh_throwaway_ca(ca: CertificateAuthority) -> None:
    for kind in certs.KINDS:
        cert, _, issuer = certs.issue_certificate(kind, ["127.0.0.1"], None, now=NOW)
        assert issuer.signed(cert) and not ca.signed(cert), kind
        assert "throw-away" in issuer.certificate.subject.rfc4514_string()


@pytest.mark.parametrize(("kind", "default"), [("expired", "throwaway"), ("wrong_hostname", "throwaway"),
                                               ("untrusted", "throwaway"), ("valid", "trusted_ca"),
                                               ("expiring_soon", "trusted_ca")])
def test_bad_kinds_default_to_a_throwaway_signer(kind: str, default: str) -> None:
    assert certs.signer_for(kind, None) == default
    if kind != "untrusted":
        assert certs.signer_for(kind, "trusted_ca") == "trusted_ca"  # an explicit opt-in
    assert certs.signer_for(kind, "throwaway") == "throwaway"


def test_signer_refuses_an_untrusted_certificate_from_the_trusted_ca_and_unknown_signers() -> None:
    with pytest.raises(CertificateError, match="not allowed"):
        certs.signer_for("untrusted", "trusted_ca")
    with pytest.raises(CertificateError, match="signer must be one of"):
        certs.signer_for("expired", "serving")


@pytest.mark.parametrize(("kind", "days", "message"), [("stale", 3, "unknown certificate kind"),
                                                        ("expired", 0, "days must be > 0")])
def test_bad_parameters(ca: CertificateAuthority, kind: str, days: int, message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        certs.issue_certificate(kind, ["127.0.0.1"], ca, days=days)


def test_naive_now_is_refused() -> None:
    with pytest.raises(CertificateError, match="timezone-aware"):
        certs.validity("valid", now=datetime(2030, 1, 1))


def test_written_files(tmp_path: Path, ca: CertificateAuthority) -> None:
    cert, key, issuer = certs.issue_certificate("expired", ["127.0.0.1"], ca, now=NOW)
    files = certs.write_certificate(tmp_path / "srv" / "server.crt", tmp_path / "srv" / "server.key", cert, key,
                                    issuer, "expired", ca_path=tmp_path / "ca.crt")
    assert stat.S_IMODE(files.key_path.stat().st_mode) == 0o600
    assert certs.read_certificate(files.cert_path) == cert
    assert certs.read_certificate(files.ca_path) == ca.certificate
    assert files.chain_path is not None
    chain = x509.load_pem_x509_certificates(files.chain_path.read_bytes())
    assert chain == [cert, ca.certificate]
    assert files.kind == "expired" and files.not_after == NOW - timedelta(days=3)
    assert files.to_dict()["not_after"] == (NOW - timedelta(days=3)).isoformat()
    assert not list(tmp_path.rglob(".*.tmp"))


def test_ca_round_trip_and_mismatch(tmp_path: Path, ca: CertificateAuthority) -> None:
    ca.write(tmp_path / "ca")
    assert stat.S_IMODE((tmp_path / "ca" / certs.CA_KEY_FILE).stat().st_mode) == 0o600
    loaded = CertificateAuthority.load(tmp_path / "ca")
    assert loaded.certificate == ca.certificate
    other = CertificateAuthority.create("other")
    other.write(tmp_path / "other")
    (tmp_path / "ca" / certs.CA_KEY_FILE).write_bytes((tmp_path / "other" / certs.CA_KEY_FILE).read_bytes())
    with pytest.raises(CertificateError, match="do not belong together"):
        CertificateAuthority.load(tmp_path / "ca")
    with pytest.raises(CertificateError, match="no usable CA"):
        CertificateAuthority.load(tmp_path / "missing")


def test_sandbox_certificates_are_reused_then_healed(tmp_path: Path) -> None:
    paths = certs.sandbox_tls_paths(tmp_path, "model-0")
    assert (paths.ca_dir, paths.directory) == (tmp_path / "tls" / "ca", tmp_path / "tls" / "model-0")
    first = certs.issue_sandbox_certificates(paths.directory, ca_dir=paths.ca_dir)
    assert (first.cert_path, first.key_path, first.ca_path) == (paths.cert_path, paths.key_path, paths.ca_path)
    assert sorted(certs.certificate_hosts(certs.read_certificate(first.cert_path))) == ["127.0.0.1", "localhost"]
    again = certs.issue_sandbox_certificates(paths.directory, ca_dir=paths.ca_dir)
    assert again.cert_path.read_bytes() == first.cert_path.read_bytes()  # reused, not reissued
    # an expired leaf left behind by an interrupted drill is replaced by a valid one
    ca = CertificateAuthority.load(paths.ca_dir)
    expired, key, _ = certs.issue_certificate("expired", ["127.0.0.1", "localhost"], ca)
    certs.write_certificate(paths.cert_path, paths.key_path, expired, key, ca, "expired", ca_path=paths.ca_path)
    healed = certs.issue_sandbox_certificates(paths.directory, ca_dir=paths.ca_dir)
    assert healed.not_after > datetime.now(UTC) + timedelta(days=300)
    assert CertificateAuthority.load(paths.ca_dir).certificate == ca.certificate  # the CA is kept
    # a host the leaf does not cover also gets a new leaf
    wider = certs.issue_sandbox_certificates(paths.directory, hosts=["127.0.0.1", "localhost", "model.local"],
                                             ca_dir=paths.ca_dir)
    assert "model.local" in certs.certificate_hosts(certs.read_certificate(wider.cert_path))


@pytest.mark.parametrize("name", ["", "ca", "..", "a/b"])
def test_sandbox_paths_refuse_odd_replica_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(CertificateError):
        certs.sandbox_tls_paths(tmp_path, name)


def test_a_given_ca_signs_every_kind_but_untrusted(ca: CertificateAuthority) -> None:
    for kind in certs.KINDS:
        cert, _, issuer = certs.issue_certificate(kind, ["127.0.0.1"], ca, now=NOW)
        assert ca.signed(cert) is (kind != "untrusted"), kind
        assert issuer.signed(cert)
    _, _, one = certs.issue_certificate("untrusted", ["127.0.0.1"], ca, now=NOW)
    _, _, other = certs.issue_certificate("untrusted", ["127.0.0.1"], ca, now=NOW)
    assert one.certificate != other.certificate  # a throw-away CA per certificate


def test_an_expired_leaf_was_valid_for_one_hour_ending_days_ago(ca: CertificateAuthority) -> None:
    cert, _, _ = certs.issue_certificate("expired", ["127.0.0.1"], ca, days=30, now=NOW)
    assert cert.not_valid_after_utc == NOW - timedelta(days=30)
    assert cert.not_valid_before_utc == NOW - timedelta(days=30) - certs.EXPIRED_WINDOW == \
        cert.not_valid_after_utc - timedelta(hours=1)
