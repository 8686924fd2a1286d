"""Kubernetes faults and rollbacks against kmock's API emulator over real HTTP, with the official client.

The emulator (tests/support/kubernetes_emulator.py: no API server runs on this machine) stores
objects and serves the API, and refuses every write the admission policy of
deploy/kubernetes/admission-policy.yaml denies the runner (evaluated with celpy); it runs no
controller. Where a test needs one (a deleted pod recreated by its ReplicaSet, a scale-down
removing pods, readiness, events), it says so and runs the emulated controller thread
(``cluster.controller()``). Each test works in a namespace of its own.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import itertools
import json
import time

import pytest

from drivers.kubernetes import actions, client, deletion, probes, secret_backups, targets
from mlchaos.errors import DriverError, TargetNotFound
from mlchaos.lib import certificates as certs
from mlchaos.safety.changes import ChangeRecord, reset_sink, set_sink
from tests.support.admission_policy import Policies
from tests.support.kubernetes_emulator import DEPLOYMENTS, NETWORKPOLICIES, PODS, SECRETS, SERVICES, EmulatedCluster

APP = {"app.kubernetes.io/name": "model-server"}
SELECTOR = "app.kubernetes.io/name=model-server"
_numbers = itertools.count()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The emulator, refusing what deploy/kubernetes/admission-policy.yaml denies the runner (evaluated by celpy)."""
    with EmulatedCluster(tmp_path_factory.mktemp("k8s"), admission=Policies().admission()) as found:
        yield found


@pytest.fixture
def ns(cluster) -> str:
    return f"t{next(_numbers)}"


@pytest.fixture
def conn(cluster) -> dict:
    return cluster.connection()


@pytest.fixture
def announced():
    """The change records announced during the test, in order (what the runner journals)."""
    found: list[ChangeRecord] = []
    token = set_sink(found.append)
    yield found
    reset_sink(token)


def names(cluster: EmulatedCluster, ns: str) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.list(PODS, ns)}


# -- delete_pods ------------------------------------------------------------------------------------


def test_delete_pods_announces_before_deleting_and_records_what_it_chose(cluster, ns, conn, announced):
    cluster.add_deployment(ns, "model-server", replicas=3, labels=APP)
    before = names(cluster, ns)
    cluster.clear_calls()
    record = actions.delete_pods(ns, SELECTOR, count=2, seed=11, grace_period=0, **conn)
    chosen = [t["name"] for t in record["targets"]]
    assert len(chosen) == 2 and names(cluster, ns) == before - set(chosen)
    assert record["environment"] == "kubernetes:staging-emulator"
    assert sorted(record["population"]) == sorted(before)
    assert record["parameters"]["seed"] == 11 and record["parameters"]["grace_period"] == 0
    assert record["undo"] == {} and set(record["deleted"].values()) == {"deleted"}
    target = record["targets"][0]["details"]
    assert target["namespace"] == ns and target["labels"]["app.kubernetes.io/name"] == "model-server"
    assert target["uid"] and target["node"] and target["pod_ip"] and target["instance"].endswith(":8000")
    assert target["owner"]["kind"] == "Deployment" and target["owner"]["name"] == "model-server"
    assert [r.action for r in announced] == ["delete-pods"]
    verbs = [(c.verb, c.resource) for c in cluster.calls]
    assert verbs[0] == ("list", "pods") and verbs.count(("delete", "pods")) == 2
    assert verbs.index(("get", "replicasets")) < verbs.index(("delete", "pods"))


def test_delete_options_carry_the_grace_period_and_the_uid_precondition(cluster, ns, conn):
    cluster.add_deployment(ns, "model-server", replicas=2, labels=APP)
    seen = {}
    original = cluster.emulator._handle

    async def spy(request):  # the request bodies as the API server receives them
        if request.method == "DELETE":
            seen[request.name] = request.data
        return await original(request)

    cluster.emulator._handle = spy
    try:
        record = actions.delete_pods(ns, SELECTOR, all=True, grace_period=5, **conn)
    finally:
        del cluster.emulator._handle
    for target in record["targets"]:
        assert seen[target["name"]] == {"gracePeriodSeconds": 5, "preconditions": {"uid": target["details"]["uid"]}}


def test_the_same_seed_replays_the_same_choice(cluster, ns, conn):
    cluster.pods_for(ns, APP, count=30, owner={"kind": "ReplicaSet", "name": "rs", "uid": "u"})
    first = actions.delete_pods(ns, SELECTOR, percentage=10, seed=42, dry_run=True, **conn)
    again = actions.delete_pods(ns, SELECTOR, percentage=10, seed=42, dry_run=True, **conn)
    assert [t["name"] for t in first["targets"]] == [t["name"] for t in again["targets"]]
    assert len(first["targets"]) == 3 and len(names(cluster, ns)) == 30  # a dry run deletes nothing


