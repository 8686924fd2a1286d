"""A fake ``systemctl`` for the unit selector of drivers.process: this machine runs no systemd.

:func:`install` writes an executable ``systemctl`` into a folder (to put first on PATH) that knows the
units declared with :func:`declare_unit`: ``systemctl show UNIT --property=...`` answers LoadState,
ActiveState, MainPID and ControlGroup as systemd does (``not-found`` for an unknown unit), and
``systemctl start UNIT`` starts the unit's command in a session of its own (output to ``<unit>.log``)
and records its pid as MainPID, unless the unit is active already. Every call is appended to
``calls.log``. The processes it starts are real; only systemd's bookkeeping is imitated.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCRIPT = '''#!{python}
import json, os, subprocess, sys
state = {state!r}
with open(os.path.join(state, "calls.log"), "a") as calls:
    calls.write(" ".join(sys.argv[1:]) + "\\n")
verb, unit = sys.argv[1], sys.argv[2]
conf_path = os.path.join(state, unit + ".json")
if not os.path.exists(conf_path):
    if verb == "show":
        print("LoadState=not-found\\nActiveState=inactive\\nMainPID=0\\nControlGroup=")
        sys.exit(0)
    sys.stderr.write("Failed to start " + unit + ": Unit " + unit + " not found.\\n")
    sys.exit(5)
conf = json.load(open(conf_path))
pid_path = os.path.join(state, unit + ".pid")

def main_pid():
    try:
        pid = int(open(pid_path).read().strip())
        stat = open("/proc/%d/stat" % pid).read()
    except (OSError, ValueError):
        return 0
    return 0 if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X") else pid

if verb == "show":
    pid = main_pid()
    print("LoadState=loaded\\nActiveState=%s\\nMainPID=%d\\nControlGroup=/system.slice/%s"
          % ("active" if pid else "inactive", pid, unit))
elif verb == "start":
    if not main_pid():
        log = open(os.path.join(state, unit + ".log"), "ab")
        proc = subprocess.Popen(conf["command"], cwd=conf.get("cwd"), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        open(pid_path, "w").write(str(proc.pid))
else:
    sys.stderr.write("fake systemctl: unsupported verb " + verb + "\\n")
    sys.exit(2)
'''


def install(folder: Path) -> Path:
    """Write the fake ``systemctl`` into ``folder`` (its state lives there too); the folder, to put on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "systemctl"
    script.write_text(SCRIPT.format(python=sys.executable, state=str(folder)))
    script.chmod(0o755)
    return folder


def declare_unit(folder: Path, unit: str, command: list[str], cwd: str | None = None) -> None:
    """Declare a unit the fake knows, started by ``command`` (an argument list)."""
    (folder / f"{unit}.json").write_text(json.dumps({"command": command, "cwd": cwd}))


def main_pid(folder: Path, unit: str) -> int | None:
    """The pid the fake last started for ``unit`` (None before any start)."""
    path = folder / f"{unit}.pid"
    return int(path.read_text()) if path.exists() else None


def calls(folder: Path) -> list[str]:
    """Every command line the fake was called with, oldest first."""
    path = folder / "calls.log"
    return path.read_text().splitlines() if path.exists() else []
