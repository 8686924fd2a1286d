"""Pod selection of the Kubernetes driver, without a cluster: selectors, modes, seeds, what is never a target."""

from __future__ import annotations

import pytest

from drivers.kubernetes import selection
from mlchaos.errors import DriverError, TargetNotFound


def pod(name: str, labels: dict[str, str] | None = None, phase: str = "Running", node: str = "node-1",
        namespace: str = "ml", terminating: bool = False) -> dict:
    meta = {"name": name, "namespace": namespace, "labels": labels or {"app": "model"}}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node}, "status": {"phase": phase}}


@pytest.mark.parametrize(("text", "rendered"), [
    ("app=model", "app=model"),
    ("app==model", "app=model"),
    ("app = model , tier!=canary", "app=model,tier!=canary"),
    ("app.kubernetes.io/name in (model-server, other)", "app.kubernetes.io/name in (model-server,other)"),
    ("app,!canary", "app,!canary"),
    ("env notin (prod),app=model", "env notin (prod),app=model"),
])
def test_label_selectors_parse_and_render_canonically(text, rendered):
    parsed = selection.parse_label_selector(text)
    assert parsed is not None and parsed.render() == rendered
    assert selection.parse_label_selector(rendered) == parsed


def test_label_selector_matching_follows_kubernetes_semantics():
    sel = selection.parse_label_selector("app=model,tier in (a,b),!canary,env notin (prod)")
    assert sel is not None
    assert sel.matches({"app": "model", "tier": "a"})
    assert sel.matches({"app": "model", "tier": "b", "env": "staging"})
    assert not sel.matches({"app": "model", "tier": "c"})
    assert not sel.matches({"app": "model", "tier": "a", "canary": ""})
    assert not sel.matches({"app": "model", "tier": "a", "env": "prod"})
    assert not sel.matches({"tier": "a"})
    assert selection.parse_label_selector("x!=1").matches({})  # a missing label is "not equal"


def test_a_mapping_selector_is_equality_existence_or_membership():
    sel = selection.parse_label_selector({"app": "model", "canary": None, "tier": ["a", "b"], "on": True})
    assert sel is not None and sel.render() == "app=model,canary,tier in (a,b),on=true"


@pytest.mark.parametrize("bad", ["", "   ", "app=model,,x", "app in ()", "app in (a", "a b", "-bad-=x",
                                 "app=" + "x" * 64, "x/y/z=1", {"app": {"nested": 1}}, 42])
def test_malformed_label_selectors_are_errors(bad):
    with pytest.raises(DriverError):
        selection.parse_label_selector(bad)


@pytest.mark.parametrize("labels", [None, "!canary", "env!=prod", "env notin (prod)"])
def test_an_empty_or_only_negative_selector_never_means_every_pod(labels):
    with pytest.raises(DriverError, match="every pod"):
        selection.parse_pod_selector("ml", labels)


def test_a_name_pattern_alone_is_a_selector_and_a_bad_one_is_an_error():
    assert selection.parse_pod_selector("ml", name_pattern="^model-").name_pattern == "^model-"
    with pytest.raises(DriverError, match="regular expression"):
        selection.parse_pod_selector("ml", name_pattern="model-(")


@pytest.mark.parametrize("namespace", ["", "ML", "a_b", None, "x" * 64])
def test_namespaces_are_validated(namespace):
    with pytest.raises(DriverError, match="namespace"):
        selection.parse_pod_selector(namespace, "app=model")


def test_field_selectors_only_know_the_fields_the_api_server_supports():
    fields = selection.parse_field_selector("spec.nodeName=node-2, status.phase!=Failed")
    assert fields is not None and fields.render() == "spec.nodeName=node-2,status.phase!=Failed"
    assert fields.matches(pod("a", node="node-2")) and not fields.matches(pod("a", node="node-1"))
    with pytest.raises(DriverError, match="cannot be selected by 'spec.containers'"):
        selection.parse_field_selector("spec.containers=x")
    with pytest.raises(DriverError):
        selection.parse_field_selector("nodeName")


def test_the_selector_is_checked_again_on_what_the_server_returns():
    """A server (or proxy) that ignores labelSelector still gets no pod of another app chosen."""
    sel = selection.parse_pod_selector("ml", "app=model", "spec.nodeName=node-1", "^model-")
    pods = [pod("model-0"), pod("model-1", {"app": "other"}), pod("model-2", node="node-2"), pod("db-0"),
            pod("model-3", namespace="other")]
    assert [p["metadata"]["name"] for p in selection.eligible(pods, sel)] == ["model-0"]


def test_skipped_terminating_and_not_running_pods_are_never_eligible(monkeypatch):
    monkeypatch.setenv("MLCHAOS_POD_NAME", "model-9")
    monkeypatch.setenv("MLCHAOS_POD_NAMESPACE", "ml")
    sel = selection.parse_pod_selector("ml", "app=model")
    pods = [pod("model-0"), pod("model-1", {"app": "model", "mlchaos.skip": "true"}),
            pod("model-2", terminating=True), pod("model-3", phase="Pending"), pod("model-4", phase="Succeeded"),
            pod("model-9")]
    assert [p["metadata"]["name"] for p in selection.eligible(pods, sel)] == ["model-0"]
    probes_view = selection.eligible(pods, sel, running_only=False)  # probes count every phase, still not skipped
    assert [p["metadata"]["name"] for p in probes_view] == ["model-0", "model-2", "model-3", "model-4"]


def test_modes_and_seeds_choose_reproducibly():
    sel = selection.parse_pod_selector("ml", "app=model")
    pool = selection.eligible([pod(f"model-{i:02d}") for i in range(20)], sel)
    one = selection.choose(pool, sel, selection.parse_mode(count=3), seed=7)
    assert [p["metadata"]["name"] for p in one] == \
        [p["metadata"]["name"] for p in selection.choose(pool, sel, selection.parse_mode(count=3), seed=7)]
    assert len(selection.choose(pool, sel, selection.parse_mode(percentage=10), seed=1)) == 2
    assert len(selection.choose(pool, sel, selection.parse_mode(all=True), seed=1)) == 20
    small = pool[:5]
    with pytest.raises(TargetNotFound, match="rounds down to 0"):
        selection.choose(small, sel, selection.parse_mode(percentage=10), seed=1)
    assert len(selection.choose(small, sel, selection.parse_mode(percentage=10, at_least_one=True), seed=1)) == 1
    with pytest.raises(DriverError, match="count=6 but only 5"):
        selection.choose(small, sel, selection.parse_mode(count=6), seed=1)
    with pytest.raises(TargetNotFound, match="no running pod"):
        selection.choose([], sel, selection.parse_mode(count=1), seed=1)


def test_a_selector_from_an_api_object_reads_match_labels_and_expressions():
    chooser = selection.selector_from_object({"matchLabels": {"app": "model"}, "matchExpressions": [
        {"key": "tier", "operator": "NotIn", "values": ["canary"]}, {"key": "zone", "operator": "Exists"}]})
    assert chooser.matches({"app": "model", "zone": "a"}) and not chooser.matches({"app": "model"})
    assert selection.selector_from_object({}).matches({"anything": "x"})  # an empty podSelector selects all