def test_dry_run_selects_and_announces_like_the_real_thing_and_changes_nothing(cluster, ns, conn, announced):
    cluster.add_deployment(ns, "model-server", replicas=3, labels=APP)
    before = names(cluster, ns)
    cluster.clear_calls()
    plan = actions.delete_pods(ns, SELECTOR, count=1, seed=3, keep_down=30, **conn, dry_run=True)
    assert plan["dry_run"] and names(cluster, ns) == before and announced[0].dry_run
    assert plan["undo"]["func"] == "drivers.kubernetes.actions.restore_scale"
    assert {c.verb for c in cluster.calls} <= {"get", "list"}
    assert cluster.get(DEPLOYMENTS, ns, "model-server")["spec"]["replicas"] == 3


def test_skipped_pods_are_never_targets_and_an_empty_match_is_an_error(cluster, ns, conn):
    cluster.add_pod(ns, "model-0", {**APP, "mlchaos.skip": "true"}, owner={"kind": "ReplicaSet", "name": "r"})
    cluster.add_pod(ns, "model-1", APP, phase="Pending", owner={"kind": "ReplicaSet", "name": "r"})
    with pytest.raises(TargetNotFound, match="no running pod matches"):
        actions.delete_pods(ns, SELECTOR, all=True, **conn)
    with pytest.raises(DriverError, match="every pod"):
        actions.delete_pods(ns, None, all=True, **conn)
    assert names(cluster, ns) == {"model-0", "model-1"}


def test_pods_of_another_app_are_not_chosen_even_when_the_server_ignores_the_selector(cluster, ns, conn):
    """kmock alone ignores labelSelector; the emulator adds it; the driver checks the labels again anyway."""
    cluster.add_pod(ns, "model-0", APP, owner={"kind": "ReplicaSet", "name": "r"})
    cluster.add_pod(ns, "db-0", {"app.kubernetes.io/name": "db"}, owner={"kind": "ReplicaSet", "name": "r"})
    list_ = cluster.emulator._serve_list

    async def ignore_selectors(request):
        from kmock import KubernetesEmulator

        return await KubernetesEmulator._serve_list(cluster.emulator, request)

    cluster.emulator._serve_list = ignore_selectors
    try:
        record = actions.delete_pods(ns, SELECTOR, all=True, dry_run=True, **conn)
    finally:
        cluster.emulator._serve_list = list_
    assert [t["name"] for t in record["targets"]] == ["model-0"] and record["population"] == ["model-0"]


def test_bare_pods_are_refused_unless_allowed(cluster, ns, conn):
    cluster.add_pod(ns, "lonely", APP)
    with pytest.raises(DriverError, match="nothing would bring them back"):
        actions.delete_pods(ns, SELECTOR, **conn)
    assert names(cluster, ns) == {"lonely"}
    assert actions.delete_pods(ns, SELECTOR, allow_unowned=True, **conn)["deleted"] == {"lonely": "deleted"}


def test_a_pod_replaced_under_the_same_name_is_not_deleted(cluster, ns, conn):
    """StatefulSet pods come back with the same name: the uid precondition protects the new one."""
    cluster.add_pod(ns, "db-0", APP, owner={"kind": "StatefulSet", "name": "db"})
    sel = targets.select(ns, SELECTOR, None, None, 1, None, False, False, 1, conn["kubeconfig"], conn["context"],
                         None, None)
    cluster.delete(PODS, ns, "db-0")
    cluster.add_pod(ns, "db-0", APP, owner={"kind": "StatefulSet", "name": "db"})  # a new uid
    result = deletion.delete_pod(sel.conn, sel.pods[0], 0)
    assert result.startswith("already replaced") and names(cluster, ns) == {"db-0"}
    cluster.delete(PODS, ns, "db-0")
    assert deletion.delete_pod(sel.conn, sel.pods[0], 0) == "already gone"


def test_deleted_pods_come_back_through_their_controller(cluster, ns, conn):
    """Needs the emulated controller: the ReplicaSet recreates what was deleted."""
    cluster.add_deployment(ns, "model-server", replicas=3, labels=APP)
    with cluster.controller():
        record = actions.delete_pods(ns, SELECTOR, all=True, grace_period=0, **conn)
        assert cluster.wait_until(lambda: probes.ready_pod_count(ns, SELECTOR, **conn) == 3)
    assert not names(cluster, ns) & {t["name"] for t in record["targets"]}


