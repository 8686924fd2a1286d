"""Helpers of the report tests: the fixture journals, a small HTML tree, a small PNG reader."""

from __future__ import annotations

import contextlib
import copy
import json
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import requests

from mlchaos.lib.files import free_ports
from tests.support import paths
from tests.support.polling import poll

FIXTURES = paths.FIXTURES / "journals"
HELD = ["kill-alerts-held-1", "kill-alerts-held-2", "kill-alerts-held-3"]
ALL = [*HELD, "kill-alerts-interrupted", "latency-held", "miswritten-alert-rule-deviated", "kill-guarded-aborted",
       "latency-bounded-refused"]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def journal_path(name: str) -> Path:
    return FIXTURES / f"{name}.json"


def journal(name: str) -> dict[str, Any]:
    """A fixture journal (a fresh copy each time: tests may edit it)."""
    return copy.deepcopy(json.loads(journal_path(name).read_text(encoding="utf-8")))


@dataclass
class Node:
    """An element of a parsed HTML (or SVG-in-HTML) document."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    parts: list[Node | str] = field(default_factory=list)  # children and text, in document order

    @property
    def children(self) -> list[Node]:
        return [part for part in self.parts if isinstance(part, Node)]

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Elements with that tag and attributes (``class_`` matches one class among several)."""
        found = []
        for node in self.iter():
            if tag is not None and node.tag != tag:
                continue
            if all(_attr_matches(node, key, value) for key, value in attrs.items()):
                found.append(node)
        return found

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag}> with {attrs}"
        return found[0]

    def text(self) -> str:
        return " ".join(" ".join(p if isinstance(p, str) else p.text() for p in self.parts).split())


def _attr_matches(node: Node, key: str, value: str) -> bool:
    if key == "class_":
        return value in node.attrs.get("class", "").split()
    return node.attrs.get(key.replace("_", "-")) == value


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].parts.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].parts.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


@dataclass
class Png:
    width: int
    height: int
    pixels: list[bytes]  # one bytes object per row, channels interleaved
    channels: int

    def colours(self, step: int = 3) -> set[bytes]:
        """Distinct pixel values, sampling every ``step``-th pixel of every ``step``-th row."""
        found = set()
        for row in self.pixels[::step]:
            for x in range(0, self.width, step):
                found.add(row[x * self.channels:(x + 1) * self.channels])
        return found


def read_png(data: bytes, max_rows: int | None = None) -> Png:
    """Decode an 8-bit, non-interlaced greyscale/RGB/RGBA PNG (what Chromium writes); the first rows only
    with ``max_rows`` (pure Python is slow)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, header = 8, b"", None
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunk = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
        offset += 12 + length
    assert header is not None, "no IHDR"
    width, height, depth, colour, _compression, _filter, interlace = header
    assert depth == 8 and interlace == 0 and colour in (0, 2, 6), f"unsupported PNG {header}"
    channels = {0: 1, 2: 3, 6: 4}[colour]
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous, position = [], bytearray(stride), 0
    for _ in range(height if max_rows is None else min(height, max_rows)):
        kind, line = raw[position], bytearray(raw[position + 1:position + 1 + stride])
        position += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(bytes(line))
        previous = line
    return Png(width, height, rows, channels)


@contextlib.contextmanager
def serve(argv: Callable[[int], list[str]], ready_path: str, log: Path, timeout: float = 20.0) -> Iterator[str]:
    """Run a real server on a free loopback port until it answers HTTP on ``ready_path``; yield its base URL.

    A port taken between choosing and binding it makes the server exit: it is tried again on another port.
    """
    for _attempt in range(3):
        (port,) = free_ports(1)
        url = f"http://127.0.0.1:{port}"
        with open(log, "ab") as output:
            process = subprocess.Popen(argv(port), stdout=output, stderr=subprocess.STDOUT)

        def answering(url: str = url, process: subprocess.Popen = process) -> bool:
            if process.poll() is not None:
                return True
            try:
                return requests.get(url + ready_path, timeout=1).status_code < 500  # it answers HTTP
            except requests.RequestException:
                return False

        try:
            if poll(answering, timeout=timeout, interval=0.05) and process.poll() is None:
                yield url
                return
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
    raise AssertionError(f"{argv(0)[0]} did not start; see {log}: {log.read_text()[-2000:]}")
