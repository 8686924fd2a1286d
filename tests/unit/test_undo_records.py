"""Recovery reads every change record a journal holds, whatever else an action's output carries."""

from __future__ import annotations

import json
from pathlib import Path

from mlchaos.safety.changes import ChangeRecord, Target
from mlchaos.safety.undo import recorded_changes, recover


def _journal(tmp_path: Path, announced: dict, output: dict | None) -> Path:
    journal = {"experiment": {"title": "t"}, "run": [{"output": output}] if output else [],
               "mlchaos": {"changes": [announced]}}
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(journal))
    return path


def _record(marker: Path) -> ChangeRecord:
    return ChangeRecord("test", "write-marker", [Target("file", str(marker))],
                        undo={"func": "testdrivers.remove_marker", "arguments": {"path": str(marker)}})


def test_an_output_with_more_keys_than_the_record_is_still_recovered(tmp_path):
    """add_toxic returns its record plus the toxic's JSON: that record was skipped (a TypeError, in silence)."""
    marker = tmp_path / "marker"
    marker.write_text("fault")
    announced = _record(marker).to_dict()
    output = {**announced, "toxic": {"name": "drill-latency"}, "stats": {"seen": 3}}
    (record,) = recorded_changes(json.loads(_journal(tmp_path, announced, output).read_text()))
    assert record.action == "write-marker" and record.undo["arguments"] == {"path": str(marker)}
    report = recover(tmp_path / "journal.json", by="test")
    assert [r.status for r in report.results] == ["undone"] and not marker.exists()


def test_a_record_that_cannot_be_read_is_reported_as_a_failed_undo(tmp_path):
    broken = {"mlchaos_change": 1, "action": "mystery", "announced_at": "2026-12-02T00:00:00+00:00"}  # no driver...
    unreadable: list[str] = []
    assert recorded_changes({"mlchaos": {"changes": [broken]}}, unreadable) == []
    assert unreadable == ["change record 0 ('mystery') cannot be read"]
    report = recover(_journal(tmp_path, broken, None), by="test")
    assert not report.ok
    assert report.results[0].status == "failed" and "cannot be read: undo it by hand" in report.results[0].error