def test_keep_down_holds_exactly_the_killed_pods_down_then_restores(cluster, ns, conn):
    """Needs the emulated controller (scale-down honours pod-deletion-cost, as a ReplicaSet does)."""
    cluster.add_deployment(ns, "model-server", replicas=4, labels=APP)
    with cluster.controller():
        record = actions.delete_pods(ns, SELECTOR, count=2, seed=5, keep_down=60, **conn)
        killed = {t["name"] for t in record["targets"]}
        assert cluster.get(DEPLOYMENTS, ns, "model-server")["spec"]["replicas"] == 2
        time.sleep(0.3)
        assert probes.ready_pod_count(ns, SELECTOR, **conn) == 2 and not names(cluster, ns) & killed
        assert record["parameters"]["held"] == [{"kind": "Deployment", "name": "model-server", "replicas": 4,
                                                 "held_at": 2, "pods": sorted(killed)}]
        undone = actions.restore_scale(**record["undo"]["arguments"])
        assert undone["workloads"] == {"Deployment/model-server": "restored 4 replicas (was 2)"}
        assert cluster.wait_until(lambda: probes.ready_pod_count(ns, SELECTOR, **conn) == 4)
        again = actions.restore_scale(**record["undo"]["arguments"])
        assert again["already"] == ["Deployment/model-server"]
    annotations = cluster.get(DEPLOYMENTS, ns, "model-server")["metadata"].get("annotations") or {}
    assert actions.REPLICAS_BACKUP not in annotations


def test_keep_down_ends_by_itself_after_its_time(cluster, ns, conn):
    """The detached watchdog (a real process) scales the Deployment back after keep_down seconds."""
    cluster.add_deployment(ns, "model-server", replicas=3, labels=APP)
    record = actions.delete_pods(ns, SELECTOR, count=1, seed=2, keep_down=0.5, **conn)
    assert record["undo"]["arguments"]["watchdog_pid"] > 0
    assert cluster.get(DEPLOYMENTS, ns, "model-server")["spec"]["replicas"] == 2
    # a generous bound: the watchdog is a new Python process, slow to start on a loaded host
    assert cluster.wait_until(lambda: cluster.get(DEPLOYMENTS, ns, "model-server")["spec"]["replicas"] == 3, 90)


def test_keep_down_of_a_statefulset_takes_its_highest_ordinals_only(cluster, ns, conn):
    cluster.add_statefulset(ns, "db", replicas=3, labels={"app": "db"})
    with pytest.raises(DriverError, match="highest ordinals"):
        actions.delete_pods(ns, "app=db", name_pattern="-0$", keep_down=10, **conn)
    record = actions.delete_pods(ns, "app=db", name_pattern="-2$", keep_down=10, **conn)
    assert record["parameters"]["held"][0]["held_at"] == 2
    actions.restore_scale(**record["undo"]["arguments"])


# -- scale_workload ---------------------------------------------------------------------------------


def test_scale_and_restore_the_exact_previous_count(cluster, ns, conn, announced):
    cluster.add_deployment(ns, "model-server", replicas=3, labels=APP)
    cluster.add_deployment(ns, "other", replicas=1, labels={"app": "other"})
    record = actions.scale_workload("model-server", ns, 0, ttl=None, **conn)
    assert record["targets"][0]["kind"] == "deployment" and record["parameters"]["previous_replicas"] == 3
    assert sorted(record["population"]) == ["model-server", "other"]
    assert cluster.get(DEPLOYMENTS, ns, "model-server")["spec"]["replicas"] == 0
    with pytest.raises(DriverError, match="run restore_scale first"):
        actions.scale_workload("model-server", ns, 1, ttl=None, **conn)
    assert actions.restore_scale(**record["undo"]["arguments"])["workloads"] == \
        {"Deployment/model-server": "restored 3 replicas (was 0)"}
    assert cluster.get(DEPLOYMENTS, ns, "model-server")["spec"]["replicas"] == 3
    assert actions.restore_scale(**record["undo"]["arguments"])["already"] == ["Deployment/model-server"]


def test_an_experiments_static_rollback_finds_the_count_on_the_workload(cluster, ns, conn):
    cluster.add_deployment(ns, "model-server", replicas=5, labels=APP)
    actions.scale_workload("model-server", ns, 1, ttl=None, **conn)
    result = actions.restore_scale(ns, ["model-server"], **conn)
    assert result["workloads"] == {"Deployment/model-server": "restored 5 replicas (was 1)"}
    assert actions.restore_scale(ns, ["deployment/model-server"], **conn)["workloads"] == \
        {"Deployment/model-server": "already: no scale change of mlchaos recorded on it"}


def test_restore_scale_leaves_a_recreated_or_deleted_workload_alone(cluster, ns, conn):
    cluster.add_deployment(ns, "model-server", replicas=2, labels=APP)
    record = actions.scale_workload("model-server", ns, 0, ttl=None, **conn)
    cluster.delete(DEPLOYMENTS, ns, "model-server")
    assert actions.restore_scale(**record["undo"]["arguments"])["workloads"]["Deployment/model-server"].startswith(
        "gone")
    cluster.add_deployment(ns, "model-server", replicas=7, labels=APP)
    assert "left alone" in actions.restore_scale(**record["undo"]["arguments"])["workloads"]["Deployment/model-server"]
    assert cluster.get(DEPLOYMENTS, ns, "model-server")["spec"]["replicas"] == 7


