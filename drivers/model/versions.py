"""Model version faults: roll out, pin an older version, unload the model, push a defective model; and the
rollbacks that serve the previous versions again (restore_model_version, restore_pushed_model).

Versions are read and changed through the Open Inference Protocol's model repository extension, as
MLServer and Triton serve it: ``POST /v2/repository/index`` (what each replica serves: its READY
entry), ``POST /v2/repository/models/{m}/load`` and ``.../unload``. A load's answer carries no
version (the spec gives it no body), so what a replica serves after one is read back from its index.
Pinning a named version sends ``{"parameters": {"version": V}}`` with the load: a parameter of the
reference server's (MLServer loads what its repository holds and ignores it), so the served version
is checked after the load and a server that did not follow is a DriverError.

Part of :mod:`drivers.model.actions` (experiments and change records name the functions there).
"""

from __future__ import annotations

from typing import Any

from drivers.model.endpoints import Endpoint, parse_scope, served_in
from drivers.model.faults import ROLLBACKS, Labels, admin_scope, announce_record, check_timeout
from drivers.model.sandbox import DEFECTS, VERSION_NAME
from mlchaos.driver_kit import DriverError, undo_function


def roll_out_model(
    version: str | None = None, service: str = "model", model: str = "iris", timeout: float = 5.0,
    target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, endpoint: str | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Load `version` (default: the server's current one) on every live replica, as a deploy would.

    A load that fails does not raise: `loaded` and `failed` (replica -> error) say what happened, as a
    deploy pipeline's log would. Undo: restore_model_version (the versions served before).
    """
    if version is not None and (not isinstance(version, str) or not version):
        raise DriverError(f"version must be a version string such as '2', or null for the current one, got {version!r}")
    check_timeout(timeout)
    scope = parse_scope(target, service, labels, name_pattern, project, urls, endpoint)
    chosen = [e for e in scope.named(None) if e.alive()]
    if not chosen:
        raise DriverError(f"no live replica to roll {model!r} out to")
    previous = {e.name: e.served_version(model, timeout) or "" for e in chosen}
    record = announce_record("roll_out_model", scope, chosen, [e.name for e in chosen],
                             {"service": service, "version": version, "model": model, "previous": previous},
                             _restore_undo(service, chosen, previous, model), dry_run)
    result = record.to_dict()
    if dry_run:
        return result
    loaded, failed = [], {}
    for e in chosen:
        try:
            _load(e, model, version, timeout)
            loaded.append(e.name)
        except DriverError as exc:
            failed[e.name] = str(exc)
    return {**result, "loaded": loaded, "failed": failed}


def pin_model_version(
    version: str = "1", service: str = "model", count: int = 1, seed: int | None = None, model: str = "iris",
    timeout: float = 5.0, target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None,
    project: str | None = None, urls: list[str] | None = None, endpoint: str | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Serve an older model `version` on `count` random replicas (repository load API): a stale model.

    The version each replica served before is recorded for the undo: restore_model_version.
    """
    if not isinstance(version, str) or not version:
        raise DriverError(f"version must be a non-empty string such as '1', got {version!r}")
    check_timeout(timeout)
    scope = parse_scope(target, service, labels, name_pattern, project, urls, endpoint)
    chosen, population, seed = scope.select(count, seed)
    previous: dict[str, str] = {}
    for e in chosen:
        index = e.repository_index(model, timeout)
        if version not in index:
            raise DriverError(f"{e.name}: model {model!r} has no version {version!r} (known: {', '.join(index)})")
        previous[e.name] = served_in(index) or ""
    record = announce_record("pin_model_version", scope, chosen, population,
                             {"service": service, "count": count, "seed": seed, "version": version, "model": model,
                              "previous": previous},
                             _restore_undo(service, chosen, previous, model), dry_run)
    if not dry_run:
        for e in chosen:
            _load(e, model, version, timeout)
            _check_served(e, model, version, timeout)
    return record.to_dict()


def unload_model(
    service: str = "model", count: int = 1, seed: int | None = None, model: str = "iris", timeout: float = 5.0,
    replicas: list[str] | None = None, target: str = "sandbox", labels: Labels = None,
    name_pattern: str | None = None, project: str | None = None, urls: list[str] | None = None,
    endpoint: str | None = None,
    *, dry_run: bool = False,
) -> dict[str, Any]:
    """Unload `model` on `count` random replicas (repository API: POST .../unload): not ready, every infer fails.

    Works on any server with the model repository extension (MLServer, Triton, the reference server).
    `replicas` names the replicas instead of a random pick. The version each replica served is recorded
    for the undo, restore_model_version, which loads it back (POST .../load).
    """
    check_timeout(timeout)
    scope = parse_scope(target, service, labels, name_pattern, project, urls, endpoint)
    chosen, population, seed = scope.choose(count, seed, replicas)
    previous: dict[str, str] = {}
    for e in chosen:
        served = e.served_version(model, timeout)
        if served is None:
            raise DriverError(f"{e.name}: model {model!r} has no READY version in its repository index: nothing"
                              " to unload")
        previous[e.name] = served
    record = announce_record("unload_model", scope, chosen, population,
                             {"service": service, "count": count, "seed": seed, "model": model,
                              "previous": previous},
                             _restore_undo(service, chosen, previous, model), dry_run)
    if not dry_run:
        for e in chosen:
            e.send("POST", f"/v2/repository/models/{model}/unload", None, timeout)
    return record.to_dict()


@undo_function
def restore_model_version(
    service: str = "model", replicas: list[str] | None = None, versions: dict[str, str] | None = None,
    model: str = "iris", timeout: float = 5.0, target: str = "sandbox", labels: Labels = None,
    name_pattern: str | None = None, project: str | None = None, urls: list[str] | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Roll back a pinned version: serve `versions[replica]` again, or the server's current one (idempotent)."""
    check_timeout(timeout)
    _check_versions(versions)
    scope = parse_scope(target, service, labels, name_pattern, project, urls, endpoint)
    restored, already, gone = [], [], []
    for e in scope.named(replicas):
        if not e.alive():
            gone.append(e.name)
            continue
        (restored if _restore(e, versions, model, timeout) else already).append(e.name)
    return {"service": service, "restored": restored, "already": already, "gone": gone}


def push_bad_model(
    defect: str = "label_flipped", version: str = "bad", service: str = "model", count: int = 1,
    seed: int | None = None, model: str = "iris", timeout: float = 5.0, replicas: list[str] | None = None,
    target: str = "sandbox", labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, endpoint: str | None = None, *, dry_run: bool = False,
) -> dict[str, Any]:
    """Push a defective model `version` (label_flipped or random_weights) to `count` random replicas and serve it.

    A bad artifact pushed and loaded: accuracy drops (ModelAccuracyLow), random_weights drifts too.
    `replicas` names the replicas instead of a random pick (a canary: `[model-2]`; count is then ignored).
    The version each replica served before is recorded for the undo: restore_pushed_model.
    """
    if defect not in DEFECTS:
        raise DriverError(f"defect must be one of {', '.join(DEFECTS)}, got {defect!r}")
    if not isinstance(version, str) or not VERSION_NAME.match(version):
        raise DriverError(f"version must be 1-64 letters, digits, '.', '_' or '-', got {version!r}")
    check_timeout(timeout)
    scope = admin_scope(parse_scope(target, service, labels, name_pattern, project, urls, endpoint), "push_bad_model")
    chosen, population, seed = scope.choose(count, seed, replicas)
    previous: dict[str, str] = {}
    for e in chosen:
        index = e.repository_index(model, timeout)
        served = served_in(index)
        if served is None:
            raise DriverError(f"{e.name}: model {model!r} serves no version")
        if version in index:
            held = {v["version"]: v["defect"] for v in e.call("GET", "/admin/versions", timeout=timeout)["versions"]}
            if held.get(version) != defect:
                what = f"pushed with defect {held[version]!r}" if version in held else "a release"
                raise DriverError(f"{e.name}: version {version!r} of {model!r} is {what}: pick another version name")
        if served == version:
            raise DriverError(f"{e.name}: already serves version {version!r}: nothing to roll back to")
        previous[e.name] = served
    record = announce_record("push_bad_model", scope, chosen, population,
                             {"service": service, "count": count, "seed": seed, "defect": defect, "version": version,
                              "model": model, "previous": previous},
                             ROLLBACKS.undo("restore_pushed_model", service=service, replicas=[e.name for e in chosen],
                                            versions=previous, model=model, remove_version=version), dry_run)
    if not dry_run:
        for e in chosen:
            e.call("POST", "/admin/versions", {"version": version, "defect": defect}, timeout)
            _load(e, model, version, timeout)
            _check_served(e, model, version, timeout)
    return record.to_dict()


@undo_function
def restore_pushed_model(
    service: str = "model", replicas: list[str] | None = None, versions: dict[str, str] | None = None,
    model: str = "iris", remove_version: str = "bad", timeout: float = 5.0, target: str = "sandbox",
    labels: Labels = None, name_pattern: str | None = None, project: str | None = None,
    urls: list[str] | None = None, endpoint: str | None = None,
) -> dict[str, Any]:
    """Roll back a bad push: serve the previous version again, then remove `remove_version` (idempotent).

    Serves `versions[replica]` (the server's current version when null) as restore_model_version
    does, then deletes the pushed version from each replica's repository.
    """
    check_timeout(timeout)
    _check_versions(versions)
    if not isinstance(remove_version, str) or not VERSION_NAME.match(remove_version):
        raise DriverError(f"remove_version must be a version name such as 'bad', got {remove_version!r}")
    if remove_version in (versions or {}).values():
        raise DriverError(f"remove_version {remove_version!r} is also a version to restore: {versions!r}")
    scope = admin_scope(parse_scope(target, service, labels, name_pattern, project, urls,
                                                endpoint), "restore_pushed_model")
    restored, removed, already, gone = [], [], [], []
    for e in scope.named(replicas):
        if not e.alive():
            gone.append(e.name)  # a restarted replica holds no pushed version (they live in memory)
            continue
        changed = False
        if _restore(e, versions, model, timeout):
            restored.append(e.name)
            changed = True
        if remove_version in e.repository_index(model, timeout):
            e.call("DELETE", f"/admin/versions/{remove_version}", timeout=timeout)
            removed.append(e.name)
            changed = True
        if not changed:
            already.append(e.name)
    return {"service": service, "restored": restored, "removed": removed, "already": already, "gone": gone}


def _restore_undo(service: str, chosen: list[Endpoint], previous: dict[str, str], model: str) -> dict[str, Any]:
    """The undo of a version change: serve each replica's previous version again."""
    return ROLLBACKS.undo("restore_model_version", service=service, replicas=[e.name for e in chosen],
                          versions=previous, model=model)


def _restore(e: Endpoint, versions: dict[str, str] | None, model: str, timeout: float) -> bool:
    """Serve `versions[e]` (or the server's current version) on a live replica; False when it already did."""
    wanted = (versions or {}).get(e.name) or None  # None ("" recorded): the version a plain load serves
    before = e.served_version(model, timeout)
    if wanted is not None and before == wanted:
        return False
    _load(e, model, wanted, timeout)
    if wanted is not None:
        _check_served(e, model, wanted, timeout)
    return e.served_version(model, timeout) != before


def _load(e: Endpoint, model: str, version: str | None, timeout: float) -> None:
    """POST the repository load of `model` (with the reference server's version parameter when `version`)."""
    body = {"parameters": {"version": version}} if version is not None else None
    e.send("POST", f"/v2/repository/models/{model}/load", body, timeout)


def _check_served(e: Endpoint, model: str, version: str, timeout: float) -> None:
    """DriverError unless the replica's repository index says it serves `version` (after a load that named it)."""
    served = e.served_version(model, timeout)
    if served != version:
        raise DriverError(f"{e.name}: loaded {model!r} naming version {version!r}, but its repository index says it"
                          f" serves {served!r}: this server does not pin versions by a load parameter (the"
                          " reference server does; MLServer and Triton load what their repository holds)")


def _check_versions(versions: Any) -> None:
    if versions is not None and (not isinstance(versions, dict)
                                 or not all(isinstance(v, str) for v in versions.values())):
        raise DriverError(f"versions must map replica names to version strings, got {versions!r}")
