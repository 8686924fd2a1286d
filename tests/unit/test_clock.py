"""utc_now_iso writes what ``datetime.now(UTC).isoformat()`` writes (the journal's times), from any thread."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime

from mlchaos.lib import clock

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?\+00:00$")


def test_the_text_is_datetimes_own_and_in_order() -> None:
    before = datetime.now(UTC)
    text = clock.utc_now_iso()
    after = datetime.now(UTC)
    assert ISO.match(text) and before <= datetime.fromisoformat(text) <= after
    assert datetime.fromisoformat(text).isoformat() == text  # what isoformat writes for that instant


def test_a_whole_second_has_no_fraction_as_in_isoformat(monkeypatch) -> None:
    for ns in (1_700_000_000_000_000_000, 1_700_000_000_123_456_789, 1_700_000_001_000_000_999):
        monkeypatch.setattr(clock.time, "time_ns", lambda ns=ns: ns)
        expected = datetime.fromtimestamp(ns // 1000 / 1e6, UTC).replace(microsecond=ns // 1000 % 1_000_000)
        assert clock.utc_now_iso() == expected.isoformat()


def test_threads_get_the_text_of_their_own_second(monkeypatch) -> None:
    seconds = iter(range(1_700_000_000, 1_700_000_000 + 4000))
    lock = threading.Lock()

    def tick() -> int:
        with lock:
            return next(seconds) * 1_000_000_000 + 5_000

    monkeypatch.setattr(clock.time, "time_ns", tick)
    found: list[str] = []

    def work() -> None:
        for _ in range(500):
            found.append(clock.utc_now_iso())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(found) == 2000 and all(text.endswith(".000005+00:00") for text in found)
    assert len(set(found)) == 2000  # never the text of another second
