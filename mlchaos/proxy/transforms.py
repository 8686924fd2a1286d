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
import math
from dataclasses import dataclass
from typing import Any

from mlchaos.proxy.errors import InvalidToxic

DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES")
_FIELDS = {"scale": {"feature", "factor"}, "offset": {"feature", "delta"}, "zero": {"feature"},
           "swap": {"features"}, "datatype": {"datatype"}}


@dataclass(frozen=True)
class Transform:
    """One validated operation on the columns of a ``[rows, features]`` tensor."""

    op: str
    columns: tuple[int, ...] = ()
    number: float = 0.0
    datatype: str = ""

    def apply(self, rows: list[list[Any]]) -> str | None:
        """Change ``rows`` in place; return a new datatype for ``datatype``, else None."""
        if self.op == "datatype":
            cast = _caster(self.datatype)
            for row in rows:
                row[:] = [cast(v) for v in row]
            return self.datatype
        for row in rows:
            if self.op == "swap":
                i, j = self.columns
                row[i], row[j] = row[j], row[i]
            elif self.op == "zero":
                row[self.columns[0]] = 0.0
            elif self.op == "scale":
                row[self.columns[0]] = _number(row[self.columns[0]]) * self.number
            else:  # offset
                row[self.columns[0]] = _number(row[self.columns[0]]) + self.number
        return None


def parse_transforms(spec: Any) -> tuple[Transform, ...]:
    """Validate a JSON list of transforms; raise InvalidToxic naming the bad entry."""
    if not isinstance(spec, list) or not spec:
        raise InvalidToxic(f"transforms must be a non-empty list of operations, got {spec!r}")
    return tuple(_parse_one(i, item) for i, item in enumerate(spec))


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
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    inputs = document.get("inputs") if isinstance(document, dict) else None
    if not isinstance(inputs, list):
        return None
    found = next((t for t in inputs if isinstance(t, dict) and (not tensor or t.get("name") == tensor)), None)
    if found is None:
        return None
    shape, data = found.get("shape"), found.get("data")
    if (not isinstance(shape, list) or len(shape) != 2 or not all(_index(d) for d in shape)
            or not isinstance(data, list)):
        return None
    n_rows, n_cols = shape
    flat = _flatten(data)
    if len(flat) != n_rows * n_cols or any(c >= n_cols for t in transforms for c in t.columns):
        return None
    rows = [flat[i * n_cols:(i + 1) * n_cols] for i in range(n_rows)]
    try:
        for t in transforms:
            datatype = t.apply(rows)
            if datatype is not None:
                found["datatype"] = datatype
    except (TypeError, ValueError, OverflowError):
        return None  # a value the operation cannot take (a string scaled...): leave the request alone
    found["data"] = [v for row in rows for v in row]
    return json.dumps(document).encode()


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
