"""How often the journal is written: forced writes always (fsync'd), progress writes throttled by their own cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlchaos.journal import writer
from mlchaos.journal.redaction import Redactor
from mlchaos.journal.writer import THROTTLE_SECONDS, WRITE_SHARE_LIMIT, Journal


class Clock:
    """time.monotonic for the writer: moves only when told (a write can be made to take ``write_cost``)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.write_cost = 0.0
        self.writes: list[bool] = []  # one per write: whether it was fsync'd

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    real_write = writer.atomic_write

    def timed_write(path, data, mode=None, *, sync=True):  # noqa: ANN001, ANN202
        clock.writes.append(sync)
        real_write(path, data, mode, sync=sync)
        clock.now += clock.write_cost

    monkeypatch.setattr(writer.time, "monotonic", clock)
    monkeypatch.setattr(writer, "atomic_write", timed_write)
    return clock


def test_progress_writes_wait_longer_after_a_costly_write_but_forced_ones_never_wait(clock: Clock,
                                                                                    tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    journal = Journal(path, {"title": "t"}, tmp_path / "e.json", Redactor())
    journal.save(force=True)
    assert clock.writes == [True]  # forced: written and fsync'd at once
    clock.now += THROTTLE_SECONDS / 2
    journal.save()
    assert len(clock.writes) == 1  # too soon for a progress write
    clock.now += THROTTLE_SECONDS
    clock.write_cost = 0.1  # a big journal: this write takes 0.1 s
    journal.data["run"].append({"n": 1})
    journal.save()
    assert clock.writes == [True, False]  # progress writes are not fsync'd
    clock.now += THROTTLE_SECONDS * 2  # long enough for a cheap journal, not for this one
    journal.save()
    assert len(clock.writes) == 2
    clock.now += WRITE_SHARE_LIMIT * 0.1
    journal.data["run"].append({"n": 2})
    journal.save()
    assert len(clock.writes) == 3 and json.loads(path.read_text())["run"] == [{"n": 1}, {"n": 2}]
    journal.data["run"].append({"n": 3})
    journal.save(force=True)  # before an action: never throttled
    assert clock.writes[-1] is True and json.loads(path.read_text())["run"][-1] == {"n": 3}


def test_the_journal_keeps_its_own_copy_of_the_experiment_top_level(tmp_path: Path) -> None:
    experiment = {"title": "t", "secrets": {"s": {"token": "hunter22"}}, "method": [{"name": "a"}]}
    journal = Journal(tmp_path / "journal.json", experiment, tmp_path / "e.json", Redactor())
    assert experiment["secrets"] == {"s": {"token": "hunter22"}}  # the caller's experiment is not redacted
    assert journal.data["experiment"]["secrets"] != experiment["secrets"]
    assert journal.data["experiment"]["method"] == experiment["method"]
