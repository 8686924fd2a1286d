"""Where a sandbox replica serves TLS: its pid, TLS port and certificate files (from the sandbox state)."""

from __future__ import annotations

from dataclasses import dataclass

from mlchaos.errors import DriverError, SandboxError, TargetNotFound
from mlchaos.lib.certificates import CertificateError, SandboxTLSPaths, sandbox_tls_paths


@dataclass(frozen=True)
class ReplicaTLS:
    """One sandbox replica's TLS endpoint and files."""

    service: str
    name: str
    pid: int
    host: str
    tls_port: int
    paths: SandboxTLSPaths
    siblings: tuple[str, ...] = ()  # every replica of the service (the population a fault chose from)

    @property
    def address(self) -> str:
        """``host:tls_port``: the ``instance`` label of the replica's TLS probes."""
        return f"{self.host}:{self.tls_port}"


def replica_tls(service: str | None, replica: str | None) -> ReplicaTLS:
    """Resolve a replica's TLS endpoint; DriverError when it is unknown or serves no TLS."""
    from mlchaos.sandbox.manager import Sandbox

    if not service or not replica:
        raise DriverError("service and replica go together (e.g. service: model, replica: model-0)")
    sandbox = Sandbox()
    try:
        recorded = sandbox.replicas(service)
    except SandboxError as exc:  # TargetNotFound (a DriverError) passes through
        raise DriverError(str(exc)) from exc
    found = [r for r in recorded if r.name == replica]
    if not found:
        names = ", ".join(r.name for r in recorded)
        raise TargetNotFound(f"no replica {replica!r} in service {service!r} (replicas: {names})")
    rec = found[0]
    try:
        paths = sandbox_tls_paths(sandbox.state_dir, rec.name)
    except CertificateError as exc:
        raise DriverError(str(exc)) from exc
    tls_port = int(getattr(rec, "tls_port", 0) or 0)  # TODO(lead): Replica.tls_port, set from the TLS line
    if not tls_port or not paths.cert_path.exists():
        raise DriverError(
            f"replica {rec.name} serves no TLS (no tls_port recorded, or no certificate at {paths.cert_path}):"
            " not wired yet: the sandbox must start replicas with --tls-port/--tls-cert/--tls-key"
        )
    return ReplicaTLS(rec.service, rec.name, rec.pid, rec.host, tls_port, paths, tuple(r.name for r in recorded))
