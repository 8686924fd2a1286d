"""Keeping secrets out of what a run writes: journal, console, plan, summary, and stdout/stderr.

Secret values, and the values of env-backed configuration entries, are replaced by ``***``
(see :func:`sensitive_values` for what counts, :func:`redacted_output` for the streams). Only
leaf strings change: mapping keys (but those of a driver's output, which are data), numbers,
booleans and code paths (a provider's or an undo's ``module`` and ``func``) are never rewritten,
so a redacted journal keeps its shape. Values
shorter than ``MIN_SECRET_LENGTH`` cannot be redacted safely: :func:`too_short_to_redact`
names them so the run can warn. Recovery never reads redacted records: the exact ones are
kept apart (:mod:`mlchaos.safety.exact_records`).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

REDACTED = "***"
MIN_SECRET_LENGTH = 3
CODE_PATH_KEYS = ("module", "func")  # in a mapping with a string ``func`` (a provider, an undo): code, not data


def _leaves(value: Any, name: str) -> Iterator[tuple[str, str]]:
    """(name, text) of every scalar in ``value``; None and booleans are not secrets."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{name}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{name}[{index}]")
    elif value is not None and not isinstance(value, bool):
        yield name, str(value)


def sensitive_entries(
    experiment_configuration: Any, configuration: dict[str, Any], secrets: dict[str, Any],
    overrides: Any = None,
) -> list[tuple[str, str]]:
    """(name, value) of every secret and every env-backed configuration value (its declared default too).

    Names are ``secrets.<scope>.<key>`` and ``configuration.<key>``, never the value. ``overrides`` are
    --var-file configuration entries, which may declare env-backed values too.
    """
    found = list(_leaves(secrets or {}, "secrets"))
    for declared in (experiment_configuration, overrides):
        if not isinstance(declared, dict):
            continue
        for key, value in declared.items():
            if isinstance(value, dict) and value.get("type") == "env":
                found += _leaves(configuration.get(key), f"configuration.{key}")
                found += _leaves(value.get("default"), f"configuration.{key} (default)")
    return found


def sensitive_values(
    experiment_configuration: Any, configuration: dict[str, Any], secrets: dict[str, Any],
    overrides: Any = None,
) -> list[str]:
    """The values to redact (see :func:`sensitive_entries`), longest first; those too short are left out."""
    entries = sensitive_entries(experiment_configuration, configuration, secrets, overrides)
    return sorted({text for _, text in entries if len(text) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def too_short_to_redact(
    experiment_configuration: Any, configuration: dict[str, Any], secrets: dict[str, Any],
    overrides: Any = None,
) -> list[str]:
    """The names (never the values) of non-empty sensitive values shorter than MIN_SECRET_LENGTH."""
    entries = sensitive_entries(experiment_configuration, configuration, secrets, overrides)
    return sorted({name for name, text in entries if 0 < len(text) < MIN_SECRET_LENGTH})


def code_paths(value: Any) -> set[str]:
    """The dotted code paths in ``value``: every provider's ``module`` and ``module.func``, every undo's ``func``
    (a bare function name is not one: it would keep a secret equal to it visible wherever the word appears)."""
    found: set[str] = set()
    _add_code_paths(value, found)
    return found


def _add_code_paths(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        func, module = value.get("func"), value.get("module")
        if isinstance(func, str):
            if isinstance(module, str):
                found.add(module)
                found.add(f"{module}.{func}")
            elif "." in func:
                found.add(func)
        for item in value.values():
            if isinstance(item, (dict, list, tuple)):
                _add_code_paths(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, (dict, list, tuple)):
                _add_code_paths(item, found)


@dataclass
class Redactor:
    """Replaces secret values in the leaf strings of a JSON-like structure, or in a text.

    ``protected``: code paths (``drivers.model.actions``) a text keeps whole even when a secret occurs
    inside one: a secret ``model`` must not turn a function's name into ``drivers.***.actions``.
    """

    secrets: list[str] = field(default_factory=list)
    protected: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._compile()

    def _compile(self) -> None:
        ordered = sorted(set(self.secrets), key=len, reverse=True)  # the longest secret wins where two overlap
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def add_secret(self, value: str) -> None:
        """Redact ``value`` too from now on (a credential the run makes itself, e.g. its receiver's token)."""
        self.secrets.append(value)
        self._compile()

    def protect(self, names: Iterable[str]) -> None:
        """Keep these code paths whole in texts from now on."""
        self.protected.update(names)

    def text(self, value: str) -> str:
        if self._pattern is None or self._pattern.search(value) is None:
            return value
        kept = [(m.start(), m.end()) for name in self.protected if self._pattern.search(name)
                for m in re.finditer(re.escape(name), value)]
        parts, done, at = [], 0, 0
        while (match := self._pattern.search(value, at)) is not None:
            if any(start <= match.start() and match.end() <= end for start, end in kept):
                at = match.start() + 1  # inside a code path: kept; a longer secret may still start here
                continue
            parts += [value[done:match.start()], REDACTED]
            done = at = match.end()
        return "".join(parts) + value[done:]

    def data(self, value: Any, keys: bool = False) -> Any:
        """``value`` with its leaf strings redacted; numbers, booleans and code paths as they are.

        Mapping keys are kept, except (``keys``) in what a driver returned (an activity's ``output``), where a
        key can be data (a URL, a path) and one holding a secret is redacted too.
        """
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            code = isinstance(value.get("func"), str)
            activity = "activity" in value
            return {self.text(key) if keys and isinstance(key, str) else key:
                    item if code and key in CODE_PATH_KEYS and isinstance(item, str)
                    else self.data(item, keys or (activity and key == "output"))
                    for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(item, keys) for item in value]
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
