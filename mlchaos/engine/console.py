"""What a person sees while a run goes: a line per activity and a summary.

Colour and symbols only on a terminal; plain ASCII text otherwise (CI logs, pipes). Whatever the
console is given (activity names, outputs, errors: text from drivers and the network) is redacted
and has its control characters escaped (``\x1b``, ``\r``...) before the console adds its own
colours: a probe's output or a server's error body cannot move the cursor or rewrite the terminal.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from mlchaos.experiment.problems import printable_lines
from mlchaos.journal.redaction import Redactor
from mlchaos.safety.changes import is_change_record

_COLOURS = {"ok": "\033[32m", "fail": "\033[31m", "warn": "\033[33m", "dim": "\033[2m"}
_RESET = "\033[0m"


class Console:
    """Writes run progress to a stream (stdout by default)."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None,
                 redactor: Redactor | None = None, quiet: bool = False):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.redactor = redactor or Redactor()
        self.quiet = quiet
        self._pending = False

    def _paint(self, kind: str, text: str) -> str:
        return f"{_COLOURS[kind]}{text}{_RESET}" if self.tty else text

    def clean(self, text: Any) -> str:
        """``text`` as the console shows it: secrets redacted, control characters escaped (newlines kept)."""
        return printable_lines(self.redactor.text(str(text)))

    def write(self, text: str = "") -> None:
        self._emit(self.clean(text))

    def _emit(self, line: str) -> None:
        """Write a line already cleaned (and painted) by this console."""
        if self.quiet:
            return
        try:
            self._clear_pending()
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream must never stop a run (or its rollbacks)
            self.quiet = True

    def _clear_pending(self) -> None:
        if self._pending:
            self.stream.write("\r\033[K")
            self._pending = False

    def heading(self, text: str) -> None:
        self._emit(self._paint("dim", self.clean(text)))

    def started(self, kind: str, name: str) -> None:
        """On a terminal, show the activity while it runs (overwritten when it ends)."""
        if self.quiet or not self.tty:
            return
        try:
            self._clear_pending()
            self.stream.write(f"  ..   {kind:<6} {self.clean(name)}")
            self.stream.flush()
            self._pending = True
        except (OSError, ValueError):
            self.quiet = True

    def finished(self, kind: str, name: str, ok: bool, duration: float, detail: str = "") -> None:
        if self.quiet:  # nothing to show: spare the cleaning (thousands of activities in a long run)
            return
        mark = ("✓" if ok else "✗") if self.tty else ("ok" if ok else "FAIL")
        mark = self._paint("ok" if ok else "fail", f"{mark:<4}")
        tail = f"  {self.clean(detail)}" if detail else ""
        self._emit(f"  {mark} {kind:<6} {self.clean(name)}  ({duration:.2f}s){tail}")

    def warn(self, text: str) -> None:
        self._emit(self._paint("warn", self.clean(f"WARNING: {text}")))

    def error(self, text: str) -> None:
        self._emit(self._paint("fail", self.clean(f"ERROR: {text}")))


def summarise_output(output: Any, limit: int = 100) -> str:
    """One short line for an activity's output: a change record's action and targets, a mapping's scalars."""
    if output is None:
        return ""
    if is_change_record(output):
        targets = ", ".join(t.get("name", "?") for t in output.get("targets", []))
        return f"{output.get('action')} -> {targets}" if targets else str(output.get("action"))
    if isinstance(output, dict):
        parts = []
        for key, value in output.items():
            if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
                parts.append(f"{key}=[{', '.join(map(str, value))}]")
            elif isinstance(value, (str, int, float, bool)) or value is None:
                parts.append(f"{key}={value}")
        text = " ".join(parts) or str(output)
    else:
        text = str(output)
    return text if len(text) <= limit else text[: limit - 3] + "..."