def test_a_workload_labelled_skip_is_never_scaled(cluster, ns, conn):
    cluster.add_deployment(ns, "guarded", replicas=2, labels={"app": "guarded", "mlchaos.skip": "true"})
    with pytest.raises(DriverError, match="never a target"):
        actions.scale_workload("guarded", ns, 0, **conn)
    with pytest.raises(TargetNotFound):
        actions.scale_workload("missing", ns, 0, **conn)


def test_scale_has_a_ttl_watchdog_that_restores_by_itself(cluster, ns, conn):
    cluster.add_deployment(ns, "model-server", replicas=2, labels=APP)
    actions.scale_workload("model-server", ns, 0, ttl=0.5, **conn)
    assert cluster.wait_until(lambda: cluster.get(DEPLOYMENTS, ns, "model-server")["spec"]["replicas"] == 2, 15)


# -- swap_tls_certificate ---------------------------------------------------------------------------------


def tls_setup(cluster: EmulatedCluster, ns: str) -> tuple[certs.CertificateAuthority, dict]:
    """The serving certificate, signed by the CA clients trust, whose Secret lies in the namespace too (mlchaos must
    never read it); the backup Secret of rbac.yaml; a Deployment that mounts the certificate and one that does not."""
    ca = certs.CertificateAuthority.create("staging CA")
    cert, key, _ = certs.issue_certificate("valid", ["model-server.ml.svc", "model-server"], ca)
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    cluster.put(SECRETS, {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                          "metadata": {"name": "model-server-tls", "namespace": ns},
                          "data": {"tls.crt": b64(certs.cert_pem(cert)), "tls.key": b64(certs.key_pem(key)),
                                   "ca.crt": b64(certs.cert_pem(ca.certificate))}})
    cluster.put(SECRETS, {"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": "model-serving-ca", "namespace": ns},
                          "data": {"ca.crt": b64(certs.cert_pem(ca.certificate)),
                                   "ca.key": b64(certs.key_pem(ca.key))}})
    cluster.add_backup_secret(ns)
    volume = [{"name": "tls", "secret": {"secretName": "model-server-tls"}}]
    cluster.add_deployment(ns, "model-server", replicas=2, labels=APP, volumes=volume)
    cluster.add_deployment(ns, "other", replicas=1, labels={"app": "other"})
    return ca, cluster.get(SECRETS, ns, "model-server-tls")


def leaf(secret: dict) -> certs.x509.Certificate:
    return certs.x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))


def stored_backup(cluster: EmulatedCluster, ns: str) -> dict | None:
    """The backup of model-server-tls in Secret mlchaos-backups, decoded (None when there is none)."""
    raw = (cluster.get(SECRETS, ns, actions.BACKUP_SECRET).get("data") or {}).get("secret.model-server-tls")
    return None if raw is None else json.loads(base64.b64decode(raw))


def described(cluster: EmulatedCluster, ns: str, name: str) -> str:
    """What ``kubectl describe secret`` prints of a Secret: its metadata, and its data keys with their sizes only."""
    secret = cluster.get(SECRETS, ns, name)
    return json.dumps(secret["metadata"]) + json.dumps({k: len(v) for k, v in (secret.get("data") or {}).items()})


