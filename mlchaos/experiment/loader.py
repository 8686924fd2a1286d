"""Read an experiment file (JSON or YAML) into plain data, remembering where each value sits.

Only parsing lives here: a malformed file becomes a :class:`~mlchaos.experiment.problems.Problem`
with the parser's line and column; checking the content is ``validation``'s job.

An experiment file may be hostile, so the loader also guarantees the shape of what it
returns: JSON's data model only (string keys, finite numbers within 64 bits, no YAML
``!!binary``/``!!set``; YAML timestamps stay strings), at most ``MAX_FILE_BYTES`` of
UTF-8 text, at most ``MAX_DEPTH`` levels of nesting, no duplicate keys, no alias cycles,
and at most ``MAX_NODES`` values once YAML aliases are expanded (a "billion laughs" file
is refused after a count memoised per shared object, without ever expanding it).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from mlchaos.experiment.problems import Problem, ProblemList

YAML_SUFFIXES = {".yaml", ".yml"}
_YAML_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available
JSON_SUFFIXES = {".json"}

MAX_FILE_BYTES = 5 * 1024 * 1024  # 5 MiB: the largest real experiment is ~5 KiB
MAX_DEPTH = 64                    # nesting levels of mappings and lists
MAX_NODES = 100_000               # values in the document once YAML aliases are expanded
MAX_PROBLEMS = 20                 # shape problems reported before "... and N more"
INT_LIMIT = 2**63                 # integers must fit in a signed 64-bit value
_MAX_INT_TEXT = 40                # longer integer literals are refused before int() sees them
_SURROGATE = re.compile("[\ud800-\udfff]")
_BRACKETS = re.compile(r'"(?:\\.|[^"\\])*"|[\[\]{}]')


@dataclass
class Document:
    """A parsed experiment file: its data and (computed on first use) the line of every JSON pointer."""

    path: Path
    data: Any
    text: str = ""
    root: yaml.Node | None = field(default=None, repr=False, compare=False)  # YAML's composed tree, if kept

    @cached_property
    def lines(self) -> dict[str, int]:
        return _line_map(self.root if self.root is not None else _compose(self.text))

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


def _fail(path: Path, message: str, line: int | None = None, pointer: str = "") -> ProblemList:
    return ProblemList([Problem(str(path), pointer, line, message)])


def load_document(path: str | Path) -> Document:
    """Parse an experiment file; raise :class:`ProblemList` when it cannot be read or parsed."""
    return _experiment(read_document(path))


def read_document(path: str | Path) -> Document:
    """Parse any JSON or YAML input file (experiment, var file) within the limits; its data may be any value."""
    path = Path(path)
    try:
        if not path.exists():
            raise _fail(path, "file not found")
        if not path.is_file():  # a FIFO or a device would block or never end
            raise _fail(path, "not a regular file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _fail(path, f"file too large: {size} bytes (the limit is {MAX_FILE_BYTES} bytes, 5 MiB)")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _fail(path, f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:  # grew since stat
        raise _fail(path, f"file too large: more than {MAX_FILE_BYTES} bytes (5 MiB)")
    return _parse(decode(raw, path), path)


def decode(raw: bytes, path: Path) -> str:
    """UTF-8 text (a leading BOM is dropped); a bad byte is reported with its line and offset."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise _fail(path, "not UTF-8 text: the file looks like UTF-16; save it as UTF-8", 1) from None
        start = exc.start
        line = raw.count(b"\n", 0, start) + 1
        column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        raise _fail(
            path, f"not UTF-8 text: invalid byte 0x{raw[start]:02x} at byte offset {start} (column {column})", line
        ) from None


def parse_text(text: str, path: Path) -> Document:
    """Parse experiment text; the suffix of ``path`` picks JSON or YAML."""
    return _experiment(_parse(text, path))


def _experiment(doc: Document) -> Document:
    if not isinstance(doc.data, dict):
        kind = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise _fail(doc.path, f"an experiment must be a mapping (object), got {kind}", 1)
    return doc


def _parse(text: str, path: Path) -> Document:
    suffix = path.suffix.lower()
    root, duplicates = None, {}
    if suffix in YAML_SUFFIXES:
        data, root = _parse_yaml(text, path)
    elif suffix in JSON_SUFFIXES:
        data, duplicates = _parse_json(text, path)
    else:
        raise _fail(path, "unknown file type: use .json, .yaml or .yml")
    doc = Document(path=path, data=data, text=text, root=root)
    problems = _Shape(doc, duplicates).check()
    if problems:
        raise ProblemList(problems)
    return doc


# --- JSON ---------------------------------------------------------------------------------


class _BigInt(str):
    """An integer literal too long to convert (refused by the shape check, with its place)."""


def _json_int(text: str) -> int | _BigInt:
    return _BigInt(text) if len(text) > _MAX_INT_TEXT else int(text)


