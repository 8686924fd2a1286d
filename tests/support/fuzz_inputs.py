"""Hostile experiment inputs for the fuzz tests: seeds, hypothesis strategies, the corpus and its expectations.

Seeds are real experiments (experiments/*.yaml, only ever validated), the catalogue of broken
experiments, and a marker experiment whose actions append to the file named by
$MLCHAOS_TEST_MARKER (testdrivers.touch_marker): a marker present after an invalid input
would prove that something was executed.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.support import environment
from tests.support.bad_experiments import CATALOGUE, valid
from tests.support.paths import EXPERIMENTS, FUZZ_CORPUS

CORPUS = FUZZ_CORPUS
MARKER_ENV = "MLCHAOS_TEST_MARKER"
EXAMPLES = int(os.environ.get("MLCHAOS_FUZZ_EXAMPLES", "0"))  # > 0: a longer fuzzing session
CASE_SECONDS = 20  # a case still running after this is a hang


def marker_experiment() -> dict[str, Any]:
    """A valid experiment whose action and rollback leave a marker (and whose probe only echoes)."""
    data = valid()
    touch = {"type": "action", "name": "touch", "provider": {
        "type": "python", "module": "testdrivers", "func": "touch_marker", "arguments": {"text": "method"}}}
    data["method"] = [touch]
    data["rollbacks"] = [{**copy.deepcopy(touch), "name": "touch-again"}]
    return data


def real_experiments() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(EXPERIMENTS.glob("*.yaml"))]


RUNNABLE_SEEDS = [marker_experiment()] + [bad.data for bad in CATALOGUE]  # only test drivers
VALIDATION_SEEDS = RUNNABLE_SEEDS + real_experiments()  # real drivers: validated, never run

HOSTILE_VALUES: list[Any] = [
    10**100, -(10**100), 2**63, 2**63 - 1, -1, 0, -0.0, 1e308, float("nan"), float("inf"), float("-inf"),
    "", " ", "\x00", "\x1b[2J", "${", "${missing}", "$$", "${service", "a" * 10_000, "é", "\u202e",
    True, False, None, [], {}, [[[[[]]]]], "../../../etc/passwd", "http://", "ftp://x", "builtins", "type",
    "__class__", "testdrivers", "touch_marker", {"type": "env", "key": "MLCHAOS_FUZZ_SURELY_UNSET"},
    {"type": "env", "key": "HOME", "env_var_type": "int"}, {"type": "vault"}, {"ref": "ok"}, {"ref": 5},
    {"type": "range", "range": [float("nan"), 1]}, {"type": "probe"}, {"type": "regex", "pattern": "(("},
]
HOSTILE_TOKENS = [
    b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"&a ", b"*a", b"*a ", b"<<: *a\n", b"NaN", b"Infinity", b"1e400",
    b"9" * 60, b"[", b"{", b"]", b"}", b'"', b"'", b"\n", b"\t", b": ", b"- ", b"---\n", b"!!binary ", b"!!set ",
    b"!!python/object/apply:testdrivers.touch_marker [] ", b"? [a]\n: b\n", b"\\ud800", b"\xef\xbb\xbf",
]

scalars = st.one_of(
    st.sampled_from(HOSTILE_VALUES), st.integers(), st.floats(), st.text(max_size=12), st.booleans(), st.none()
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(data: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*path, index))


def _at(data: Any, path: tuple) -> Any:
    for token in path:
        data = data[token]
    return data


@st.composite
def mutated(draw: st.DrawFn, seeds: list[dict[str, Any]]) -> Any:
    """A seed with one to three structural mutations: replace, delete, unknown key, deep nesting, sharing."""
    seed = draw(st.sampled_from(seeds)) if draw(st.integers(0, 3)) == 3 else seeds[0]  # the first: most often
    data: Any = copy.deepcopy(seed)
    for _ in range(0 if draw(st.integers(0, 2)) == 0 else draw(st.integers(1, 3))):  # a third left intact
        path = draw(st.sampled_from(list(_paths(data))))
        operation = draw(st.sampled_from(["replace", "retype", "delete", "unknown-key", "nest", "share"]))
        value = copy.deepcopy(draw(values))  # never the shared objects of HOSTILE_VALUES
        if operation == "retype":  # a value of the same type: often still valid
            value = draw(st.from_type(type(_at(data, path))) if isinstance(_at(data, path), (bool, int, str))
                         else st.just(copy.deepcopy(_at(data, path))))
        if operation == "nest":
            for _ in range(draw(st.sampled_from([5, 63, 65, 200]))):
                value = [value] if draw(st.booleans()) else {"x": value}
        elif operation == "share" and path:
            value = _at(data, path)  # the same object twice: YAML dumps it as an anchor and an alias
        if not path:
            data = value if operation in ("replace", "nest") else data
            continue
        parent, last = _at(data, path[:-1]), path[-1]
        if operation == "delete":
            del parent[last]
        elif operation == "unknown-key" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = value
        else:
            parent[last] = value
    return data


def render(data: Any, fmt: str) -> bytes:
    """JSON (NaN and Infinity allowed, as Python writes them) or YAML (anchors for shared objects)."""
    if fmt == "json":
        return json.dumps(data, allow_nan=True).encode("utf-8")
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8", "surrogatepass")


@st.composite
def hostile_files(draw: st.DrawFn, seeds: list[dict[str, Any]]) -> tuple[str, bytes]:
    """(suffix, bytes): a mutated seed, rendered, then maybe damaged byte by byte."""
    fmt = draw(st.sampled_from(["json", "yaml"]))
    raw = bytearray(render(draw(mutated(seeds)), fmt))
    for _ in range(draw(st.sampled_from([1, 3])) if draw(st.integers(0, 2)) == 0 else 0):  # a third damaged
        position = draw(st.integers(0, len(raw)))
        operation = draw(st.sampled_from(["insert", "replace", "delete", "truncate"]))
        token = draw(st.sampled_from(HOSTILE_TOKENS) | st.binary(min_size=1, max_size=3))
        if operation == "insert":
            raw[position:position] = token
        elif operation == "replace":
            raw[position:position + len(token)] = token
        elif operation == "delete":
            del raw[position:position + draw(st.integers(1, 8))]
        else:
            del raw[position:]
    return f".{fmt}", bytes(raw)


# --- the corpus -------------------------------------------------------------------------------


def _alias_bomb(levels: int = 9) -> bytes:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    lines.append(f"title: billion laughs\nmethod: [{{type: action, name: a, provider: {{type: python, "
                 f"module: testdrivers, func: touch_marker, arguments: {{text: *l{levels - 1}}}}}}}]")
    return ("\n".join(lines) + "\n").encode()


def _marker_json(**changes: Any) -> bytes:
    data = marker_experiment()
    data.update(changes)
    return json.dumps(data, indent=1).encode()


# Inputs too big (or too regular) to commit: written by the tests next to the committed corpus files.
GENERATED: dict[str, Callable[[], bytes]] = {
    "generated-huge-file.json": lambda: _marker_json(description="x" * (6 * 1024 * 1024)),
    "generated-deep-100000.json": lambda: b'{"title": "t", "method": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "generated-deep-900.yaml": lambda: b"title: t\nmethod: " + b"[" * 900 + b"]" * 900 + b"\n",
    "generated-many-values.json": lambda: _marker_json(tags=["t"] * 200_000),
    "generated-alias-bomb-12.yaml": lambda: _alias_bomb(12),
}

# Every corpus file and what it must produce: a fragment of the first error, or None for a valid file.
EXPECTED: dict[str, str | None] = {
    "alias-bomb.yaml": "YAML aliases expand to more than 100000 nodes",
    "alias-cycle.yaml": "a YAML alias refers to a node that contains it",
    "binary-value.yaml": "binary values are not supported",
    "bom.json": None,
    "builtin-func.yaml": "builtins.dict is not a driver function",
    "control-characters.json": "the title contains control characters",
    "deep-nesting.json": "nested more than 64 levels deep",
    "duplicate-keys.json": "duplicate key 'method'",
    "duplicate-keys.yaml": "duplicate key 'method'",
    "empty.json": "malformed JSON",
    "empty.yaml": "got empty",
    "env-secret-default.yaml": "a secret has no default",
    "env-var-type.yaml": "is not a valid int",
    "huge-integer.json": "integer out of range: 101 digits",
    "infinite-timeout.yaml": "number out of range: Infinity",
    "json-infinity.json": "number out of range: Infinity",
    "json-nan.json": "NaN is not a number",
    "large-timeout.json": "timeout must be at most 604800 seconds",
    "list-top-level.json": "an experiment must be a mapping (object), got a list",
    "long-integer.yaml": "integer out of range: 5000 digits",
    "merge-key.yaml": None,
    "multi-document.yaml": "expected a single document",
    "non-string-keys.yaml": "a key must be a string, got 1 (int)",
    "non-utf8.yaml": "not UTF-8 text: invalid byte 0xe9 at byte offset 10 (column 11)",
    "python-tag.yaml": "could not determine a constructor",
    "secret-scope-list.yaml": "a secrets scope name must be a string",
    "rollback-timeout-secret.yaml": "timeout must be a number of seconds from the configuration, not the secret",
    "set-value.yaml": "set values are not supported",
    "surrogate.json": "unpaired UTF-16 surrogate",
    "template-timeout.yaml": "timeout must be a positive number",
    "utf16.json": "the file looks like UTF-16",
    "valid-marker.json": None,
    "generated-huge-file.json": "file too large: 62",
    "generated-deep-100000.json": "nested more than 64 levels deep",
    "generated-deep-900.yaml": "nested more than 64 levels deep",
    "generated-many-values.json": "the document has more than 100000 values",
    "generated-alias-bomb-12.yaml": "YAML aliases expand to more than 100000 nodes",
}


def corpus_files(directory: Path) -> list[Path]:
    """The committed corpus plus the generated inputs, written into ``directory``."""
    files = sorted(p for p in CORPUS.iterdir() if p.suffix in (".json", ".yaml", ".yml"))
    for name, make in GENERATED.items():
        path = directory / name
        if not path.exists():
            path.write_bytes(make())
        files.append(path)
    return files


# --- running cases ----------------------------------------------------------------------------


class CaseHung(Exception):
    """A case ran past its time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail a case in this (main) thread that runs past ``seconds``: a hang becomes a failure."""

    def expire(_signum: int, _frame: Any) -> None:
        raise CaseHung(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


PLACE_AND_PROBLEM = re.compile(r"^(?::\d+)?: /.*: \S")  # after the file: [:line]: /pointer: message


def check_invalid_output(stderr: str, path: Path) -> list[str]:
    """The error lines of an exit-2 run; each names the file, a place and a problem."""
    assert "nothing was executed" in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert errors, stderr
    prefix = f"error: {path}"
    for line in errors:
        assert line.startswith(prefix) and PLACE_AND_PROBLEM.match(line[len(prefix):]), line
    return errors


def mlchaos(*args: str, env: dict[str, str], timeout: float = CASE_SECONDS) -> subprocess.CompletedProcess:
    """Run ``python -m mlchaos`` as a child process (a hang raises TimeoutExpired)."""
    return subprocess.run([sys.executable, "-m", "mlchaos", *args], env=env, capture_output=True, text=True,
                          errors="replace", timeout=timeout)


def child_env(tmp: Path, marker: Path) -> dict[str, str]:
    """A child's environment (tests.support.environment) with the marker file and a state dir under ``tmp``."""
    return environment.child_env(tmp / "state", **{MARKER_ENV: str(marker), "MLCHAOS_FUZZ_SURELY_UNSET": None})
