"""Parsing experiment files: formats, line numbers, malformed input."""

from __future__ import annotations

import pytest

from mlchaos.experiment.loader import load_document, parse_text
from mlchaos.experiment.problems import ProblemList


def test_yaml_values_and_their_lines(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("title: t\nmethod:\n  - type: action\n    name: a\n", encoding="utf-8")
    doc = load_document(path)
    assert doc.data["method"][0]["name"] == "a"
    assert doc.line_of("/title") == 1
    assert doc.line_of("/method/0/name") == 4
    assert doc.line_of("/method/0/provider/module") == 3  # nearest existing parent


def test_json_lines_are_known_too(tmp_path):
    path = tmp_path / "e.json"
    path.write_text('{\n  "title": "t",\n  "method": [\n    {"name": "a"}\n  ]\n}\n', encoding="utf-8")
    doc = load_document(path)
    assert doc.line_of("/method/0/name") == 4


@pytest.mark.parametrize(
    ("name", "text", "line", "fragment"),
    [
        ("bad.json", '{"title": "x",\n  "method": [}\n', 2, "malformed JSON: Expecting value (column 14)"),
        ("bad.yaml", "title: x\nmethod:\n  - a: [\n", 4, "malformed YAML"),
        ("list.yaml", "- 1\n- 2\n", 1, "an experiment must be a mapping (object), got a list"),
        ("empty.yaml", "", 1, "got empty"),
        ("e.toml", "title = 'x'", None, "unknown file type"),
    ],
)
def test_malformed_files_name_file_line_and_problem(tmp_path, name, text, line, fragment):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProblemList) as caught:
        load_document(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert problem.line == line
    assert fragment in problem.message


def test_missing_file(tmp_path):
    with pytest.raises(ProblemList) as caught:
        load_document(tmp_path / "nope.yaml")
    assert caught.value.problems[0].message == "file not found"


def test_an_alias_bomb_is_refused_quickly_and_cycles_too(tmp_path):
    import time

    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 30)]  # 9**30 once expanded
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\ntitle: t\n", encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(ProblemList) as caught:
        load_document(path)
    assert time.monotonic() - started < 1.0
    assert str(caught.value) == f"{path}:1: /: YAML aliases expand to more than 100000 nodes"
    path.write_text("title: t\nx: &x {y: [*x]}\n", encoding="utf-8")
    with pytest.raises(ProblemList, match="a YAML alias refers to a node that contains it"):
        load_document(path)


def test_line_map_walks_shared_nodes_once(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text("base: &b {k: [1, 2]}\ncopy: *b\ntitle: t\n", encoding="utf-8")
    doc = load_document(path)
    assert doc.data["copy"] is doc.data["base"]
    assert doc.line_of("/base/k/1") == 1 and doc.line_of("/copy/k/1") == 2  # the alias' own line
    assert doc.line_of("/title") == 3


@pytest.mark.parametrize(
    ("name", "raw", "line", "pointer", "message"),
    [
        ("latin1.yaml", b"title: t\nx: caf\xe9\n", 2, "", "not UTF-8 text: invalid byte 0xe9 at byte offset 15"),
        ("dup.json", b'{"title": "t",\n "title": "u"}', 2, "/title", "duplicate key 'title'"),
        ("dup.yaml", b"title: t\nm: 1\ntitle: u\n", 3, "", "malformed YAML: duplicate key 'title' (column 1)"),
        ("keys.yaml", b"title: t\nx:\n  1: a\n", 3, "/x/1", "a key must be a string, got 1 (int); quote it"),
        ("nan.yaml", b"title: t\nx: [.nan]\n", 2, "/x/0", "NaN is not a number an experiment may use"),
        ("inf.json", b'{"title": "t",\n "x": 1e400}', 2, "/x", "number out of range: Infinity"),
        ("big.json", b'{"x": 9223372036854775808}', 1, "/x", "integer out of range: 9.223e+18"),
        ("deep.yaml", b"title: t\nx: " + b"[" * 70 + b"]" * 70 + b"\n", 2, "/x" + "/0" * 63,
         "nested more than 64 levels deep"),
        ("date.yaml", b"title: t\nday: 2024-01-31\n", None, None, None),
        # (no line: YAML's composer, which maps JSON's lines too, refuses a surrogate)
        ("surrogate.json", b'{"title": "t",\n "x": ["\\ud800"]}', None, "/x/0", "the text contains an unpaired"),
        ("surrogate-key.json", b'{"title": "t",\n "x": {"\\udfff": 1}}', None, "/x/\udfff", "the key contains an"),
    ],
)
def test_hostile_values_are_located(tmp_path, name, raw, line, pointer, message):
    path = tmp_path / name
    path.write_bytes(raw)
    if message is None:  # YAML timestamps stay strings, as in JSON
        assert load_document(path).data["day"] == "2024-01-31"
        return
    with pytest.raises(ProblemList) as caught:
        load_document(path)
    problem = caught.value.problems[0]
    assert (problem.line, problem.pointer) == (line, pointer)
    assert problem.message.startswith(message), problem.message


def test_a_surrogate_in_text_given_as_a_string_is_found(tmp_path):
    """Text handed over as a str (not decoded from UTF-8) may hold a surrogate without any escape."""
    with pytest.raises(ProblemList) as caught:
        parse_text('{"title": "t",\n "x": "caf\u00e9 \ud800"}', tmp_path / "given.json")
    problem = caught.value.problems[0]
    assert (problem.line, problem.pointer) == (None, "/x") and "unpaired UTF-16 surrogate" in problem.message
    assert parse_text('{"title": "café"}', tmp_path / "fine.json").data == {"title": "café"}