def test_swap_an_expired_certificate_from_a_throwaway_ca_then_restore_exactly(cluster, ns, conn, announced):
    ca, before = tls_setup(cluster, ns)
    cluster.clear_calls()
    record = actions.swap_tls_certificate("model-server-tls", ns, "expired", restart=["model-server"], ttl=None,
                                          **conn)
    swapped = cluster.get(SECRETS, ns, "model-server-tls")
    bad = leaf(swapped)
    assert bad.not_valid_after_utc.timestamp() < time.time()
    assert not ca.signed(bad) and record["parameters"]["issuer"] == "CN=mlchaos throw-away CA (trusted by nobody)"
    assert certs.certificate_hosts(bad) == ["model-server.ml.svc", "model-server"]  # the current names
    assert swapped["data"]["ca.crt"] == before["data"]["ca.crt"]
    assert {t["name"] for t in record["targets"]} == {p["metadata"]["name"] for p in cluster.list(PODS, ns)
                                                     if p["metadata"]["labels"].get("app.kubernetes.io/name")}
    assert len(record["population"]) == 3 and record["restarted"] == ["Deployment/model-server"]
    template = cluster.get(DEPLOYMENTS, ns, "model-server")["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in template
    # the CA Secret is never read: only the serving certificate and the backup Secret
    assert {c.name for c in cluster.calls if c.resource == "secrets"} == {"model-server-tls", actions.BACKUP_SECRET}
    # the previous key is in the backup Secret's data, which describe does not print; not in any annotation
    assert stored_backup(cluster, ns)["data"] == before["data"]
    for name in ("model-server-tls", actions.BACKUP_SECRET):
        text = described(cluster, ns, name)
        assert before["data"]["tls.key"] not in text and swapped["data"]["tls.key"] not in text
    assert actions.SECRET_BACKUP not in (swapped["metadata"].get("annotations") or {})
    assert "tls.key" not in json.dumps(record["undo"])  # the key stays in the cluster, not in the journal
    result = actions.restore_secret(**record["undo"]["arguments"])
    assert result["result"] == "restored" and result["restarted"] == ["Deployment/model-server"]
    after = cluster.get(SECRETS, ns, "model-server-tls")
    assert after["data"] == before["data"] and after["metadata"].get("annotations") in (None, {})
    assert stored_backup(cluster, ns) is None
    assert actions.restore_secret(**record["undo"]["arguments"])["already"] == ["model-server-tls"]


@pytest.mark.parametrize("kind", ["wrong_hostname", "untrusted", "valid"])
def test_other_bad_certificates_are_never_signed_by_the_ca_clients_trust(cluster, ns, conn, kind):
    ca, before = tls_setup(cluster, ns)
    actions.swap_tls_certificate("model-server-tls", ns, kind, ttl=None, **conn)
    bad = leaf(cluster.get(SECRETS, ns, "model-server-tls"))
    assert not ca.signed(bad)
    if kind == "wrong_hostname":
        assert certs.certificate_hosts(bad) == [certs.WRONG_HOSTNAME]
    assert actions.restore_secret(ns, "model-server-tls", **conn)["result"] == "restored"  # a static rollback
    assert cluster.get(SECRETS, ns, "model-server-tls")["data"] == before["data"]


def test_a_swap_is_refused_before_anything_changes(cluster, ns, conn):
    _, before = tls_setup(cluster, ns)
    with pytest.raises(TargetNotFound):
        actions.swap_tls_certificate("missing", ns, "untrusted", **conn)
    parameters = inspect.signature(actions.swap_tls_certificate).parameters
    assert "ca_secret" not in parameters and "ca_dir" not in parameters  # no way to hand it the trusted CA
    cluster.delete(SECRETS, ns, actions.BACKUP_SECRET)
    with pytest.raises(DriverError, match="mlchaos-backups, where mlchaos keeps .* does not exist"):
        actions.swap_tls_certificate("model-server-tls", ns, "expired", ttl=None, **conn)
    assert cluster.get(SECRETS, ns, "model-server-tls") == before


def test_a_second_swap_is_refused_while_the_backup_of_the_first_is_kept(cluster, ns, conn):
    _, before = tls_setup(cluster, ns)
    record = actions.swap_tls_certificate("model-server-tls", ns, "expired", ttl=None, **conn)
    swapped = cluster.get(SECRETS, ns, "model-server-tls")
    with pytest.raises(DriverError, match="run restore_secret first"):
        actions.swap_tls_certificate("model-server-tls", ns, "untrusted", ttl=None, **conn)
    assert cluster.get(SECRETS, ns, "model-server-tls") == swapped and stored_backup(cluster, ns)["data"] == \
        before["data"]
    actions.restore_secret(**record["undo"]["arguments"])
    assert cluster.get(SECRETS, ns, "model-server-tls")["data"] == before["data"]


def test_a_swap_whose_secret_patch_fails_leaves_no_backup_behind(cluster, ns, conn):
    _, before = tls_setup(cluster, ns)
    original = cluster.emulator._handle

    async def refuse_the_swap(request):  # the Secret changed by someone else between the read and the patch
        if request.method == "PATCH" and request.name == "model-server-tls":
            import kmock

            raise kmock.KubernetesError(status=422, reason="Invalid", message="the test operation failed")
        return await original(request)

    cluster.emulator._handle = refuse_the_swap
    try:
        with pytest.raises(DriverError, match="rejected the request"):
            actions.swap_tls_certificate("model-server-tls", ns, "expired", ttl=None, **conn)
    finally:
        del cluster.emulator._handle
    assert cluster.get(SECRETS, ns, "model-server-tls") == before and stored_backup(cluster, ns) is None
    assert actions.swap_tls_certificate("model-server-tls", ns, "expired", ttl=None, **conn)["dry_run"] is False


def test_a_runner_killed_between_the_backup_and_the_swap_is_recovered_from_its_record(cluster, ns, conn, announced):
    """The record is journaled before the backup is written, the backup before the Secret: recovery from the record
    finds the backup, writes the (unchanged) data back and drops it, so the next swap is not refused."""
    _, before = tls_setup(cluster, ns)
    actions.swap_tls_certificate("model-server-tls", ns, "expired", ttl=None, dry_run=True, **conn)
    (record,) = announced
    api = client.connect(**conn)
    store = secret_backups.read_store(api, ns)
    secret_backups.put(api, ns, store, "model-server-tls", {  # what swap_tls_certificate writes, then dies
        "secret": "model-server-tls", "uid": before["metadata"]["uid"], "data": before["data"],
        "sha256": record.undo["arguments"]["sha256"], "change": "killed", "restart": []})
    assert stored_backup(cluster, ns)["data"] == before["data"]
    assert actions.restore_secret(**record.undo["arguments"])["result"] == "restored"
    assert cluster.get(SECRETS, ns, "model-server-tls")["data"] == before["data"] and stored_backup(cluster, ns) is None


def test_a_damaged_backup_is_never_written_back(cluster, ns, conn):
    tls_setup(cluster, ns)
    record = actions.swap_tls_certificate("model-server-tls", ns, "untrusted", ttl=None, **conn)
    store = cluster.get(SECRETS, ns, actions.BACKUP_SECRET)
    backup = stored_backup(cluster, ns)
    backup["data"]["tls.crt"] = "dGFtcGVyZWQ="
    store["data"]["secret.model-server-tls"] = base64.b64encode(json.dumps(backup).encode()).decode()
    cluster.put(SECRETS, store)
    swapped = cluster.get(SECRETS, ns, "model-server-tls")
    with pytest.raises(DriverError, match="damaged"):
        actions.restore_secret(**record["undo"]["arguments"])
    assert cluster.get(SECRETS, ns, "model-server-tls")["data"] == swapped["data"]


def test_the_backup_of_a_secret_deleted_or_replaced_meanwhile_is_dropped_and_nothing_written(cluster, ns, conn):
    tls_setup(cluster, ns)
    record = actions.swap_tls_certificate("model-server-tls", ns, "expired", ttl=None, **conn)
    replaced = cluster.get(SECRETS, ns, "model-server-tls")
    cluster.delete(SECRETS, ns, "model-server-tls")
    replaced["metadata"]["uid"] = "another-uid"
    cluster.put(SECRETS, replaced)
    result = actions.restore_secret(ns, "model-server-tls", **conn)  # static: no uid given, the backup's own is used
    assert result["result"].startswith("replaced since") and stored_backup(cluster, ns) is None
    assert cluster.get(SECRETS, ns, "model-server-tls")["data"] == replaced["data"]
    actions.swap_tls_certificate("model-server-tls", ns, "expired", ttl=None, **conn)
    cluster.delete(SECRETS, ns, "model-server-tls")
    assert actions.restore_secret(ns, "model-server-tls", **conn)["result"] == actions.GONE
    assert stored_backup(cluster, ns) is None
    assert record["undo"]["arguments"]["uid"] != "another-uid"


def test_a_swap_made_by_an_older_mlchaos_is_undone_from_its_annotation(cluster, ns, conn):
    """Before issue 15 the backup was the Secret's own mlchaos.io/secret-backup annotation (the pre-move record of
    tests/fixtures/journals/premove/ names restore_secret with these arguments): it is restored and removed."""
    _, before = tls_setup(cluster, ns)
    old = before["data"]
    digest = hashlib.sha256(json.dumps(old, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    legacy = json.dumps({"data": old, "sha256": digest, "change": "27d2ba48", "restart": ["deployment/model-server"]},
                        sort_keys=True, separators=(",", ":"))
    bad = {**old, "tls.crt": base64.b64encode(b"not the certificate").decode()}
    cluster.put(SECRETS, {**before, "data": bad, "metadata": {**before["metadata"],
                                                              "annotations": {actions.SECRET_BACKUP: legacy}}})
    result = actions.restore_secret(ns, "model-server-tls", uid=before["metadata"]["uid"], sha256=digest,
                                    restart=["deployment/model-server"], in_cluster=False, **conn)
    assert result["result"] == "restored" and result["restarted"] == ["Deployment/model-server"]
    after = cluster.get(SECRETS, ns, "model-server-tls")
    assert after["data"] == old and actions.SECRET_BACKUP not in (after["metadata"].get("annotations") or {})
    assert actions.restore_secret(ns, "model-server-tls", **conn)["already"] == ["model-server-tls"]


def test_a_secret_mounted_by_a_pod_that_opted_out_is_refused(cluster, ns, conn):
    tls_setup(cluster, ns)
    cluster.add_pod(ns, "guarded", {"mlchaos.skip": "true"}, owner={"kind": "ReplicaSet", "name": "r"})
    pod = cluster.get(PODS, ns, "guarded")
    pod["spec"]["volumes"] = [{"name": "tls", "projected": {"sources": [{"secret": {"name": "model-server-tls"}}]}}]
    cluster.put(PODS, pod)
    with pytest.raises(DriverError, match="guarded, labelled mlchaos.skip=true"):
        actions.swap_tls_certificate("model-server-tls", ns, "untrusted", **conn)


# -- block_metrics_port ----------------------------------------------------------------------------------


def test_block_the_metrics_port_of_one_pod_and_delete_exactly_that_policy(cluster, ns, conn):
    cluster.add_deployment(ns, "model-server", replicas=3, labels=APP)
    cluster.put(NETWORKPOLICIES, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                  "metadata": {"name": "allow-prometheus", "namespace": ns},
                                  "spec": {"podSelector": {"matchLabels": APP}, "policyTypes": ["Ingress"]}})
    record = actions.block_metrics_port(8000, ns, SELECTOR, count=1, seed=4, scrapers={"app": "prometheus"},
                                        ttl=None, **conn)
    policy_name = record["parameters"]["policy"]
    change = record["parameters"]["change"]
    policy = cluster.get(NETWORKPOLICIES, ns, policy_name)
    assert policy["spec"]["podSelector"] == {"matchLabels": {actions.BLOCK_LABEL: change}}
    rules = policy["spec"]["ingress"]
    assert {"protocol": "TCP", "port": 1, "endPort": 7999} in rules[0]["ports"]
    assert {"protocol": "TCP", "port": 8001, "endPort": 65535} in rules[0]["ports"]
    assert rules[1]["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert rules[1]["from"][0]["podSelector"]["matchExpressions"] == [
        {"key": "app", "operator": "NotIn", "values": ["prometheus"]}]
    labelled = [p["metadata"]["name"] for p in cluster.list(PODS, ns)
                if p["metadata"]["labels"].get(actions.BLOCK_LABEL) == change]
    assert labelled == [record["targets"][0]["name"]]
    assert record["parameters"]["other_policies"] == ["allow-prometheus"]
    assert record["undo"]["arguments"]["policy_uid"] == policy["metadata"]["uid"]
    undone = actions.unblock_metrics_port(**record["undo"]["arguments"])
    assert undone["policies"] == {policy_name: "deleted"} and undone["unlabelled_pods"] == labelled
    assert cluster.get(NETWORKPOLICIES, ns, policy_name) is None
    assert cluster.get(NETWORKPOLICIES, ns, "allow-prometheus") is not None
    assert not any(actions.BLOCK_LABEL in p["metadata"]["labels"] for p in cluster.list(PODS, ns))
    assert actions.unblock_metrics_port(**record["undo"]["arguments"])["policies"] == {policy_name: "already deleted"}


def test_a_policy_recreated_under_that_name_by_someone_else_is_left_alone(cluster, ns, conn):
    cluster.add_deployment(ns, "model-server", replicas=1, labels=APP)
    record = actions.block_metrics_port(9090, ns, SELECTOR, ttl=None, **conn)
    name = record["parameters"]["policy"]
    cluster.delete(NETWORKPOLICIES, ns, name)
    cluster.put(NETWORKPOLICIES, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                  "metadata": {"name": name, "namespace": ns}, "spec": {"podSelector": {}}})
    undone = actions.unblock_metrics_port(**record["undo"]["arguments"])
    assert undone["policies"][name].startswith("not the one mlchaos created")
    assert cluster.get(NETWORKPOLICIES, ns, name) is not None


def test_a_static_rollback_removes_every_block_of_mlchaos_in_the_namespace(cluster, ns, conn):
    cluster.add_deployment(ns, "model-server", replicas=2, labels=APP)
    actions.block_metrics_port(8000, ns, SELECTOR, all=True, ttl=None, **conn)
    undone = actions.unblock_metrics_port(ns, **conn)
    assert list(undone["policies"].values()) == ["deleted"] and len(undone["unlabelled_pods"]) == 2
    assert cluster.list(NETWORKPOLICIES, ns) == []
    assert actions.unblock_metrics_port(ns, **conn)["already"] == ["(none)"]


# -- remove_scrape_annotation -----------------------------------------------------------------------------


def test_remove_and_restore_the_scrape_annotation(cluster, ns, conn):
    cluster.add_deployment(ns, "model-server", replicas=3, labels=APP, annotations={"prometheus.io/scrape": "true"})
    cluster.add_pod(ns, "unannotated", APP, owner={"kind": "ReplicaSet", "name": "r"})
    record = actions.remove_scrape_annotation(ns, SELECTOR, all=True, ttl=None, **conn)
    assert len(record["targets"]) == 3 and "unannotated" not in record["population"]
    for pod in cluster.list(PODS, ns):
        assert "prometheus.io/scrape" not in (pod["metadata"].get("annotations") or {})
    with pytest.raises(DriverError, match="eligible|no running pod"):
        actions.remove_scrape_annotation(ns, SELECTOR, all=True, ttl=None, **conn)
    restored = actions.restore_scrape_annotation(**record["undo"]["arguments"])
    assert set(restored["pods"].values()) == {"restored"}
    annotated = [p for p in cluster.list(PODS, ns) if p["metadata"]["name"] != "unannotated"]
    assert all(p["metadata"]["annotations"] == {"prometheus.io/scrape": "true"} for p in annotated)
    assert len(actions.restore_scrape_annotation(ns, **conn)["pods"]) == 0  # nothing left with a backup


# -- route_through_proxy ----------------------------------------------------------------------------------


def service_setup(cluster: EmulatedCluster, ns: str) -> dict:
    cluster.add_deployment(ns, "model-server", replicas=2, labels=APP)
    cluster.add_deployment(ns, "fault-proxy", replicas=1, labels={"app.kubernetes.io/name": "fault-proxy"},
                           port=18000)
    return cluster.put(SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "model-server", "namespace": ns, "labels": APP},
        "spec": {"type": "NodePort", "selector": dict(APP),
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080}]}})


