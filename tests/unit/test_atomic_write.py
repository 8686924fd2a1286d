"""The one atomic write: whole files or none, and the permissions the caller asked for."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlchaos.journal.redaction import Redactor
from mlchaos.journal.writer import Journal
from mlchaos.lib.certificates import issue_sandbox_certificates
from mlchaos.lib.files import atomic_write


@pytest.fixture
def private_umask() -> Iterator[None]:
    """An operator who keeps their files private (umask 077)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_without_a_mode_the_umask_decides_as_for_any_new_file(tmp_path: Path, private_umask: None) -> None:
    path = tmp_path / "state.json"
    atomic_write(path, "{}\n")
    assert path.read_text() == "{}\n" and _mode(path) == 0o600
    os.umask(0o022)
    atomic_write(path, "[]\n")
    assert path.read_text() == "[]\n" and _mode(path) == 0o644


def test_an_explicit_mode_holds_whatever_the_umask(tmp_path: Path, private_umask: None) -> None:
    atomic_write(tmp_path / "report.html", "<p>", mode=0o644)
    assert _mode(tmp_path / "report.html") == 0o644
    os.umask(0)
    atomic_write(tmp_path / "key.pem", b"secret", mode=0o600)
    assert _mode(tmp_path / "key.pem") == 0o600


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    for text in ("one", "two"):
        atomic_write(tmp_path / "file", text, sync=False)
    assert [p.name for p in tmp_path.iterdir()] == ["file"] and (tmp_path / "file").read_text() == "two"


def test_a_journal_under_a_private_umask_stays_private(tmp_path: Path, private_umask: None) -> None:
    """The move's shared write forced 0644 on every file; journals and state files followed the umask before."""
    journal = Journal(tmp_path / "journal.json", {"title": "private"}, tmp_path / "experiment.json", Redactor())
    journal.save(force=True)
    assert _mode(tmp_path / "journal.json") == 0o600


def test_certificates_are_readable_by_clients_and_keys_by_nobody_else(tmp_path: Path, private_umask: None) -> None:
    paths = issue_sandbox_certificates(tmp_path / "leaf", hosts=["localhost"], ca_dir=tmp_path / "ca")
    modes = {Path(p).name: _mode(Path(p)) for p in (tmp_path / "leaf").iterdir()}
    assert all(mode == (0o600 if name.endswith(".key") else 0o644) for name, mode in modes.items()), modes
    assert paths
