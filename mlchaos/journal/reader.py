"""Reading a journal file back: the bounded, strict read that recovery and reports both start from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlchaos.errors import InvalidInput

MAX_JOURNAL_BYTES = 64 * 1024 * 1024  # the largest journal a drill writes is well under 1 MiB
SECTION = "mlchaos"  # mlchaos' own section of a Chaos Toolkit journal


def read_file(path: Path, max_bytes: int = MAX_JOURNAL_BYTES) -> Any:
    """The JSON in the journal file at ``path`` (the caller checks its shape); InvalidInput naming the file and
    what is wrong."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InvalidInput(f"{path}: {size} bytes, more than the {max_bytes} a journal may have")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such journal") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the journal: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        raise InvalidInput(f"{path}: not a JSON journal: {exc}") from None
    return data


def mlchaos_section(journal: dict[str, Any]) -> dict[str, Any]:
    """The journal's ``mlchaos`` section (empty when there is none: a Chaos Toolkit journal)."""
    section = journal.get(SECTION)
    return section if isinstance(section, dict) else {}


def is_automatic(entry: Mapping[str, Any]) -> bool:
    """True for a rollback entry the safety net wrote (an automatic undo from a change record): marked under the
    entry's ``mlchaos`` key, or, in journals written before issue 17, by a top-level ``automatic``."""
    extra = entry.get("mlchaos")
    return (isinstance(extra, Mapping) and extra.get("automatic") is True) or entry.get("automatic") is True