def test_reroute_a_service_through_the_proxy_and_restore_it_exactly(cluster, ns, conn, announced):
    before = service_setup(cluster, ns)
    record = actions.route_through_proxy("model-server", ns, {"app.kubernetes.io/name": "fault-proxy"}, 18000,
                                         ttl=None, **conn)
    rerouted = cluster.get(SERVICES, ns, "model-server")
    assert rerouted["spec"]["selector"] == {"app.kubernetes.io/name": "fault-proxy"}
    assert rerouted["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 18000, "protocol": "TCP",
                                          "nodePort": 30080}]
    assert record["targets"][0]["kind"] == "service" and record["parameters"]["proxy_pods"]
    assert actions.restore_service(**record["undo"]["arguments"])["result"] == "restored"
    assert cluster.get(SERVICES, ns, "model-server") == {**before, "metadata": {**before["metadata"],
                                                                                 "annotations": {}}}
    again = actions.restore_service(**record["undo"]["arguments"])
    assert again["already"] == ["model-server"] and again["result"].startswith("already restored")


def test_rerouting_to_no_ready_proxy_pod_is_refused(cluster, ns, conn):
    before = service_setup(cluster, ns)
    with pytest.raises(DriverError, match="no ready fault-proxy pod"):
        actions.route_through_proxy("model-server", ns, {"app": "nothing"}, 18000, **conn)
    with pytest.raises(DriverError, match="needs proxy_url"):
        actions.route_through_proxy("model-server", ns, {"app": "x"}, 18000, latency_ms=100, **conn)
    assert cluster.get(SERVICES, ns, "model-server") == before


