"""mlchaos.lib.counts.NamedCount, the output of drivers.prometheus.probes.unexpected_alert_count: compared and
journaled as the number it is, shown with the names it counted (so a drill whose steady state saw an unrelated
alert says which one)."""

from __future__ import annotations

import copy
import json
import pickle

from mlchaos.experiment.execution import Waiter
from mlchaos.experiment.tolerance import check
from mlchaos.lib.counts import NamedCount


def test_a_named_count_is_its_number_to_tolerances_and_json_and_names_what_it_counted_in_text() -> None:
    count = NamedCount(["ModelNotReady", "ModelServerDown"])
    assert count == 2 and isinstance(count, int) and json.dumps({"output": count}) == '{"output": 2}'
    assert str(count) == "2 (ModelNotReady, ModelServerDown)"
    for kept in (copy.deepcopy(count), pickle.loads(pickle.dumps(count))):
        assert kept == 2 and kept.names == count.names
    assert str(NamedCount([])) == "0" and NamedCount([]) == 0


def test_a_tolerance_that_is_not_met_names_the_alerts() -> None:
    verdict = check(0, NamedCount(["ModelEndpointLatencyHigh"]), {}, {}, 5, Waiter())
    assert not verdict.met and verdict.explanation == "expected 0, got 1 (ModelEndpointLatencyHigh)"
    assert check(0, NamedCount([]), {}, {}, 5, Waiter()).met
