"""Read an experiment file (JSON or YAML) into plain data, remembering where each value sits.

Only parsing lives here: a malformed file becomes a :class:`~mlchaos.problems.Problem`
with the parser's line and column; checking the content is ``validation``'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from mlchaos.problems import Problem, ProblemList

YAML_SUFFIXES = {".yaml", ".yml"}
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available
JSON_SUFFIXES = {".json"}


@dataclass
class Document:
    """A parsed experiment file: its data and (computed on first use) the line of every JSON pointer."""

    path: Path
    data: Any
    text: str = ""

    @cached_property
    def lines(self) -> dict[str, int]:
        return _line_map(self.text)

    def line_of(self, pointer: str) -> int | None:
        """The 1-based line of ``pointer``, or of its nearest parent that has one."""
        while True:
            if pointer in self.lines:
                return self.lines[pointer]
            if not pointer:
                return None
            pointer = pointer.rsplit("/", 1)[0]

    def problem(self, pointer: str, message: str) -> Problem:
        """A problem located at ``pointer`` in this document."""
        return Problem(str(self.path), pointer, self.line_of(pointer), message)


def escape_pointer_token(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer_join(pointer: str, token: str | int) -> str:
    return f"{pointer}/{escape_pointer_token(token)}"


def load_document(path: str | Path) -> Document:
    """Parse ``path``; raise :class:`ProblemList` when it cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProblemList([Problem(str(path), "", None, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProblemList([Problem(str(path), "", None, f"cannot read file: {exc}")]) from None
    return parse_text(text, path)


def parse_text(text: str, path: Path) -> Document:
    """Parse experiment text; the suffix of ``path`` picks JSON or YAML (JSON when unknown)."""
    suffix = path.suffix.lower()
    if suffix in YAML_SUFFIXES:
        data = _parse_yaml(text, path)
    elif suffix in JSON_SUFFIXES:
        data = _parse_json(text, path)
    else:
        raise ProblemList(
            [Problem(str(path), "", None, "unknown file type: use .json, .yaml or .yml")]
        )
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ProblemList(
            [Problem(str(path), "", 1, f"an experiment must be a mapping (object), got {kind}")]
        )
    return Document(path=path, data=data, text=text)


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProblemList(
            [Problem(str(path), "", exc.lineno, f"malformed JSON: {exc.msg} (column {exc.colno})")]
        ) from None


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        where = f" (column {mark.column + 1})" if mark else ""
        what = exc.problem or exc.context or "syntax error"
        raise ProblemList([Problem(str(path), "", line, f"malformed YAML: {what}{where}")]) from None
    except yaml.YAMLError as exc:
        raise ProblemList([Problem(str(path), "", None, f"malformed YAML: {exc}")]) from None


def _line_map(text: str) -> dict[str, int]:
    """Map JSON pointers to 1-based lines; JSON is close enough to YAML to compose it too."""
    try:
        root = yaml.compose(text, Loader=_YAML_LOADER)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, pointer: str) -> None:
        lines[pointer] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = pointer_join(pointer, key_node.value)
                walk(value_node, child)
                lines[child] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, pointer_join(pointer, index))

    if root is not None:
        walk(root, "")
    return lines
