"""Blast-radius accounting (mlchaos.blast_radius) and the settings that declare the bounds."""

from __future__ import annotations

import pytest

from mlchaos.experiment.loader import load_document
from mlchaos.experiment.settings import BlastRadius, Scope
from mlchaos.experiment.validation import validate
from mlchaos.safety.blast_radius import BoundExceeded, Ledger, scope_matches
from mlchaos.safety.changes import ChangeRecord, Target
from tests.support.bad_experiments import valid


def record(*names, kind="container", population=(), environment="docker:unix:///var/run/docker.sock",
           labels=None, service=None, project=None):
    details = {"labels": labels or {}, **({"service": service} if service else {}),
               **({"project": project} if project else {})}
    return ChangeRecord(driver="test", action="kill", targets=[Target(kind, n, details) for n in names],
                        environment=environment, population=list(population))


def ledger(allowed=(), host=(), **bounds):
    return Ledger(BlastRadius.from_dict(bounds), allowed, host)


def test_max_targets_counts_distinct_targets_across_the_whole_run():
    book = ledger(max_targets=2)
    book.admit(record("a"))
    book.admit(record("a"))  # the same target again does not widen the blast radius
    book.admit(record("b"))
    with pytest.raises(BoundExceeded, match=r"3 target\(s\) in this run, more than max_targets 2"):
        book.admit(record("c"))
    assert book.summary()["targets"] == 2  # the refused change counted nothing


def test_max_fraction_is_per_kind_over_the_eligible_population():
    book = ledger(max_fraction=0.34)
    book.admit(record("m0", population=["m0", "m1", "m2"]))
    with pytest.raises(BoundExceeded, match=r"2 of 3 container\(s\) \(67%\), more than max_fraction 0.34"):
        book.admit(record("m1", population=["m0", "m1", "m2"]))
    book.admit(record("p0", kind="process", population=["p0", "p1", "p2"]))  # another kind: its own fraction
    assert book.summary()["by_kind"]["process"]["fraction"] == pytest.approx(1 / 3, abs=1e-3)


def test_an_unknown_population_counts_as_everything():
    with pytest.raises(BoundExceeded, match="unknown population"):
        ledger(max_fraction=0.5).admit(record("x"))


def test_configuration_artefacts_are_not_workload_targets():
    book = ledger(max_targets=1)
    book.admit(ChangeRecord("tls", "swap", [Target("file", "/a/cert.pem"), Target("file", "/a/key.pem"),
                                             Target("process", "model-0", {"service": "model"})],
                            environment="local:h"))
    assert book.summary()["targets"] == 1


def test_client_traffic_is_a_load_not_a_fault_target():
    book = ledger(max_targets=1, max_fraction=0.34)
    book.admit(record("model-0", "model-1", "model-2", kind="traffic", population=["model-0", "model-1", "model-2"]))
    book.admit(record("model-1", kind="process", population=["model-0", "model-1", "model-2"]))
    assert book.summary()["targets"] == 1
    with pytest.raises(BoundExceeded, match="not allowed"):
        ledger(allowed=("local:*",)).admit(record("model-0", kind="traffic"))


@pytest.mark.parametrize(("scope", "target", "inside"), [
    ({"labels": {"mlchaos.target": "model"}}, Target("container", "c", {"labels": {"mlchaos.target": "model"}}), True),
    ({"labels": {"mlchaos.target": "model"}}, Target("container", "c", {"labels": {"mlchaos.target": "db"}}), False),
    ({"labels": {"tier": None}}, Target("container", "c", {"labels": {"tier": "x"}}), True),
    ({"project": "mlchaos"}, Target("container", "c", {"labels": {"com.docker.compose.project": "mlchaos"}}), True),
    ({"project": "mlchaos"}, Target("container", "c", {"labels": {"com.docker.compose.project": "prod"}}), False),
    ({"kind": "process", "service": "model"}, Target("process", "model-0", {"service": "model"}), True),
    ({"kind": "process", "service": "model"}, Target("container", "model-0", {"service": "model"}), False),
    ({"name_pattern": "^model-[0-9]$"}, Target("process", "model-1"), True),
    ({"name_pattern": "^model-[0-9]$"}, Target("process", "payments-1"), False),
    ({"environment": "docker:*"}, Target("container", "c"), True),
    ({"namespace": "staging"}, Target("pod", "p", {"namespace": "staging"}), True),
    ({"namespace": "staging"}, Target("pod", "p", {"namespace": "prod"}), False),
])
def test_scope_matching(scope, target, inside):
    assert scope_matches(Scope.from_dict(scope), target, "docker:unix:///var/run/docker.sock") is inside


