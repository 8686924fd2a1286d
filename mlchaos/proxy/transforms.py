"""Feature transforms applied to Open Inference Protocol (KServe V2) infer bodies: train/serve skew.

A transform list is validated once (:func:`parse_transforms`, raising InvalidToxic naming the
entry and the problem) and then applied to JSON bodies (:func:`transform_body`). The tensor is
``[rows, features]``-shaped; its ``data`` may be flat (row-major) or nested. Operations:

- ``{"op": "scale", "feature": i, "factor": f}``: multiply column i by f (a unit change, cm read as mm)
- ``{"op": "offset", "feature": i, "delta": d}``: add d to column i (a miscalibrated sensor)
- ``{"op": "zero", "feature": i}``: set column i to 0 (a feature dropped by the pipeline)
- ``{"op": "swap", "features": [i, j]}``: exchange columns i and j (features reordered)
- ``{"op": "datatype", "datatype": "INT64"}``: declare another datatype and cast every value to it
  (``INT*``/``UINT*`` truncate, ``FP*`` become floats, ``BYTES`` become strings, ``BOOL`` booleans)
"""

from __future__ import annotations

import json
import json.scanner
import math
import re
from dataclasses import dataclass
from typing import Any

from mlchaos.proxy.errors import InvalidToxic

DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES")
_DECODER = json.JSONDecoder()
_DECODE = _DECODER.decode  # what json.loads and json.dumps use, without their per-call checks
_SCAN = json.scanner.make_scanner(_DECODER)  # (value, end) of the JSON value at an index
_ENCODE = json.JSONEncoder().encode
_DATA_KEY = re.compile(r'"data"[ \t\n\r]*:[ \t\n\r]*(?=\[)')
_JSON_WS = " \t\n\r"
_NUMBERS = frozenset((int, float))
_FIELDS = {"scale": {"feature", "factor"}, "offset": {"feature", "delta"}, "zero": {"feature"},
           "swap": {"features"}, "datatype": {"datatype"}}


