"""The documented systemd unit and timer of a game day pass the real ``systemd-analyze`` (verify, calendar).

Moved from tests/unit/test_gameday_deploy.py (issue 14): it runs a real binary (a component); the unit
and timer settings themselves are checked there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.components import require_component
from tests.support.paths import DEPLOY

SYSTEMD = DEPLOY / "systemd"


def _settings(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] not in "#;")
    return {key.strip(): value.strip() for key, value in pairs}


def test_the_systemd_units_pass_systemd_analyze(tmp_path):
    require_component("systemd-analyze", shutil.which("systemd-analyze") is not None,
                      "apt-get install systemd")
    mlchaos = Path(sys.executable).parent / "mlchaos"
    service = (SYSTEMD / "mlchaos-gameday.service").read_text()
    service = service.replace("/opt/mlchaos/.venv/bin/mlchaos", str(mlchaos))  # verify wants the binary
    service = service.replace("User=mlchaos", "User=root").replace("Group=mlchaos", "Group=root")
    (tmp_path / "mlchaos-gameday.service").write_text(service)
    shutil.copy(SYSTEMD / "mlchaos-gameday.timer", tmp_path)
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "mlchaos-gameday.service"),
                           str(tmp_path / "mlchaos-gameday.timer")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    calendar = _settings(SYSTEMD / "mlchaos-gameday.timer")["OnCalendar"]
    proc = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Next elapse:" in proc.stdout, proc.stderr