def _parse_json(text: str, path: Path) -> tuple[Any, dict[int, list[str]]]:
    """The data, and the duplicate keys of each object (by id: JSON itself keeps the last value)."""
    duplicates: dict[int, list[str]] = {}

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(items)
        if len(result) != len(items):
            seen: set[str] = set()
            duplicates[id(result)] = sorted({k for k, _ in items if k in seen or seen.add(k)})
        return result

    try:
        data = json.loads(text, parse_int=_json_int, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"malformed JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise _fail(path, f"nested more than {MAX_DEPTH} levels deep", _deep_line(text)) from None
    return data, duplicates


def _deep_line(text: str) -> int | None:
    """The line where JSON-style brackets first nest deeper than MAX_DEPTH."""
    depth = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return text.count("\n", 0, match.start()) + 1
        elif token in "]}":
            depth -= 1
    return None


# --- YAML ---------------------------------------------------------------------------------


class _ExperimentLoader(_YAML_BASE):  # type: ignore[misc, valid-type]
    """A safe loader limited to JSON's data model."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = (key_node.tag, key_node.value)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                        )
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_int(self, node: yaml.ScalarNode) -> int | _BigInt:
        text = self.construct_scalar(node)
        return _BigInt(text) if len(text) > _MAX_INT_TEXT else self.construct_yaml_int(node)

    def refuse(self, node: yaml.Node) -> None:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.tag.rsplit(':', 1)[-1]!s} values are not supported in an experiment", node.start_mark
        )


_ExperimentLoader.add_constructor("tag:yaml.org,2002:int", _ExperimentLoader.construct_int)
_ExperimentLoader.add_constructor("tag:yaml.org,2002:timestamp", _ExperimentLoader.construct_yaml_str)
for _tag in ("binary", "set", "omap", "pairs"):
    _ExperimentLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _ExperimentLoader.refuse)


def _parse_yaml(text: str, path: Path) -> tuple[Any, yaml.Node | None]:
    loader = _ExperimentLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        problem = _alias_problem(root)
        if problem:
            raise _fail(path, problem, root.start_mark.line + 1)
        return loader.construct_document(root), root
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        where = f" (column {mark.column + 1})" if mark else ""
        what = exc.problem or exc.context or "syntax error"
        if exc.context and what.startswith("but "):  # "expected a single document ..., but found another"
            what = f"{exc.context}, {what}"
        raise _fail(path, f"malformed YAML: {what}{where}", line) from None
    except yaml.YAMLError as exc:
        raise _fail(path, f"malformed YAML: {exc}") from None
    except RecursionError:  # the pure-Python parser on deep input
        raise _fail(path, f"nested more than {MAX_DEPTH} levels deep", _deep_line(text)) from None
    finally:
        loader.dispose()


def _alias_problem(root: yaml.Node) -> str | None:
    """Refuse an alias cycle or an alias bomb before anything is constructed from the nodes."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    scalars: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if isinstance(node, yaml.ScalarNode):
            scalars.add(key)
            return 1
        if key in active:
            raise _Cycle()
        if depth > MAX_DEPTH:
            return 1  # reported, with its place, by the shape check
        active.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        total = 1 + sum(size(child, depth + 1) for child in children)
        active.discard(key)
        sizes[key] = total
        return total

    try:
        total = size(root, 0)
    except _Cycle:
        return "a YAML alias refers to a node that contains it (a cycle)"
    if total > MAX_NODES:
        if len(sizes) + len(scalars) > MAX_NODES:
            return f"the document has more than {MAX_NODES} values"
        return f"YAML aliases expand to more than {MAX_NODES} nodes"
    return None


class _Cycle(Exception):
    pass


# --- the shape of the data ----------------------------------------------------------------


# where a value is in the document while it is walked: its pointer, or (where its parent is, its key or index)
Where = str | tuple[Any, str | int]


def pointer_of(where: Where) -> str:
    """The JSON pointer of a walked position."""
    tokens: list[str] = []
    while isinstance(where, tuple):
        where, token = where
        tokens.append(escape_pointer_token(token))
    return where + "".join(f"/{token}" for token in reversed(tokens))


class _Shape:
    """Checks parsed data: depth, size, keys, numbers and text (each shared object once)."""

    def __init__(self, doc: Document, duplicates: dict[int, list[str]]):
        self.doc = doc
        self.duplicates = duplicates
        self.found: list[tuple[str, str]] = []
        self.seen: dict[int, tuple[int, int]] = {}  # id -> (values, height)
        # a text value can hold an unpaired surrogate only when the text has one, or an escape that makes one
        # (JSON \uD800, YAML "\uD800"): UTF-8 decoding refuses them. Without either, strings need no search
        # (an ASCII text, most files, has none: str.isascii() answers without reading it)
        text = doc.text
        self.surrogates = not text or "\\" in text or (not text.isascii() and _SURROGATE.search(text) is not None)

    def check(self) -> list[Problem]:
        total, _ = self.walk(self.doc.data, "", 1)
        if total > MAX_NODES:
            return [Problem(str(self.doc.path), "", 1, f"the document has more than {MAX_NODES} values")]
        problems = [self.doc.problem(pointer, message) for pointer, message in self.found[:MAX_PROBLEMS]]
        if len(self.found) > MAX_PROBLEMS:
            problems.append(Problem(str(self.doc.path), "", None, f"... and {len(self.found) - MAX_PROBLEMS} more"))
        return problems

    def add(self, where: Where, message: str) -> None:
        self.found.append((pointer_of(where), message))

    def walk(self, value: Any, pointer: Where, depth: int) -> tuple[int, int]:
        """(values, height) of ``value`` at ``pointer`` (a pointer, or a (parent, token) pair: a pointer's
        text is built only for a problem)."""
        if not isinstance(value, (dict, list)):
            self.scalar(value, pointer)
            return 1, 0
        key = id(value)
        if key in self.seen:
            total, height = self.seen[key]
            if depth + height > MAX_DEPTH:
                self.add(pointer, f"nested more than {MAX_DEPTH} levels deep")
            return total, height
        if depth > MAX_DEPTH:
            self.add(pointer, f"nested more than {MAX_DEPTH} levels deep")
            self.seen[key] = (1, MAX_DEPTH)
            return 1, MAX_DEPTH
        self.seen[key] = (1, MAX_DEPTH + 1)  # in progress: met again only through a cycle
        total, height = 1, 0
        mapping = isinstance(value, dict)
        if mapping:
            for name in self.duplicates.get(key, ()):
                self.add((pointer, name), f"duplicate key {name!r} (only one value may be given)")
            items: Any = value.items()
        else:
            items = enumerate(value)
        plain = not self.surrogates  # a plain str (key or value) is then fine as it is: nothing to call
        for name, item in items:
            if mapping and not (plain and type(name) is str):
                self.key(name, pointer)
            kind = type(item)
            if (kind is str and plain) or item is None or kind is bool:  # most values: nothing to check
                total += 1
                height = height or 1
            else:
                count, below = self.walk(item, (pointer, name), depth + 1)
                total += count
                height = max(height, below + 1)
            if total > MAX_NODES:
                break
        self.seen[key] = (total, height)
        return total, height

    def key(self, name: Any, pointer: Where) -> None:
        here = (pointer, name)
        if not isinstance(name, str) or isinstance(name, _BigInt):
            shown = "null" if name is None else repr(name)
            self.add(here, f"a key must be a string, got {shown} ({type(name).__name__}); quote it")
        elif _SURROGATE.search(name):
            self.add(here, "the key contains an unpaired UTF-16 surrogate (not valid Unicode text)")

    def scalar(self, value: Any, pointer: Where) -> None:
        if isinstance(value, _BigInt):
            self.add(pointer, f"integer out of range: {len(value)} digits (the limit is 64 bits)")
        elif isinstance(value, str):
            if _SURROGATE.search(value):
                self.add(pointer, "the text contains an unpaired UTF-16 surrogate (not valid Unicode text)")
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int):
            if not -INT_LIMIT <= value < INT_LIMIT:
                self.add(pointer, f"integer out of range: {value:.3e} (the limit is 64 bits)")
        elif isinstance(value, float):
            if math.isnan(value):
                self.add(pointer, "NaN is not a number an experiment may use")
            elif math.isinf(value):
                self.add(pointer, "number out of range: Infinity (or beyond 1.8e308) is not allowed")
        else:
            self.add(pointer, f"unsupported value of type {type(value).__name__}")


# --- lines ----------------------------------------------------------------------------------


def _compose(text: str) -> yaml.Node | None:
    """YAML's node tree of ``text`` (JSON is close enough to YAML), or None."""
    try:
        return yaml.compose(text, Loader=_YAML_BASE)
    except (yaml.YAMLError, RecursionError, UnicodeError):  # UnicodeError: a surrogate in text given as a str
        return None


def _line_map(root: yaml.Node | None) -> dict[str, int]:
    """Map JSON pointers to 1-based lines; an alias's contents are walked once, where first met."""
    lines: dict[str, int] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    while stack:
        node, pointer = stack.pop()
        lines.setdefault(pointer, node.start_mark.line + 1)
        if id(node) in seen or len(lines) > 4 * MAX_NODES:
            continue
        seen.add(id(node))
        children: list[tuple[yaml.Node, str]] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = pointer_join(pointer, key_node.value if isinstance(key_node, yaml.ScalarNode) else "?")
                lines[child] = key_node.start_mark.line + 1
                children.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, pointer_join(pointer, index)) for index, item in enumerate(node.value)]
        stack.extend(reversed(children))  # popped in document order: an anchor is walked where it is defined
    return lines
