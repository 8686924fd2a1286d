"""A run's exact change records: private (0600 in a 0700 folder), what recovery replays, gone once all is undone.

The journal is redacted: its copy of a record whose path came from env-backed configuration says ``***``.
Here recovery is shown to replay the exact copy, to refuse to replay a redacted one, and to keep secrets out
of what it reports; the runner to keep and drop the file. The same through the real CLI and SIGKILL:
tests/integration/test_exact_recovery.py.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mlchaos.engine import exit_codes
from mlchaos.errors import InvalidInput
from mlchaos.journal.redaction import REDACTED, Redactor
from mlchaos.safety import exact_records
from mlchaos.safety.changes import ChangeRecord, Target
from mlchaos.safety.exact_records import ExactRecords
from mlchaos.safety.undo import recover
from tests.support.builders import py

RUN_ID = "20261202T000000-abcdef12"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _record(marker: Path) -> dict:
    return ChangeRecord("test", "inject-marker", [Target("file", str(marker))],
                        undo={"func": "testdrivers.remove_marker", "arguments": {"path": str(marker)}}).to_dict()


def _journal_of(tmp_path: Path, record: dict, secret: str, exact: ExactRecords | None) -> Path:
    """The journal a run writes: the record redacted, the run id and (with ``exact``) where the exact one is."""
    extra: dict = {"run_id": RUN_ID, "changes": [Redactor([secret]).data(record)]}
    if exact is not None:
        extra["exact_records"] = {"path": str(exact.path), "kept": True}
    path = tmp_path / "journal.json"
    path.write_text(json.dumps({"run": [], "mlchaos": extra}))
    return path


@pytest.fixture
def secret_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "private-cert-dir-7f3a"
    folder.mkdir()
    return folder


def test_the_file_is_0600_in_a_0700_folder_whatever_the_umask(secret_dir: Path, isolated_state: Path) -> None:
    old = os.umask(0)
    try:
        exact = ExactRecords.for_run(RUN_ID, None, [str(secret_dir), "unrelated-api-token"])
        exact.add_change(_record(secret_dir / "fault"))
    finally:
        os.umask(old)
    assert exact.path.parent == isolated_state / exact_records.FOLDER
    assert _mode(exact.path) == 0o600 and _mode(exact.path.parent) == 0o700
    written = json.loads(exact.path.read_text())
    assert written["changes"][0]["undo"]["arguments"]["path"] == str(secret_dir / "fault")
    assert written["secrets"] == [str(secret_dir)]  # only the secrets the records hold; never the others
    assert "unrelated-api-token" not in exact.path.read_text()


def test_a_folder_someone_opened_up_is_closed_again(secret_dir: Path, isolated_state: Path) -> None:
    folder = isolated_state / exact_records.FOLDER
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    ExactRecords.for_run(RUN_ID, None, []).add_change(_record(secret_dir / "fault"))
    assert _mode(folder) == 0o700


@pytest.mark.parametrize("run_id", ["../../etc/passwd", "", "a/b", ".hidden"])
def test_a_run_id_that_is_not_a_file_name_is_refused(run_id: str) -> None:
    with pytest.raises(InvalidInput, match="not a run id"):
        ExactRecords.for_run(run_id, None, [])


def test_recover_replays_the_exact_record_and_reports_no_secret(tmp_path: Path, secret_dir: Path) -> None:
    marker = secret_dir / "fault"
    marker.write_text("fault")
    exact = ExactRecords.for_run(RUN_ID, None, [str(secret_dir)])
    exact.add_change(_record(marker))
    journal = _journal_of(tmp_path, _record(marker), str(secret_dir), exact)
    assert f"{REDACTED}/fault" in journal.read_text()  # the journal alone could not undo it

    report = recover(journal, by="test")
    assert [r.status for r in report.results] == ["undone"] and not marker.exists()
    assert report.results[0].targets == [f"{REDACTED}/fault"]
    assert str(secret_dir) not in journal.read_text()  # the recovery it appended is redacted too
    assert not exact.path.exists()  # complete: the exact records are gone
    assert json.loads(journal.read_text())["mlchaos"]["exact_records"]["kept"] is False
    # again: the record is known only redacted now, and the journal says it was undone
    again = recover(journal, by="test")
    assert again.ok and [r.status for r in again.results] == ["nothing-to-undo"]


def test_recover_never_replays_a_redacted_record_it_has_no_exact_copy_of(tmp_path: Path, secret_dir: Path) -> None:
    marker = secret_dir / "fault"
    marker.write_text("fault")
    exact = ExactRecords.for_run(RUN_ID, None, [str(secret_dir)])
    exact.add_change(_record(marker))
    journal = _journal_of(tmp_path, _record(marker), str(secret_dir), exact)
    exact.path.unlink()  # lost (another host's state dir, deleted by hand)
    report = recover(journal, by="test")
    assert not report.ok and marker.exists()
    (result,) = report.results
    assert result.status == "failed" and "redacted in the journal" in str(result.error)
    assert str(exact.path) in str(result.error) and "undo it by hand" in str(result.error)


def test_exact_records_of_another_run_are_refused_and_the_failure_says_so(tmp_path: Path, secret_dir: Path) -> None:
    marker = secret_dir / "fault"
    marker.write_text("fault")
    other = ExactRecords.for_run("20261202T000000-00000000", None, [str(secret_dir)])
    other.add_change(_record(marker))
    journal = _journal_of(tmp_path, _record(marker), str(secret_dir), other)
    report = recover(journal, by="test")
    assert not report.ok and marker.exists() and other.path.exists()
    assert any(f"not the exact change records of run {RUN_ID}" in str(r.error) for r in report.results)


def test_a_journal_without_exact_records_is_recovered_from_its_own(tmp_path: Path) -> None:
    """Journals written before the exact records (tests/fixtures/journals/premove/) still recover."""
    marker = tmp_path / "fault"
    marker.write_text("fault")
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps({"run": [], "mlchaos": {"changes": [_record(marker)]}}))
    report = recover(journal, by="test")
    assert [r.status for r in report.results] == ["undone"] and not marker.exists()


def _experiment(tmp_path: Path, rollbacks: list[dict]) -> dict:
    return {"title": "exact records", "description": "d",
            "configuration": {"fault_dir": {"type": "env", "key": "MLCHAOS_TEST_FAULT_DIR"}},
            "method": [py("inject", "inject_marker", path="${fault_dir}/fault")], "rollbacks": rollbacks}


def test_a_run_that_undid_everything_drops_its_exact_records(run_experiment, tmp_path, secret_dir, monkeypatch):
    monkeypatch.setenv("MLCHAOS_TEST_FAULT_DIR", str(secret_dir))
    result, journal, out = run_experiment(_experiment(tmp_path, []))  # the safety net undoes the fault
    assert result.exit_code == exit_codes.OK, out
    named = journal["mlchaos"]["exact_records"]
    assert named["kept"] is False and not Path(named["path"]).exists()
    assert journal["mlchaos"]["changes"][0]["undo"]["arguments"]["path"] == f"{REDACTED}/fault"
    assert journal["mlchaos"]["changes"][0]["undo"]["func"] == "testdrivers.remove_marker"


def test_a_run_that_left_something_undone_keeps_them(run_experiment, tmp_path, secret_dir, monkeypatch):
    monkeypatch.setenv("MLCHAOS_TEST_FAULT_DIR", str(secret_dir))
    result, journal, out = run_experiment(_experiment(tmp_path, [py("broken-rollback", "fail")]))
    assert result.exit_code == exit_codes.ROLLBACK_FAILED, out
    named = journal["mlchaos"]["exact_records"]
    path = Path(named["path"])
    assert named["kept"] is True and _mode(path) == 0o600
    kept = exact_records.load(path, journal["mlchaos"]["run_id"])
    assert kept is not None
    assert [c["undo"]["arguments"]["path"] for c in kept.changes] == [str(secret_dir / "fault")]
    assert [o["action"] for o in kept.outputs] == ["inject-marker"]  # the action's output, kept as it ended
    assert str(secret_dir) not in json.dumps(journal) and str(secret_dir) not in out


def test_a_fault_whose_exact_record_cannot_be_kept_is_not_applied(run_experiment, tmp_path, secret_dir,
                                                                   monkeypatch, isolated_state):
    monkeypatch.setenv("MLCHAOS_TEST_FAULT_DIR", str(secret_dir))
    (isolated_state / exact_records.FOLDER).write_text("a file where the folder should be")
    result, journal, out = run_experiment(_experiment(tmp_path, []))
    assert result.exit_code != exit_codes.OK
    assert not (secret_dir / "fault").exists()  # the driver announces before it acts: the announcement failed
    (entry,) = journal["run"]
    assert entry["status"] == "failed" and "cannot keep the exact change records" in entry["exception"][-1]
