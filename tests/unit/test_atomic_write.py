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
from mlchaos.lib.files import atomic_write, file_lock, write_json
from mlchaos.lib.state_dir import private_dir


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


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The usual umask (022), under which a new folder is 0755 and a new file 0644."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_what_is_written_in_the_state_dir_is_private(isolated_state: Path, usual_umask: None) -> None:
    isolated_state.chmod(0o755)  # exists already, looser: ours, so tightened
    atomic_write(isolated_state / "runs" / "deep" / "entry.json", "{}\n")
    write_json(isolated_state / "sandbox" / "state.json", {"replicas": []})
    with file_lock(isolated_state / "locks" / "x.lock"):
        pass
    folders = [isolated_state, *(p for p in isolated_state.rglob("*") if p.is_dir())]
    assert {str(p): _mode(p) for p in folders} == {str(p): 0o700 for p in folders}
    files = [p for p in isolated_state.rglob("*") if p.is_file()]
    assert len(files) == 3 and {str(p): _mode(p) for p in files} == {str(p): 0o600 for p in files}
    atomic_write(isolated_state / "tls" / "server.crt", "cert", mode=0o644)  # what clients read keeps its mode
    assert _mode(isolated_state / "tls" / "server.crt") == 0o644 and _mode(isolated_state / "tls") == 0o700


def test_private_dir_tightens_the_chain_in_the_state_dir_but_nothing_above_or_elsewhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, usual_umask: None) -> None:
    home = tmp_path / "home"
    state = home / "state"
    (state / "sandbox" / "logs").mkdir(parents=True)
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(state))
    assert _mode(home) == _mode(state / "sandbox") == 0o755
    private_dir(state / "sandbox" / "logs")
    assert [_mode(p) for p in (state, state / "sandbox", state / "sandbox" / "logs")] == [0o700] * 3
    assert _mode(home) == 0o755  # above the state dir: not mlchaos' to tighten
    private_dir(home / "user" / "backups")  # elsewhere: what it creates is private, the folders above stay
    assert _mode(home) == 0o755 and _mode(home / "user") == _mode(home / "user" / "backups") == 0o700


def test_private_dir_never_chmods_through_a_link(isolated_state: Path, tmp_path: Path, usual_umask: None) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    victim.chmod(0o755)
    (isolated_state / "link").symlink_to(victim)
    private_dir(isolated_state / "link")
    assert _mode(victim) == 0o755
