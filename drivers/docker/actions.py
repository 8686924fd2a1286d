"""Docker container faults and the rollbacks that undo exactly what they did.

Every fault validates its arguments, selects its targets (:mod:`drivers.docker.selection`),
announces a :class:`~mlchaos.changes.ChangeRecord` naming each container (id, image, pid,
state, published ports, ``instance``) *before* it acts, acts on all targets at once (a
thread pool) and returns ``record.to_dict()``. The undo names the rollback and the exact
container ids. Rollbacks are idempotent (a container already in the undone state is listed
under ``already``), continue past individual failures and raise one DriverError listing
every failure at the end.

Selection arguments shared by every fault: ``labels`` (``{"mlchaos.target": "model"}`` or
``["k=v"]``), ``name_pattern`` (regex), ``project`` (compose project), ``count`` /
``percentage`` (+ ``at_least_one``) / ``all``, ``seed``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal as signals
import subprocess
import time
from pathlib import Path
from typing import Any

from drivers.common import wait_for
from drivers.docker.client import docker_errors
from drivers.docker.targets import Selection, check_ids, concurrently, inspect, select, status
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.safety.changes import announce
from mlchaos.safety.watchdog import start_record_watchdog, stop_covered, stop_watchdog

MODULE = "drivers.docker.actions"
KILL_SIGNALS = frozenset({"SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT", "SIGABRT"})
RELOAD_SIGNALS = frozenset({"SIGHUP", "SIGUSR1", "SIGUSR2"})
COMMAND_TIMEOUT = 10.0
VIAS = ("engine", "process")
RESTORED_MARKER = "RESTORED"
GONE = "gone (the container no longer exists)"
HOLD_GRACE = 30.0  # the hold's watchdog releases the containers this long after the hold should have ended
Labels = dict[str, Any] | list[str] | None


def kill_containers(
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, signal: str = "SIGKILL", via: str = "engine", timeout: float = 10.0,
    *, dry_run: bool = False,
) -> dict[str, Any]:
    """Kill the selected containers with `signal` and wait (up to `timeout` s) until their process is gone.

    `via`: ``engine`` (``docker kill``: the engine counts it as a manual stop, so a restart
    policy does not bring the container back) or ``process`` (the signal goes to the
    container's main process from the host, like a crash: a restart policy restarts it).
    """
    sig = _signal(signal, KILL_SIGNALS)
    _positive("timeout", timeout)
    if via not in VIAS:
        raise DriverError(f"via must be one of {', '.join(VIAS)}, got {via!r}")
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    record = sel.record("kill", _undo("start_containers", ids=sel.ids), dry_run, signal=sig, via=via,
                        timeout=timeout)
    announce(record)
    if not dry_run:
        concurrently(sel.ids, lambda cid: _kill(sel, cid, sig, timeout, via), "kill")
    return record.to_dict()


def stop_containers(
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, timeout: int = 10, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Stop the selected containers (SIGTERM, then SIGKILL after `timeout` s); a restart policy leaves them down."""
    _positive("timeout", timeout)
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    record = sel.record("stop", _undo("start_containers", ids=sel.ids), dry_run, timeout=timeout)
    announce(record)
    if not dry_run:
        concurrently(sel.ids, lambda cid: _call(sel.api.stop, cid, f"stop {cid[:12]}", timeout=int(timeout)), "stop")
    return record.to_dict()


def pause_containers(
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, ttl: float | None = 600.0, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Freeze the selected running containers (cgroup freezer): they keep their sockets but answer nothing.

    With `ttl` (seconds) a detached watchdog unpauses them by itself, even if the runner died.
    Undo: unpause_containers.
    """
    _ttl(ttl)
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    record = sel.record("pause", _undo("unpause_containers", ids=sel.ids), dry_run, ttl=ttl)
    announce(record)
    if dry_run:
        return record.to_dict()
    try:
        concurrently(sel.ids, lambda cid: _call(sel.api.pause, cid, f"pause {cid[:12]}"), "pause")
    finally:  # some may be paused even when others failed: the watchdog covers them
        if ttl is not None:
            _start_watchdog(record, ttl, "unpause_containers", {"ids": sel.ids})
    return record.to_dict()


def restart_containers(
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, timeout: int = 10, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Restart the selected containers (stop with `timeout`, then start); nothing to undo."""
    _positive("timeout", timeout)
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    record = sel.record("restart", {}, dry_run, timeout=timeout)
    announce(record)
    if not dry_run:
        concurrently(sel.ids, lambda cid: _call(sel.api.restart, cid, f"restart {cid[:12]}", timeout=int(timeout)),
                     "restart")
    return record.to_dict()


def hold_down(
    seconds: float,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, signal: str = "SIGKILL", *, dry_run: bool = False,
) -> dict[str, Any]:
    """Kill the selected containers and keep them down for `seconds`, even with a restart policy, then restore.

    The restart policy is set to ``no``, then the main process is signalled like a crash,
    and after `seconds` the policy is put back and the container started; the wait runs
    inside the action; a detached watchdog releases them if the runner dies meanwhile.
    Undo: release_hold.
    """
    sig = _signal(signal, KILL_SIGNALS)
    _positive("seconds", seconds)
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    policies = {c["Id"]: (c.get("HostConfig") or {}).get("RestartPolicy") or {"Name": "no"} for c in sel.containers}
    record = sel.record("hold-down", _undo("release_hold", ids=sel.ids, restart_policies=policies), dry_run,
                        seconds=seconds, signal=sig)
    announce(record)
    if dry_run:
        return record.to_dict()
    started = time.monotonic()
    # if this process dies during the hold (runner SIGKILLed), a detached watchdog still releases it
    _start_watchdog(record, seconds + HOLD_GRACE, "release_hold", {"ids": sel.ids, "restart_policies": policies})

    def down(cid: str) -> None:
        _call(sel.api.update_container, cid, f"set the restart policy of {cid[:12]}", restart_policy={"Name": "no"})
        _kill(sel, cid, sig, 10.0, "process")

    try:
        concurrently(sel.ids, down, "hold down")
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    finally:
        release_hold(sel.ids, policies, watchdog_pid=record.undo["arguments"]["watchdog_pid"])
    return record.to_dict()


def block_port(
    port: int,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, protocol: str = "tcp", ttl: float | None = 600.0,
    source_labels: Labels = None,
    *, dry_run: bool = False,
) -> dict[str, Any]:
    """Drop packets to `port` inside the selected containers' network namespace (iptables, via nsenter).

    With `source_labels`, only packets from the containers carrying those labels are dropped
    (e.g. Prometheus' scrapes, while clients still get through: a telemetry outage).
    With `ttl` (seconds) a detached watchdog removes the rule by itself. Undo: unblock_port.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise DriverError(f"port must be an integer in 1..65535, got {port!r}")
    if protocol not in ("tcp", "udp"):
        raise DriverError(f"protocol must be tcp or udp, got {protocol!r}")
    _ttl(ttl)
    _require_programs("nsenter", "iptables")
    sources = _source_addresses(source_labels) if source_labels is not None else [None]
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    _refuse_host_network(sel)
    undo_args: dict[str, Any] = {"ids": sel.ids, "port": port, "protocol": protocol, "sources": sources}
    record = sel.record("block-port", _undo("unblock_port", **undo_args), dry_run, port=port, protocol=protocol,
                        ttl=ttl, sources=sources)
    announce(record)
    if dry_run:
        return record.to_dict()

    def block(pid: str) -> None:
        for source in sources:
            _run(_iptables(int(pid), "-I", port, protocol, source), f"block port {port} (pid {pid})")

    concurrently([str(c["State"]["Pid"]) for c in sel.containers], block, "block port")
    if ttl is not None:
        _start_watchdog(record, ttl, "unblock_port", undo_args)
    return record.to_dict()


def unblock_port(
    port: int, ids: list[str] | None = None, protocol: str = "tcp", watchdog_pid: int | None = None,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    sources: list[str | None] | None = None, source_labels: Labels = None,
) -> dict[str, Any]:
    """Roll back block_port: delete exactly that DROP rule in each container that still runs (idempotent).

    Give the exact ``ids`` of the change record, or a selector: every matching running container.
    """
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    if sources is None and source_labels is not None:  # a rollback by selector: the same sources again
        sources = _source_addresses(source_labels)
    api = _api()
    ids = _rollback_ids(api, ids, labels, name_pattern, project, ("running",))

    def unblock(cid: str) -> str:
        pid = _running_pid(api, cid)
        if pid is None:
            return "not running (its network namespace, and the rule, are gone)"
        removed = 0
        for source in sources or [None]:
            if subprocess.run(_iptables(pid, "-C", port, protocol, source), capture_output=True,
                              timeout=COMMAND_TIMEOUT, check=False).returncode != 0:
                continue
            _run(_iptables(pid, "-D", port, protocol, source), f"unblock port {port}")
            removed += 1
        return "removed" if removed else "no such rule"

    results = dict(zip(ids, concurrently(ids, unblock, "unblock port"), strict=True))
    _stop_watchdogs("unblock_port", ids, port=port, protocol=protocol, sources=sources or [None])
    return {"port": port, "protocol": protocol, "containers": results, "already": _already(results, "removed")}


def netem_latency(
    delay_ms: float,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, jitter_ms: float = 0.0, device: str = "eth0",
    ttl: float | None = 600.0, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Delay the egress of `device` in the selected containers' network namespace with tc netem (ms).

    Refuses, before changing anything, on a kernel without netem. With `ttl` a detached
    watchdog removes the qdisc by itself. Undo: remove_netem.
    """
    from drivers.netem.commands import NetemSpec, add_command, netem_support, run

    spec = NetemSpec(delay_ms, jitter_ms)
    _ttl(ttl)
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    _refuse_host_network(sel)
    available, reason = netem_support()
    if not available:
        raise DriverError(reason)
    undo_args: dict[str, Any] = {"ids": sel.ids, "device": device}
    record = sel.record("netem-latency", _undo("remove_netem", **undo_args), dry_run, delay_ms=delay_ms,
                        jitter_ms=jitter_ms, device=device, ttl=ttl)
    announce(record)
    if dry_run:
        return record.to_dict()

    def add(cid: str) -> None:
        pid = next(c["State"]["Pid"] for c in sel.containers if c["Id"] == cid)
        result = run(add_command(pid, device, spec))
        if result.returncode != 0:
            raise DriverError(f"tc netem failed: {result.stderr.strip()}")

    concurrently(sel.ids, add, "netem latency")
    if ttl is not None:
        _start_watchdog(record, ttl, "remove_netem", undo_args)
    return record.to_dict()


def remove_netem(
    ids: list[str] | None = None, device: str = "eth0", watchdog_pid: int | None = None,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
) -> dict[str, Any]:
    """Roll back netem_latency: delete the netem root qdisc of `device` in each container that still runs."""
    from drivers.netem.actions import remove_latency

    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    api = _api()
    ids = _rollback_ids(api, ids, labels, name_pattern, project, ("running",))

    def remove(cid: str) -> Any:
        pid = _running_pid(api, cid)
        return remove_latency(pid, device) if pid is not None else {"removed": False, "reason": "not running"}

    results = dict(zip(ids, concurrently(ids, remove, "remove netem"), strict=True))
    _stop_watchdogs("remove_netem", ids, device=device)
    return {"device": device, "containers": results, "already": [cid for cid, r in results.items() if not r["removed"]]}


def install_certificate(
    cert_path_in_container: str, key_path_in_container: str,
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    count: int | None = None, percentage: float | None = None, all: bool = False, at_least_one: bool = False,
    seed: int | None = None, kind: str = "expired", ca_dir: str | None = None, hosts: list[str] | None = None,
    days: int = 3, reload_signal: str = "SIGHUP", backup_dir: str | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Swap a bad certificate (expired, expiring_soon, wrong_hostname, untrusted, valid) into the containers.

    The current files are copied out first (kept under `backup_dir`, default: the state
    directory), then the new ones are copied in and `reload_signal` is sent. Every kind but
    ``untrusted`` is signed by the CA in `ca_dir`. Undo: restore_container_certificate.
    """
    from drivers.docker.archive import FileCopy, read_file, write_files
    from mlchaos.lib import certificates as certs

    if kind not in certs.KINDS:
        raise DriverError(f"kind must be one of {', '.join(certs.KINDS)}, got {kind!r}")
    sig = _signal(reload_signal, RELOAD_SIGNALS)
    for name, path in (("cert_path_in_container", cert_path_in_container),
                       ("key_path_in_container", key_path_in_container)):
        if not isinstance(path, str) or not path.startswith("/"):
            raise DriverError(f"{name} must be an absolute path in the container, got {path!r}")
    ca = None
    if kind != "untrusted":
        if ca_dir is None:
            raise DriverError(f"a {kind} certificate is signed by the CA the clients trust: pass ca_dir")
        ca = _certificate_call(lambda: certs.CertificateAuthority.load(ca_dir))
    sel = select(labels, name_pattern, project, count, percentage, all, at_least_one, seed)
    backup = Path(backup_dir) if backup_dir else _default_backup_dir()
    undo_args = {"ids": sel.ids, "cert_path_in_container": cert_path_in_container,
                  "key_path_in_container": key_path_in_container, "backup_dir": str(backup), "reload_signal": sig}
    issued = {c["Id"]: _certificate_call(lambda c=c: certs.issue_certificate(
        kind, hosts or ["localhost", "127.0.0.1", c["Name"].lstrip("/")], ca, days=days)) for c in sel.containers}
    record = sel.record("install-certificate", _undo("restore_container_certificate", **undo_args), dry_run,
                        kind=kind, days=days, reload_signal=sig, ca_dir=ca_dir, backup_dir=str(backup),
                        cert_path_in_container=cert_path_in_container, key_path_in_container=key_path_in_container,
                        certificate=certs.describe(next(iter(issued.values()))[0]))
    if dry_run:
        announce(record)
        return record.to_dict()

    def back_up(cid: str) -> None:  # before the announcement: its undo must find the backup
        folder = backup / cid[:12]
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert, key = (read_file(sel.api, cid, p) for p in (cert_path_in_container, key_path_in_container))
        (folder / "cert.pem").write_bytes(cert.data)
        (folder / "key.pem").touch(mode=0o600)
        (folder / "key.pem").write_bytes(key.data)
        (folder / "manifest.json").write_text(json.dumps({"id": cid, "cert": cert.meta(), "key": key.meta()}) + "\n")

    concurrently(sel.ids, back_up, "back up the certificate")
    announce(record)

    def swap(cid: str) -> None:
        cert, key, _ = issued[cid]
        meta = json.loads((backup / cid[:12] / "manifest.json").read_text())
        write_files(sel.api, cid, [
            FileCopy(key_path_in_container, certs.key_pem(key), meta["key"]["mode"], meta["key"]["uid"],
                     meta["key"]["gid"]),
            FileCopy(cert_path_in_container, certs.cert_pem(cert), meta["cert"]["mode"], meta["cert"]["uid"],
                     meta["cert"]["gid"])])
        _call(sel.api.kill, cid, f"send {sig} to {cid[:12]}", signal=sig)

    concurrently(sel.ids, swap, "install the certificate")
    return record.to_dict()


def restore_container_certificate(
    ids: list[str] | None = None, cert_path_in_container: str | None = None,
    key_path_in_container: str | None = None, backup_dir: str | None = None, reload_signal: str = "SIGHUP",
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
) -> dict[str, Any]:
    """Roll back install_certificate: copy the backed-up files back into each container and signal it (idempotent).

    Give the change record's ``ids`` and ``backup_dir``, or a selector: each matching container
    with a backup not yet restored gets its oldest one back (the state before the first swap).
    The paths in the container are those recorded in the backup.
    """
    from drivers.docker.archive import FileCopy, write_files

    sig = _signal(reload_signal, RELOAD_SIGNALS)
    api = _api()
    if ids is None:
        ids = [cid for cid in _rollback_ids(api, None, labels, name_pattern, project, None)
               if _pending_backup(cid, backup_dir) is not None]
    else:
        ids = _rollback_ids(api, ids, labels, name_pattern, project, None)

    def restore(cid: str) -> str:
        folder = Path(backup_dir) / cid[:12] if backup_dir else _pending_backup(cid, None)
        if folder is None or not (folder / "manifest.json").is_file():
            raise DriverError(f"no backup of container {cid[:12]} in {folder or _backup_root()}")
        if (folder / RESTORED_MARKER).exists():  # a second undo must not overwrite (or signal) again
            return "already restored"
        meta = json.loads((folder / "manifest.json").read_text())
        state = status(api, cid)
        if state is None:  # its files went with it: no bad certificate is left to undo
            return GONE
        write_files(api, cid, [
            FileCopy(meta["key"]["path"], (folder / "key.pem").read_bytes(), meta["key"]["mode"],
                     meta["key"]["uid"], meta["key"]["gid"]),
            FileCopy(meta["cert"]["path"], (folder / "cert.pem").read_bytes(), meta["cert"]["mode"],
                     meta["cert"]["uid"], meta["cert"]["gid"])])
        (folder / RESTORED_MARKER).write_text("restored\n")
        if state != "running":
            return "restored (not running: not signalled)"
        _call(api.kill, cid, f"send {sig} to {cid[:12]}", signal=sig)
        return "restored and signalled"

    results = dict(zip(ids, concurrently(ids, restore, "restore"), strict=True))
    return {"backup_dir": backup_dir, "containers": results, "already": _already(results, "restored")}


def start_containers(
    ids: list[str] | None = None, labels: Labels = None, name_pattern: str | None = None,
    project: str | None = None, timeout: float = 30.0,
) -> dict[str, Any]:
    """Roll back kill/stop: start each container that is not running, wait until it runs (idempotent).

    Give the exact ``ids`` of the change record, or (in an experiment's rollbacks) a
    selector: every matching container that is exited or paused.
    """
    api = _api()
    ids = _rollback_ids(api, ids, labels, name_pattern, project, ("exited", "created", "paused"))

    def start(cid: str) -> str:
        state = status(api, cid)
        if state is None:
            raise TargetNotFound("the container no longer exists")
        if state == "paused":
            _call(api.unpause, cid, f"unpause {cid[:12]}")
            return "unpaused"
        if state == "running":
            return "already running"
        _call(api.start, cid, f"start {cid[:12]}")
        if not wait_for(lambda: status(api, cid) == "running", timeout):
            raise DriverError(f"not running {timeout:g} s after start")
        return "started"

    results = dict(zip(ids, concurrently(ids, start, "start"), strict=True))
    return {"containers": results, "already": _already(results, "started", "unpaused")}


def unpause_containers(
    ids: list[str] | None = None, labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back pause_containers: unpause each container that is still paused (idempotent).

    Give the exact ``ids`` of the change record, or a selector: every matching paused container.
    """
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    api = _api()
    ids = _rollback_ids(api, ids, labels, name_pattern, project, ("paused",))

    def unpause(cid: str) -> str:
        state = status(api, cid)
        if state is None:
            return GONE  # nothing left paused
        if state != "paused":
            return f"not paused ({state})"
        _call(api.unpause, cid, f"unpause {cid[:12]}")
        return "unpaused"

    results = dict(zip(ids, concurrently(ids, unpause, "unpause"), strict=True))
    _stop_watchdogs("unpause_containers", ids)
    return {"containers": results, "already": _already(results, "unpaused")}


def release_hold(
    ids: list[str], restart_policies: dict[str, Any], timeout: float = 30.0, watchdog_pid: int | None = None,
) -> dict[str, Any]:
    """Roll back hold_down: restore each container's restart policy and start it (idempotent)."""
    ids = check_ids(ids)
    if watchdog_pid is not None:
        stop_watchdog(watchdog_pid)
    api = _api()

    def release(cid: str) -> str:
        policy = dict(restart_policies.get(cid) or {"Name": "no"})
        if not policy.get("Name"):
            policy["Name"] = "no"
        _call(api.update_container, cid, f"restore the restart policy of {cid[:12]}", restart_policy=policy)
        return start_containers([cid], timeout=timeout)["containers"][cid]

    results = dict(zip(ids, concurrently(ids, release, "release hold"), strict=True))
    _stop_watchdogs("release_hold", ids)
    return {"containers": results, "already": _already(results, "started", "unpaused")}


# -- helpers ----------------------------------------------------------------------------------


def _api() -> Any:
    from drivers.docker.client import client

    return client().api


def _call(method: Any, cid: str, what: str, **kwargs: Any) -> Any:
    with docker_errors(what):
        return method(cid, **kwargs)


def _kill(sel: Selection, cid: str, sig: str, timeout: float, via: str) -> None:
    """Signal the container and wait until its process is gone (a restart policy may start a new one)."""
    old_pid = next(c["State"]["Pid"] for c in sel.containers if c["Id"] == cid)
    if via == "engine":
        _call(sel.api.kill, cid, f"send {sig} to {cid[:12]}", signal=sig)
    else:
        try:
            os.kill(old_pid, signals.Signals[sig])
        except ProcessLookupError:
            pass  # already gone
        except PermissionError:
            raise DriverError(f"no permission to signal pid {old_pid} of {cid[:12]} (needs root)") from None

    def gone() -> bool:
        state = inspect(sel.api, cid)["State"]
        return not state.get("Running") or state.get("Pid") != old_pid

    if not wait_for(gone, timeout):
        raise DriverError(f"still running {timeout:g} s after {sig} (does its main process ignore it?)")


def _running_pid(api: Any, cid: str) -> int | None:
    try:
        state = inspect(api, cid)["State"]
    except TargetNotFound:
        return None
    return state["Pid"] if state.get("Running") and state.get("Pid") else None


def _iptables(pid: int, op: str, port: int, protocol: str, source: str | None = None) -> list[str]:
    rule = ["INPUT", "-p", protocol, "--dport", str(port), *(["-s", source] if source else []), "-j", "DROP"]
    return ["nsenter", "-t", str(pid), "-n", "iptables", "-w", "5", op, *rule]


def _source_addresses(source_labels: Labels) -> list[str | None]:
    """The IP addresses of the running containers with ``source_labels`` (TargetNotFound when none)."""
    from drivers.docker.selection import parse_selector

    selector = parse_selector(source_labels)
    api = _api()
    with docker_errors("list the source containers"):
        found = api.containers(filters={"label": selector.label_filters(), "status": "running"})
    addresses: list[str | None] = []
    for summary in found:
        for network in (summary.get("NetworkSettings") or {}).get("Networks", {}).values():
            if network.get("IPAddress"):
                addresses.append(network["IPAddress"])
    if not addresses:
        raise TargetNotFound(f"no running container with an IP address matches source_labels {source_labels!r}")
    return sorted(set(addresses))


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise DriverError(f"{what}: {' '.join(argv)} did not finish within {COMMAND_TIMEOUT:g} s") from None
    if result.returncode != 0:
        raise DriverError(f"{what}: {' '.join(argv)} failed: {(result.stderr or result.stdout).strip()}")


def _require_programs(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise DriverError(f"{', '.join(missing)} not installed on this host (Debian: apt-get install iptables "
                          "util-linux); the rule is added from the host inside the container's namespace")
    if os.geteuid() != 0:
        raise DriverError("entering a container's network namespace needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")


def _refuse_host_network(sel: Selection) -> None:
    shared = [c["Name"].lstrip("/") for c in sel.containers if (c.get("HostConfig") or {}).get("NetworkMode") == "host"]
    if shared:
        raise DriverError(f"{', '.join(shared)} use the host's network: the fault would hit the whole host; "
                          "nothing changed")


def _start_watchdog(record: Any, ttl: float, func: str, arguments: dict[str, Any]) -> None:
    start_record_watchdog(record, ttl, f"{MODULE}.{func}", arguments)


def _stop_watchdogs(func: str, ids: list[str], **same: Any) -> None:
    """Stop the TTL watchdogs of ``func`` whose every container is in ``ids`` and whose ``same`` arguments match
    (a rollback by selector, or one replayed from the journal, is not told their pids)."""
    handled = set(ids)

    def covered(arguments: dict[str, Any]) -> bool:
        theirs = arguments.get("ids")
        return (isinstance(theirs, list) and bool(theirs) and set(theirs) <= handled
                and all(arguments.get(key) == value for key, value in same.items()))

    stop_covered(f"{MODULE}.{func}", covered)


def _already(results: dict[str, str], *changed: str) -> list[str]:
    """The containers whose rollback found nothing to do (their result is not one of ``changed``)."""
    return [cid for cid, result in results.items() if not result.startswith(changed)]


def _undo(func: str, **arguments: Any) -> dict[str, Any]:
    return {"func": f"{MODULE}.{func}", "arguments": arguments}


def _signal(name: str, allowed: frozenset[str]) -> str:
    sig = str(name).upper()
    sig = sig if sig.startswith("SIG") else f"SIG{sig}"
    if sig not in allowed or not hasattr(signals, sig):
        raise DriverError(f"signal must be one of {sorted(allowed)}, got {name!r}")
    return sig


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise DriverError(f"{name} must be a positive number of seconds, got {value!r}")


def _ttl(ttl: float | None) -> None:
    if ttl is not None:
        _positive("ttl", ttl)


def _backup_root() -> Path:
    from mlchaos.sandbox.manager import state_dir

    return state_dir() / "docker-certificate-backups"


def _default_backup_dir() -> Path:
    return _backup_root() / f"{time.time_ns():020d}-{os.getpid()}"


def _pending_backup(cid: str, backup_dir: str | None) -> Path | None:
    """The oldest backup of the container not restored yet (in ``backup_dir``, or under the default root)."""
    if backup_dir:
        folder = Path(backup_dir) / cid[:12]
        return folder if (folder / "manifest.json").is_file() else None
    root = _backup_root()
    runs = sorted(root.iterdir()) if root.is_dir() else []
    pending = [r / cid[:12] for r in runs
               if (r / cid[:12] / "manifest.json").is_file() and not (r / cid[:12] / RESTORED_MARKER).exists()]
    return pending[0] if pending else None


def _rollback_ids(api: Any, ids: list[str] | None, labels: Labels, name_pattern: str | None, project: str | None,
                  states: tuple[str, ...] | None) -> list[str]:
    """The exact ``ids`` of a change record, or the matching containers in ``states`` (one of the two)."""
    from drivers.docker.selection import eligible, own_container_ids, parse_selector
    from drivers.docker.targets import list_candidates

    if ids is not None:
        if labels is not None or name_pattern is not None or project is not None:
            raise DriverError("give either ids or a selector (labels, name_pattern, project), not both")
        return check_ids(ids)
    selector = parse_selector(labels, name_pattern, project)
    found = eligible(list_candidates(api, selector), selector, None, own_container_ids())
    if not found:
        raise TargetNotFound(f"no container matches {selector.describe()}")
    return [c.id for c in found if states is None or c.state in states]


def _certificate_call(make: Any) -> Any:
    from mlchaos.lib.certificates import CertificateError

    try:
        return make()
    except CertificateError as exc:
        raise DriverError(str(exc)) from exc
