"""Parsing experiment files: formats, line numbers, malformed input."""

from __future__ import annotations

import pytest

from mlchaos.loader import load_document
from mlchaos.problems import ProblemList


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
