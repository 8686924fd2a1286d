"""Where a sandbox replica serves TLS: its pid, TLS port and certificate files (from the sandbox state).

The one module of drivers.tls that reaches the sandbox (``mlchaos.sandbox``, through
:mod:`drivers.process.sandbox`): the replica's record, whether its process still serves,
and its reload signal.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers._common.errors import translated
from drivers.process.sandbox import is_alive, replicas, signal_model_server
from mlchaos.driver_kit import DriverError, TargetNotFound, certificates, state_dir

__all__ = ["ReplicaTLS", "is_alive", "replica_tls", "signal_model_server"]


@dataclass(frozen=True)
class ReplicaTLS:
    """One sandbox replica's TLS endpoint and files."""

    service: str
    name: str
    pid: int
    host: str
    tls_port: int
    paths: certificates.SandboxTLSPaths
    siblings: tuple[str, ...] = ()  # every replica of the service (the population a fault chose from)

    @property
    def address(self) -> str:
        """``host:tls_port``: the ``instance`` label of the replica's TLS probes."""
        return f"{self.host}:{self.tls_port}"


def replica_tls(service: str | None, replica: str | None) -> ReplicaTLS:
    """Resolve a replica's TLS endpoint; DriverError when it is unknown or serves no TLS."""
    if not service or not replica:
        raise DriverError("service and replica go together (e.g. service: model, replica: model-0)")
    recorded = replicas(service)
    found = [r for r in recorded if r.name == replica]
    if not found:
        names = ", ".join(r.name for r in recorded)
        raise TargetNotFound(f"no replica {replica!r} in service {service!r} (replicas: {names})")
    rec = found[0]
    with translated():
        paths = certificates.sandbox_tls_paths(state_dir(), rec.name)
    tls_port = rec.tls_port or 0  # the port the replica printed on its TLS line (0: it serves no TLS)
    if not tls_port or not paths.cert_path.exists():
        raise DriverError(
            f"replica {rec.name} serves no TLS (no tls_port recorded, or no certificate at {paths.cert_path}):"
            " restart the sandbox (`mlchaos sandbox up`) so that its replicas serve HTTPS"
        )
    return ReplicaTLS(rec.service, rec.name, rec.pid, rec.host, tls_port, paths, tuple(r.name for r in recorded))
