"""Keeping secrets out of what a run writes: journal, console, plan, summary, and stdout/stderr.

Secret values, and the values of env-backed configuration entries, are replaced by ``***``
(see :func:`sensitive_values` for what counts, :func:`redacted_output` for the streams).
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

REDACTED = "***"
MIN_SECRET_LENGTH = 3


def secret_values(secrets: dict[str, Any]) -> list[str]:
    """Every loaded secret value as text (the strings to keep out of journals and logs)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif value is not None and not isinstance(value, bool):
            text = str(value)
            if len(text) >= MIN_SECRET_LENGTH:
                found.append(text)

    walk(secrets)
    return sorted(set(found), key=len, reverse=True)


def sensitive_values(
    experiment_configuration: Any, configuration: dict[str, Any], secrets: dict[str, Any],
    overrides: Any = None,
) -> list[str]:
    """Secret values plus the resolved values (and declared defaults) of env-backed configuration entries.

    ``overrides`` are --var-file configuration entries, which may declare env-backed values too.
    """
    picked: list[Any] = []
    for declared in (experiment_configuration, overrides):
        if not isinstance(declared, dict):
            continue
        for key, value in declared.items():
            if isinstance(value, dict) and value.get("type") == "env":
                picked.append(configuration.get(key))
                picked.append(value.get("default"))
    return secret_values({"secrets": secrets, "configuration": picked})


@dataclass
class Redactor:
    """Replaces secret values in any JSON-like structure or string."""

    secrets: list[str] = field(default_factory=list)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def data(self, value: Any) -> Any:
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return REDACTED if str(value) in self.secrets else value
        return value


class RedactedStream(io.TextIOBase):
    """A text stream that redacts what is written to it before passing it on."""

    def __init__(self, stream: Any, redactor: Callable[[], Redactor]):
        self.stream = stream
        self.redactor = redactor  # read at each write: the run builds its redactor once values are resolved

    def write(self, text: str) -> int:
        self.stream.write(self.redactor().text(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


@contextlib.contextmanager
def redacted_output(redactor: Callable[[], Redactor]) -> Iterator[None]:
    """While it lasts, sys.stdout and sys.stderr redact: drivers' prints, logging and tracebacks too."""
    out, err = RedactedStream(sys.stdout, redactor), RedactedStream(sys.stderr, redactor)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield


def redact_secrets_block(secrets: Any) -> Any:
    """The experiment's ``secrets`` block with literal values hidden (env/vault references kept)."""
    if not isinstance(secrets, dict):
        return secrets
    result: dict[str, Any] = {}
    for scope, values in secrets.items():
        if not isinstance(values, dict):
            result[scope] = REDACTED
            continue
        result[scope] = {
            key: (value if isinstance(value, dict) and value.get("type") in ("env", "vault") else REDACTED)
            for key, value in values.items()
        }
    return result
