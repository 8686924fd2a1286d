"""Reading Alertmanager's notification counters (drivers/alertmanager/counters.py) from recorded /metrics bodies.

The bodies were saved byte for byte from Alertmanager 0.25 (tests/support/fixtures_api/MANIFEST.json) and are
served over real HTTP by the replay server. One test adds a ``receiver_name`` label to the recorded lines, as
newer Alertmanagers do behind a feature flag (prometheus/alertmanager#3045); 0.25 cannot produce it, so that
body is constructed, not recorded. Against the real binary: tests/integration/test_alertmanager_counters.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from drivers.alertmanager import counters
from mlchaos.driver_kit import DriverError
from tests.support.fixtures_api import ReplayServer, body


@pytest.fixture
def alertmanager() -> Iterator[ReplayServer]:
    server = ReplayServer()
    yield server
    server.stop()


def test_the_recorded_counters_show_a_failing_webhook(alertmanager):
    alertmanager.serve("/metrics", "alertmanager_metrics_before.txt", "alertmanager_metrics_after.txt")
    before = counters.read(alertmanager.url, "webhook", 5)
    after = counters.read(alertmanager.url, "webhook", 5)
    assert before.totals() == dict.fromkeys(counters.NAMES, 0.0) and before.per_receiver is False
    assert after.since(before) == {"notifications": 3.0, "notifications_failed": 1.0, "requests": 11.0,
                                   "requests_failed": 10.0}
    with pytest.raises(DriverError, match=r"alertmanager_notifications_total, .* went back since the baseline "
                                          r"\(restarted\?\)"):
        before.since(after)


def test_an_integration_it_does_not_export_is_named_with_those_it_does(alertmanager):
    alertmanager.serve("/metrics", "alertmanager_metrics_before.txt")
    with pytest.raises(DriverError, match=r"exports no notification counters for integration 'teams' \(its "
                                          r"integrations: email, opsgenie, pagerduty, pushover, slack, sns, "
                                          r"telegram, victorops, webhook, wechat\)"):
        counters.read(alertmanager.url, "teams", 5)


def test_without_request_counters_success_cannot_be_told_and_the_probe_says_so(alertmanager):
    text = b"\n".join(line for line in body("alertmanager_metrics_after.txt").splitlines()
                      if b"notification_requests" not in line) + b"\n"
    alertmanager.serve_raw("/metrics", (200, text))
    with pytest.raises(DriverError, match=r"does not export alertmanager_notification_requests_total, "
                                          r"alertmanager_notification_requests_failed_total"):
        counters.read(alertmanager.url, "webhook", 5)


def test_counters_labelled_with_the_receiver_are_read_for_that_receiver(alertmanager):
    recorded = body("alertmanager_metrics_after.txt").decode()
    labelled = re.sub(r'\{integration="webhook"\} (\d+)', r'{integration="webhook",receiver_name="drill"} \1',
                      recorded)
    others = "\n".join(f'{name}{{integration="webhook",receiver_name="other"}} 5'
                       for name in counters.NAMES.values())
    alertmanager.serve_raw("/metrics", (200, (labelled + others + "\n").encode()))
    found = counters.read(alertmanager.url, "webhook", 5)
    assert found.per_receiver is True
    assert found.totals("drill") == {"notifications": 3.0, "notifications_failed": 1.0, "requests": 11.0,
                                     "requests_failed": 10.0}
    assert found.totals() == {"notifications": 8.0, "notifications_failed": 6.0, "requests": 16.0,
                              "requests_failed": 15.0}
