"""Chaos Toolkit extensions load as under ``chaos`` (the logzero stand-in) and are found by their distribution or
module name; the journal's ``mlchaos.chaostoolkit_status`` is the status chaos would have written, and the safety
net's rollback entries keep their mark under mlchaos' key (older journals still read)."""

from __future__ import annotations

import importlib
import logging
import sys

import pytest

from mlchaos.experiment.driver_registry import DriverFunction, extension_functions, import_driver_module
from mlchaos.experiment.extensions import discoverable, find_extension, use_chaostoolkit_logging
from mlchaos.journal.writer import chaostoolkit_status


@pytest.fixture
def no_logzero(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``logzero`` module loaded (logzero itself is not installed) and ``chaosprometheus`` not imported yet, for
    this test only (sys.modules restored after it)."""
    for name in [n for n in sys.modules if n == "logzero" or n.startswith("chaosprometheus")]:
        monkeypatch.delitem(sys.modules, name)


def test_the_stand_in_is_the_one_chaos_installs(no_logzero):
    from chaoslib.log import override_logzero_module

    override_logzero_module()
    theirs = sys.modules.pop("logzero")
    use_chaostoolkit_logging()
    ours = sys.modules["logzero"]
    assert ours.logger is theirs.logger is logging.getLogger("chaostoolkit")
    assert ours.__path__ == theirs.__path__ == []
    use_chaostoolkit_logging()
    assert sys.modules["logzero"] is ours  # idempotent


def test_an_extension_importing_logzero_loads(no_logzero):
    module, error = import_driver_module("chaosprometheus.probes")
    assert error == "" and callable(module.query)
    assert importlib.import_module("chaosprometheus").logger is logging.getLogger("chaostoolkit")


def test_extensions_found_by_distribution_or_module():
    by_distribution = find_extension("chaostoolkit-prometheus")
    assert by_distribution is not None and by_distribution.module == "chaosprometheus"
    assert find_extension("chaosprometheus") == find_extension("Chaostoolkit_Prometheus") == by_distribution
    assert find_extension("chaostoolkit-lib") is None and find_extension("chaostoolkit") is None
    assert find_extension("chaostoolkit-nothing") is None


def test_extension_functions_come_from_its_own_discover():
    extension = find_extension("chaostoolkit-prometheus")
    found = [f for f in extension_functions(extension) if isinstance(f, DriverFunction)]
    query = next(f for f in found if f.module == "chaosprometheus.probes" and f.name == "query")
    assert query.kind == "probe" and query.signature.startswith("(query: str, when: str = None")
    assert query.summary.startswith("Run an instant query against a Prometheus server")
    assert {"probe", "control"} <= {f.kind for f in found}  # chaosprometheus.metrics is a control module


def test_a_cli_plugin_without_discover_lists_nothing():
    report = find_extension("chaostoolkit-reporting")
    assert report is not None and not discoverable(report)
    assert discoverable(find_extension("chaostoolkit-kubernetes"))


def probe(status: str) -> dict:
    return {"activity": {"name": "p"}, "status": status}


@pytest.mark.parametrize(("journal", "expected"), [
    ({"status": "interrupted"}, "interrupted"),
    ({"status": "aborted"}, "aborted"),
    ({"status": "aborted", "mlchaos": {"aborted": {"kind": "guard", "message": "m"}}}, "aborted"),
    ({"status": "aborted", "mlchaos": {"aborted": {"kind": "control", "message": "m"}}}, "interrupted"),
    ({"status": "failed", "mlchaos": {"aborted": {"kind": "fail-fast", "message": "m"}}}, "failed"),
    ({"status": "failed", "steady_states": {"before": {"probes": [probe("succeeded")]}, "after": None}}, "completed"),
    ({"status": "failed", "steady_states": {"before": {"probes": [probe("failed")]}, "after": None}}, "failed"),
    ({"status": "failed", "steady_states": {"before": {"probes": []}, "after": {"probes": [probe("failed")]}}},
     "failed"),
    ({"status": "completed", "steady_states": {"before": None, "after": None}}, "completed"),
])
def test_chaostoolkit_status(journal, expected):
    assert chaostoolkit_status(journal) == expected


def test_safety_net_entries_old_and_new_are_read_as_automatic():
    """Issue 17 moved the mark under mlchaos' own key; journals written before it are still read."""
    import json

    from mlchaos.journal.reader import is_automatic
    from mlchaos.reports.reader import read_run
    from tests.support.paths import ROOT

    old = json.loads((ROOT / "tests/fixtures/journals/premove/telemetry-outage.json").read_text())
    assert any(r.get("automatic") is True for r in old["rollbacks"])
    assert any(a.automatic for a in read_run(old).activities)
    assert is_automatic({"mlchaos": {"automatic": True}}) and is_automatic({"automatic": True})
    assert not is_automatic({"status": "succeeded"}) and not is_automatic({"mlchaos": "automatic"})