def test_a_target_outside_every_scope_is_refused():
    book = ledger(scopes=[{"labels": {"mlchaos.target": "model"}}, {"kind": "process", "service": "model"}])
    book.admit(record("ok", labels={"mlchaos.target": "model"}))
    with pytest.raises(BoundExceeded, match="container 'payments' is outside every allowed scope"):
        book.admit(record("payments", labels={"app": "payments"}))


def test_environment_allow_lists_of_the_experiment_and_of_the_host_must_both_allow():
    staging = "kubernetes:staging"
    assert ledger(allowed=["kubernetes:staging*"]).admit(record("a", environment=staging)) is None
    with pytest.raises(BoundExceeded, match="'kubernetes:prod' is not allowed by the experiment's allowed_env"):
        ledger(allowed=["kubernetes:staging*"]).admit(record("a", environment="kubernetes:prod"))
    with pytest.raises(BoundExceeded, match="not allowed by MLCHAOS_ALLOWED_ENVIRONMENTS"):
        ledger(allowed=["kubernetes:*"], host=["local:*"]).admit(record("a", environment=staging))
    with pytest.raises(BoundExceeded, match="does not say which environment it acts on"):
        ledger(allowed=["local:*"]).admit(record("a", environment=""))


def test_the_host_allow_list_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLCHAOS_ALLOWED_ENVIRONMENTS", "local:*, docker:unix://*")
    book = Ledger(BlastRadius())
    assert book.host_allowed == ("local:*", "docker:unix://*") and book.active
    book.admit(record("a"))
    with pytest.raises(BoundExceeded):
        book.admit(record("b", environment="docker:tcp://prod:2376"))


def test_no_bounds_means_nothing_to_enforce():
    book = Ledger(BlastRadius(), (), ())
    assert not book.active
    book.admit(record(*[f"c{i}" for i in range(50)]))
    assert book.describe_bounds() == []


def _problems(write_experiment, settings):
    data = valid()
    data["extensions"] = [{"name": "mlchaos", **settings}]
    return [f"{p.pointer}: {p.message}" for p in validate(load_document(write_experiment(data)))]


@pytest.mark.parametrize(("settings", "expected"), [
    ({"blast_radius": {"max_targets": 0}}, "/max_targets: blast_radius: must be an integer >= 1, got 0"),
    ({"blast_radius": {"max_fraction": 1.5}}, "/max_fraction: blast_radius: must be a number in (0, 1]"),
    ({"blast_radius": {"max_duration": -1}}, "/max_duration: blast_radius: must be a positive number of seconds"),
    ({"blast_radius": {"scopes": []}}, "/scopes: blast_radius: must be a non-empty list of scopes"),
    ({"blast_radius": {"scopes": [{"namespaces": "x"}]}}, "/scopes/0/namespaces: blast_radius: unknown scope key"),
    ({"blast_radius": {"scopes": [{"name_pattern": "("}]}}, "/scopes/0/name_pattern: blast_radius: invalid regular"),
    ({"blast_radius": {"max_target": 1}}, "/max_target: blast_radius: unknown blast_radius key 'max_target'"),
    ({"allowed_environments": "local:*"}, "/allowed_environments: allowed_environments: must be a non-empty list"),
    ({"guards": [{"type": "probe", "name": "g", "provider": {"type": "python", "module": "testdrivers",
                                                             "func": "echo"}}]},
     "/guards/0: a steady-state probe needs a 'tolerance'"),
    ({"guard_interval": 0}, "/guard_interval: guard_interval: must be a positive number of seconds"),
])
def test_bad_safety_settings_are_reported_with_their_place(write_experiment, settings, expected):
    problems = _problems(write_experiment, settings)
    assert any(p.startswith("/extensions/0") and expected in p for p in problems), problems


def test_good_safety_settings_validate(write_experiment):
    settings = {
        "blast_radius": {"max_targets": 1, "max_fraction": 0.34, "max_duration": 60,
                         "scopes": [{"kind": "container", "labels": {"mlchaos.target": "model"}, "project": "p"}]},
        "allowed_environments": ["local:*"], "guard_interval": 0.5, "heartbeat_timeout": 5,
        "guards": [{"type": "probe", "name": "g", "tolerance": True,
                    "provider": {"type": "python", "module": "testdrivers", "func": "echo"}}],
    }
    assert _problems(write_experiment, settings) == []