# -- probes ---------------------------------------------------------------------------------------


def test_probes_read_readiness_replicas_restarts_and_events(cluster, ns, conn):
    """Needs the emulated controller for status, readiness and events."""
    cluster.add_deployment(ns, "model-server", replicas=3, labels=APP)
    assert probes.pods_ready(ns, SELECTOR, **conn) and probes.ready_pod_count(ns, SELECTOR, **conn) == 3
    assert probes.ready_replicas("model-server", ns, **conn) == 3
    assert probes.deployment_available("model-server", ns, all_replicas=True, **conn)
    assert set(probes.restart_counts(ns, SELECTOR, **conn).values()) == {0} and probes.total_restarts(
        ns, SELECTOR, **conn) == 0
    cluster.ready_after = float("inf")  # the replacement stays unready until the test says so: no race with load
    try:
        with cluster.controller():
            record = actions.delete_pods(ns, SELECTOR, count=1, seed=1, **conn)
            killed = record["targets"][0]["name"]
            assert cluster.wait_until(lambda: probes.ready_pod_count(ns, SELECTOR, **conn) == 2
                                      and len(names(cluster, ns)) == 3)
            assert not probes.pods_ready(ns, SELECTOR, **conn)
            cluster.ready_after = 0.0
            assert cluster.wait_until(lambda: probes.pods_ready(ns, SELECTOR, **conn))
    finally:
        cluster.ready_after = 0.0
    events = probes.events_since_fault(ns, objects=[f"pod/{killed}", "replicaset/"
                                                    + record["targets"][0]["details"]["owner"]["replicaset"]],
                                       since_seconds=60, **conn)
    assert {(e["reason"], e["object"].split("/")[0]) for e in events} >= {("Killing", "Pod"),
                                                                          ("SuccessfulCreate", "ReplicaSet")}
    assert probes.event_count(ns, reasons=["Killing"], objects=[killed], since_seconds=60, **conn) == 1
    assert not probes.pods_ready(ns, "app=nothing", **conn) and probes.ready_pod_count(ns, "app=nothing", **conn) == 0
    with pytest.raises(DriverError, match="every pod"):
        probes.ready_pod_count(ns, None, **conn)
