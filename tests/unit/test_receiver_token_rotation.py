"""The notification receiver's token in a Kubernetes Secret: each run takes a fresh one and rotates it at its end.

The Kubernetes API here is an EMULATOR, not a real API server (none can run on this machine): kmock's
in-memory Kubernetes API over real HTTP (tests/support/kubernetes_emulator.py), with the admission
policies of deploy/kubernetes/admission-policy.yaml evaluated by cel-python (tests/support/admission_policy.py)
and refusing what they deny. The Secret is the one deploy/kubernetes/notification-receiver.yaml ships;
drivers/kubernetes/receiver_token.py talks to it with the official kubernetes client. What the emulator
cannot show: a real API server's resourceVersion checks on a JSON patch's test (the emulator does not change
resourceVersion on a patch), its RBAC (checked here against the Role's rules, call by call) and the
Prometheus Operator's reload of Alertmanager (the time waited is what the runner computes, not observed).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from drivers.kubernetes import receiver_token
from mlchaos.errors import DriverError, InvalidInput
from mlchaos.experiment.settings import TokenSecret
from mlchaos.monitoring.secret_token import SecretToken
from tests.support.admission_policy import Policies, Request
from tests.support.kubernetes_emulator import SECRETS, EmulatedCluster
from tests.support.kubernetes_tour import DEPLOY, manifest

NS, NAME, RELOAD = "ml-serving", "mlchaos-receiver-token", 120.0
POLICIES = Policies()


@pytest.fixture
def cluster(tmp_path) -> Iterator[EmulatedCluster]:
    """The emulator with the admission policies enforced and the Secret as the manifest ships it (empty)."""
    with EmulatedCluster(tmp_path / "k8s", admission=POLICIES.admission()) as emulated:
        emulated.put(SECRETS, manifest("notification-receiver.yaml", "Secret", NAME))
        emulated.clear_calls()
        yield emulated


def _config(cluster: EmulatedCluster) -> dict[str, Any]:
    return {"kubeconfig": str(cluster.kubeconfig), "kube_context": cluster.context}


def _take(cluster: EmulatedCluster, claim: str, slept: list[float]) -> tuple[str, dict[str, Any]]:
    return receiver_token.take(NS, NAME, "token", RELOAD, claim, _config(cluster), slept.append)


def _stored(cluster: EmulatedCluster) -> tuple[str | None, dict[str, str]]:
    secret = cluster.get(SECRETS, NS, NAME) or {}
    raw = (secret.get("data") or {}).get("token")
    return (base64.b64decode(raw).decode() if raw else None), dict(secret["metadata"].get("annotations") or {})


def test_each_run_gets_a_token_no_earlier_run_had_and_leaves_the_next_one(cluster):
    slept: list[float] = []
    first, taken = _take(cluster, "run-a", slept)
    assert taken["rotated_now"] is True and taken["why"] == "no token"
    assert slept == [RELOAD]  # a token written now: Alertmanager must load it first
    stored, notes = _stored(cluster)
    assert stored == first and notes[receiver_token.TAKEN_BY] == "run-a"
    rotated = receiver_token.rotate(NS, NAME, "token", "run-a", _config(cluster))
    assert rotated["rotated"] is True and rotated["uid"] == taken["uid"]
    second, notes = _stored(cluster)
    assert second not in (None, first) and receiver_token.TAKEN_BY not in notes
    assert notes[receiver_token.ROTATED_AT] == rotated["rotated_at"]
    slept.clear()
    token, taken = _take(cluster, "run-b", slept)
    assert token == second and taken["rotated_now"] is False  # written by the run before, taken by none
    (waited,) = slept  # written a moment ago: the rest of the reload time
    assert 0 < waited <= RELOAD and taken["waited_seconds"] == round(waited, 3)
    for record in (taken, rotated):
        assert not {first, second} & set(json.dumps(record).split('"'))  # a record never holds a token


def test_a_token_an_earlier_run_took_and_did_not_rotate_is_never_reused(cluster):
    slept: list[float] = []
    killed, _ = _take(cluster, "run-killed", slept)  # killed before its end: no rotation
    token, taken = _take(cluster, "run-c", slept)
    assert token != killed and taken["rotated_now"] is True
    assert taken["why"] == "taken by an earlier run (run-killed) that did not rotate it"
    late = receiver_token.rotate(NS, NAME, "token", "run-killed", _config(cluster))  # it was only stopped, say
    assert late["rotated"] is False and "taken by run-c" in late["why"]
    assert _stored(cluster)[0] == token  # run-c's token stands


def test_a_token_set_by_hand_is_replaced(cluster):
    secret = cluster.get(SECRETS, NS, NAME)
    secret["data"] = {"token": base64.b64encode(b"a-token-someone-typed-in-by-hand").decode()}
    cluster.put(SECRETS, secret)
    token, taken = _take(cluster, "run-d", [])
    assert token != "a-token-someone-typed-in-by-hand" and taken["why"] == "not written by mlchaos"


def test_the_secret_must_exist_and_is_never_created(cluster):
    cluster.delete(SECRETS, NS, NAME)
    with pytest.raises(DriverError, match=r"secret ml-serving/mlchaos-receiver-token, which holds the notification "
                                          r"receiver's token, does not exist: apply deploy/kubernetes/notification-"
                                          r"receiver.yaml"):
        _take(cluster, "run-e", [])
    assert [c.verb for c in cluster.calls] == ["get"]


def test_the_runner_takes_then_rotates_and_a_plan_only_reads(cluster):
    """mlchaos.monitoring.secret_token, what the runner calls: the claim ties the rotation to what was taken."""
    spec = TokenSecret(NS, NAME, reload_seconds=1.5)
    planned = SecretToken(spec, _config(cluster), sleep=lambda s: None)
    throwaway = planned.take(dry_run=True)
    assert planned.record["checked"]["has_token"] is False and _stored(cluster)[0] is None
    assert planned.finish() is None and throwaway  # a plan writes nothing
    assert {c.verb for c in cluster.calls} == {"get"}
    run = SecretToken(spec, _config(cluster), sleep=lambda s: None)
    token = run.take()
    assert _stored(cluster) == (token, _stored(cluster)[1]) and run.record["taken"]["claim"] == run.claim
    assert run.finish() is None and run.record["rotated"]["rotated"] is True
    assert _stored(cluster)[0] != token
    cluster.delete(SECRETS, NS, NAME)
    with pytest.raises(InvalidInput, match=r"^notifications: token_kubernetes_secret: secret ml-serving/mlchaos-rec"):
        SecretToken(spec, _config(cluster)).take()


# -- RBAC and admission -------------------------------------------------------------------------------


def _role() -> list[dict[str, Any]]:
    documents = [d for d in yaml.safe_load_all((DEPLOY / "notification-receiver.yaml").read_text()) if d]
    (role,) = [d for d in documents if d["kind"] == "Role"]
    (binding,) = [d for d in documents if d["kind"] == "RoleBinding"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NS
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mlchaos", "namespace": "mlchaos"}]
    return role["rules"]


def test_the_role_grants_get_and_patch_of_that_one_secret_and_every_call_needs_it(cluster):
    assert _role() == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [NAME],
                        "verbs": ["get", "patch"]}]
    _take(cluster, "run-f", [])
    receiver_token.rotate(NS, NAME, "token", "run-f", _config(cluster))
    _take(cluster, "run-g", [])
    receiver_token.check(NS, NAME, "token", _config(cluster))
    calls = {(c.verb, c.group, c.resource, c.namespace, c.name) for c in cluster.calls}
    assert calls == {("get", "", "secrets", NS, NAME), ("patch", "", "secrets", NS, NAME)}
    assert {w.call.verb for w in cluster.writes} == {"patch"}  # admitted by the policies (enforced here)


def test_the_admission_policy_holds_the_patch_to_the_token_and_its_annotations(cluster):
    _take(cluster, "run-h", [])
    write = cluster.writes[-1]

    def denied(change: Any, name: str = NAME) -> list[str]:
        new, old = copy.deepcopy(write.new), copy.deepcopy(write.old)
        change(new)
        return POLICIES.denials(Request("UPDATE", "", "secrets", NS, name, new, old))

    assert denied(lambda s: None) == []
    assert "only the token key of Secret mlchaos-receiver-token" in " ".join(
        denied(lambda s: s["data"].update({"other": "eA=="})))
    assert "may not change a Secret's annotations" in " ".join(
        denied(lambda s: s["metadata"]["annotations"].update({"team": "x"})))
    assert "may not change a Secret's type" in " ".join(
        denied(lambda s: s["metadata"].update({"labels": {"app": "x"}})))
    assert "may only patch the Secrets" in " ".join(denied(lambda s: None, name="alertmanager-main"))
    assert "never create or delete one" in " ".join(
        POLICIES.denials(Request("CREATE", "", "secrets", NS, NAME, copy.deepcopy(write.new), None)))