@dataclass(frozen=True)
class Transform:
    """One validated operation on the columns of a ``[rows, features]`` tensor."""

    op: str
    columns: tuple[int, ...] = ()
    number: float = 0.0
    datatype: str = ""

    def apply(self, flat: list[Any], n_cols: int, numbers: bool = False) -> str | None:
        """Change the row-major ``flat`` data of ``n_cols`` columns in place; return a new datatype for
        ``datatype``, else None. ``numbers``: every value is known to be an int or a float (no check
        per value); otherwise a value scale or offset cannot take raises TypeError."""
        if self.op == "datatype":
            cast = _caster(self.datatype)
            flat[:] = [cast(v) for v in flat]
            return self.datatype
        first = self.columns[0]
        if self.op == "swap":
            second = self.columns[1]
            flat[first::n_cols], flat[second::n_cols] = flat[second::n_cols], flat[first::n_cols]
        elif self.op == "zero":
            flat[first::n_cols] = [0.0] * (len(flat) // n_cols)
        else:
            number, column = self.number, flat[first::n_cols]
            if not numbers:
                column = [_number(v) for v in column]
            flat[first::n_cols] = [v * number for v in column] if self.op == "scale" else [v + number for v in column]
        return None


class Transforms(tuple[Transform, ...]):
    """Validated transforms, in order, with what every body needs of them worked out once."""

    columns: frozenset[int]  # the columns any of them changes
    top: int  # the highest column any of them names (-1: none)
    casts: bool  # one of them is a datatype cast (it changes every value)

    def __new__(cls, items: Any) -> Transforms:  # noqa: D102
        self = super().__new__(cls, items)
        self.columns = frozenset(c for t in self for c in t.columns)
        self.top = max(self.columns, default=-1)
        self.casts = any(t.op == "datatype" for t in self)
        return self


def parse_transforms(spec: Any) -> Transforms:
    """Validate a JSON list of transforms; raise InvalidToxic naming the bad entry."""
    if not isinstance(spec, list) or not spec:
        raise InvalidToxic(f"transforms must be a non-empty list of operations, got {spec!r}")
    return Transforms(_parse_one(i, item) for i, item in enumerate(spec))


def _parse_one(index: int, item: Any) -> Transform:
    where = f"transforms[{index}]"
    if not isinstance(item, dict) or item.get("op") not in _FIELDS:
        raise InvalidToxic(f"{where}: must be an object with op one of {', '.join(_FIELDS)}, got {item!r}")
    op = item["op"]
    extra = sorted(set(item) - _FIELDS[op] - {"op"})
    missing = sorted(_FIELDS[op] - set(item))
    if extra or missing:
        raise InvalidToxic(f"{where}: op {op} takes {', '.join(sorted(_FIELDS[op]))}"
                           + (f"; missing {', '.join(missing)}" if missing else "")
                           + (f"; unknown {', '.join(extra)}" if extra else ""))
    if op == "datatype":
        if item["datatype"] not in DATATYPES:
            raise InvalidToxic(f"{where}: datatype must be one of {', '.join(DATATYPES)}, got {item['datatype']!r}")
        return Transform(op, datatype=item["datatype"])
    if op == "swap":
        pair = item["features"]
        if not isinstance(pair, list) or len(pair) != 2 or not all(_index(v) for v in pair) or pair[0] == pair[1]:
            raise InvalidToxic(f"{where}: features must be two different column indexes >= 0, got {pair!r}")
        return Transform(op, columns=(pair[0], pair[1]))
    if not _index(item["feature"]):
        raise InvalidToxic(f"{where}: feature must be a column index >= 0, got {item['feature']!r}")
    number = 0.0
    if op in ("scale", "offset"):
        key = "factor" if op == "scale" else "delta"
        value = item[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidToxic(f"{where}: {key} must be a finite number, got {value!r}")
        number = float(value)
    return Transform(op, columns=(item["feature"],), number=number)


def transform_body(body: bytes, transforms: tuple[Transform, ...], tensor: str = "") -> bytes | None:
    """The infer body with ``transforms`` applied to tensor ``tensor`` (default: the first input).

    None when they do not apply: not a JSON object with that tensor, a shape that is not
    ``[rows, features]``, data that does not fill it, or a column beyond the features.
    The tensor's data goes on flat (row-major). Where the body allows it (see :func:`_splice`),
    only the tensor's data is written anew and the rest of the body goes on as it came.
    """
    plan = transforms if isinstance(transforms, Transforms) else Transforms(transforms)
    text = None
    if body[:1] == b"{" and body[1:2] != b"\0":  # UTF-8 (not UTF-16/32, which json.loads also reads)
        try:
            text = body.decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
        except UnicodeDecodeError:
            text = None  # json.loads says why it is not JSON
    try:
        document = json.loads(body) if text is None else _DECODE(text)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep to parse
        return None
    inputs = document.get("inputs") if type(document) is dict else None
    if type(inputs) is not list:
        return None
    for found in inputs:
        if type(found) is dict and (not tensor or found.get("name") == tensor):
            break
    else:
        return None
    shape, data = found.get("shape"), found.get("data")
    if type(shape) is not list or len(shape) != 2 or type(data) is not list:
        return None
    n_rows, n_cols = shape
    if type(n_rows) is not int or type(n_cols) is not int or n_rows < 0 or n_cols < 0 or plan.top >= n_cols:
        return None
    kinds = set(map(type, data))
    nested = list in kinds
    flat = _flatten(data) if nested else data
    if len(flat) != n_rows * n_cols:
        return None
    numeric = _NUMBERS.issuperset(map(type, flat) if nested else kinds)  # before the transforms change anything
    numbers = numeric
    try:
        for t in plan:
            datatype = t.apply(flat, n_cols, numbers)
            if datatype is not None:
                found["datatype"] = datatype
                numbers = _NUMBERS.issuperset(map(type, flat))  # a cast may have made them bools or strings
    except (TypeError, ValueError, OverflowError):
        return None  # a value the operation cannot take (a string scaled...): leave the request alone
    if text is not None and numeric and not plan.casts:
        spliced = _splice(text, flat, n_cols, plan.columns, nested)
        if spliced is not None:
            return spliced.encode("utf-8", "surrogatepass")  # the bytes it came as, but for the data
    found["data"] = flat
    return _ENCODE(document).encode()


def _splice(text: str, flat: list[Any], n_cols: int, columns: frozenset[int], nested: bool) -> str | None:
    """``text`` with its tensor data replaced by ``flat``, rewriting only the ``columns`` changed; None when unsure.

    Only for a body whose data were all numbers (so the first ``]`` after a flat array's ``[`` closes
    it, and its commas part its elements) and whose text has no backslash and ``"data"`` once: that
    can then only be the tensor's key (a quote inside a string would be escaped; a key can only be
    spelled another way with an escape). Elements of columns not changed keep their text; the rest of
    the body goes on byte for byte. Nested data goes on flat, as from the full rewrite.
    """
    if "\\" in text or text.count('"data"') != 1:
        return None  # an escape (a key may be spelled with one), or "data" more than once: no way to tell which
    match = _DATA_KEY.match(text, text.find('"data"'))
    if match is None:
        return None
    start = match.end()
    end = _SCAN(text, start)[1] if nested else text.find("]", start) + 1  # numbers only: the first ] closes it
    inner = text[start + 1:end - 1]
    if nested:
        inner = inner.replace("[", "").replace("]", "")
    items = inner.split(",") if flat else []
    if len(items) != len(flat):
        return None
    for column in columns:
        for i in range(column, len(flat), n_cols):
            old = items[i]
            items[i] = old.replace(old.strip(_JSON_WS), _number_text(flat[i]))
    return f"{text[:start]}[{','.join(items)}]{text[end:]}"


def _number_text(value: float | int) -> str:
    """A number as json.dumps writes it (NaN and the infinities as JavaScript spells them)."""
    if type(value) is float:
        if value != value:
            return "NaN"
        if value in (math.inf, -math.inf):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    return int.__repr__(value)


def _flatten(data: list[Any]) -> list[Any]:
    # the same walk as mlchaos.sandbox.model._flatten, kept apart on purpose: the fault-proxy image ships
    # mlchaos/proxy/ alone (standard library only) and the model-server image mlchaos/sandbox/ alone
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    return value


def _caster(datatype: str) -> Any:
    if datatype == "BYTES":
        return str
    if datatype == "BOOL":
        return bool
    if datatype.startswith(("INT", "UINT")):
        return lambda v: int(_number(v))
    return lambda v: float(_number(v))


def _index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
