"""The ``tc`` command lines the netem driver runs, built from validated values (never a shell string)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from mlchaos.driver_kit import DriverError

COMMAND_TIMEOUT = 10.0
PROBE_DEVICE = "lo"


@dataclass(frozen=True)
class NetemSpec:
    """What to add to a device's egress: delay with jitter and correlation, and packet loss."""

    delay_ms: float
    jitter_ms: float = 0.0
    correlation_percent: float = 0.0
    loss_percent: float = 0.0

    def __post_init__(self) -> None:
        if not self.delay_ms > 0:
            raise DriverError(f"delay_ms must be positive, got {self.delay_ms}")
        if not 0 <= self.jitter_ms <= self.delay_ms:
            raise DriverError(f"jitter_ms must be between 0 and delay_ms ({self.delay_ms}), got {self.jitter_ms}")
        for name in ("correlation_percent", "loss_percent"):
            value = getattr(self, name)
            if not 0 <= value <= 100:
                raise DriverError(f"{name} must be between 0 and 100, got {value}")

    def arguments(self) -> list[str]:
        """The netem part of the command: ``delay 300ms 30ms 25% loss 1%``."""
        args = ["delay", f"{self.delay_ms:g}ms"]
        if self.jitter_ms:
            args.append(f"{self.jitter_ms:g}ms")
            if self.correlation_percent:
                args.append(f"{self.correlation_percent:g}%")
        if self.loss_percent:
            args += ["loss", f"{self.loss_percent:g}%"]
        return args


def in_namespace(pid: int, command: list[str]) -> list[str]:
    """Run ``command`` in the network namespace of process ``pid``."""
    return ["nsenter", "-t", str(pid), "-n", *command]


def add_command(pid: int, device: str, spec: NetemSpec) -> list[str]:
    """``tc qdisc add dev DEVICE root netem ...`` inside the target's namespace."""
    return in_namespace(pid, ["tc", "qdisc", "add", "dev", device, "root", "netem", *spec.arguments()])


def delete_command(pid: int, device: str) -> list[str]:
    """``tc qdisc del dev DEVICE root`` inside the target's namespace (the rollback)."""
    return in_namespace(pid, ["tc", "qdisc", "del", "dev", device, "root"])


def show_command(pid: int, device: str) -> list[str]:
    """``tc qdisc show dev DEVICE`` inside the target's namespace."""
    return in_namespace(pid, ["tc", "qdisc", "show", "dev", device])


def run(command: list[str]) -> subprocess.CompletedProcess:
    """Run a command (no shell) with a timeout; DriverError when the program is missing."""
    if shutil.which(command[0]) is None:
        raise DriverError(f"{command[0]} is not installed (Debian: apt-get install iproute2 util-linux)")
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise DriverError(f"{' '.join(command)} did not finish within {COMMAND_TIMEOUT:g}s") from None


def netem_support() -> tuple[bool, str]:
    """Whether this kernel has netem, found by adding it in a throwaway network namespace.

    Nothing outside that namespace is touched: ``unshare --net`` gives the probe its own
    loopback device, which disappears with it.
    """
    if shutil.which("unshare") is None or shutil.which("tc") is None:
        return False, "cannot check for netem: unshare (util-linux) or tc (iproute2) is not installed"
    probe = ["unshare", "--net", "tc", "qdisc", "add", "dev", PROBE_DEVICE, "root", "netem", "delay", "1ms"]
    result = run(probe)
    if result.returncode == 0:
        return True, ""
    error = (result.stderr or result.stdout).strip()
    if "unknown" in error.lower():
        return False, ("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is not set; tc says: "
                       f"{error!r}): latency cannot be injected with tc netem here; "
                       "use drivers.proxy (the mlchaos fault proxy) instead")
    return False, f"cannot check for netem ({' '.join(probe)} failed: {error!r}); it needs root (CAP_NET_ADMIN)"
