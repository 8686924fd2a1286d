"""Print the project's runtime dependencies (pyproject.toml's ``dependencies``), one requirement per line, leaving
out the distributions named on the command line: ``make demo`` installs what the demo runs, without the Docker and
Kubernetes clients (the sandbox is local processes), and ``make install`` adds them."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, without: set[str]) -> list[str]:
    """The requirements of ``pyproject``'s ``[project] dependencies`` whose distribution is not in ``without``."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    unknown = without - {_name(r) for r in project["dependencies"]}
    if unknown:
        raise SystemExit(f"{pyproject}: no dependency named {', '.join(sorted(unknown))}")
    return [r for r in project["dependencies"] if _name(r) not in without]


def _name(requirement: str) -> str:
    """The normalised distribution name a requirement starts with (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement


if __name__ == "__main__":
    print("\n".join(requirements(Path(__file__).resolve().parent.parent / "pyproject.toml",
                                 {_name(n) for n in sys.argv[1:]})))
