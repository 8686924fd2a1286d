"""The served model and its request validation, with no HTTP in sight.

:class:`ServedModel` trains on the bundled iris split and answers Open Inference
Protocol (OIP / KServe V2) infer requests given as parsed JSON. Bad input raises
:class:`InvalidRequest` carrying a short machine-readable ``reason``; the HTTP
layer maps it to status 400.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from mlchaos.sandbox import dataset

MODEL_VERSION = "1"
INPUT_NAME = "input-0"
OUTPUT_NAME = "predict"
ACCEPTED_DATATYPES = frozenset({"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64"})
MAX_BATCH = 10_000


class InvalidRequest(ValueError):
    """An infer request that cannot be served; ``reason`` is a metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Prediction:
    """The classes predicted for one batch."""

    classes: list[int]
    class_names: list[str]


@dataclass
class ServedModel:
    """A scikit-learn classifier trained on iris at start-up."""

    name: str = "iris"
    version: str = MODEL_VERSION
    trained_at: float = 0.0
    _estimator: Any = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        """True once the estimator has been trained."""
        return self._estimator is not None

    def train(self) -> None:
        """Fit the estimator on the training split (about a second, mostly imports)."""
        from sklearn.linear_model import LogisticRegression

        x, y = dataset.training_split()
        estimator = LogisticRegression(max_iter=500)
        estimator.fit(x, y)
        self._estimator = estimator
        self.trained_at = time.time()

    def metadata(self) -> dict[str, Any]:
        """Return the OIP model metadata document."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "sklearn",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, dataset.N_FEATURES]}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": "INT64", "shape": [-1]}],
            "parameters": {
                "trained_at": self.trained_at,
                "class_names": list(dataset.CLASS_NAMES),
                "feature_names": list(dataset.FEATURE_NAMES),
            },
        }

    def predict(self, rows: list[list[float]]) -> Prediction:
        """Predict the class of every row (rows must already be validated)."""
        if self._estimator is None:
            raise RuntimeError("model is not trained yet")
        classes = [int(c) for c in self._estimator.predict(rows)]
        return Prediction(classes, [dataset.CLASS_NAMES[c] for c in classes])


def parse_infer_request(body: Any) -> list[list[float]]:
    """Validate an OIP infer body and return its rows; raise InvalidRequest otherwise."""
    if not isinstance(body, dict):
        raise InvalidRequest("malformed", "request body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidRequest("malformed", "'inputs' must be a list with exactly one tensor")
    tensor = inputs[0]
    datatype = tensor.get("datatype", "FP32")
    if datatype not in ACCEPTED_DATATYPES:
        raise InvalidRequest("datatype", f"unsupported datatype {datatype!r}")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
    ):
        raise InvalidRequest("shape", f"shape must be [N, {dataset.N_FEATURES}], got {shape!r}")
    n_rows, n_cols = shape
    if n_cols != dataset.N_FEATURES or not 1 <= n_rows <= MAX_BATCH:
        raise InvalidRequest(
            "shape", f"shape must be [N, {dataset.N_FEATURES}] with 1 <= N <= {MAX_BATCH}"
        )
    flat = _flatten(tensor.get("data"))
    if len(flat) != n_rows * n_cols:
        raise InvalidRequest(
            "shape", f"data holds {len(flat)} values but shape {shape} needs {n_rows * n_cols}"
        )
    values: list[float] = []
    for v in flat:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InvalidRequest("non_numeric", f"non-numeric value {v!r} in data")
        if not math.isfinite(v):
            raise InvalidRequest("non_finite", "data contains NaN or infinite values")
        values.append(float(v))
    return [values[i * n_cols : (i + 1) * n_cols] for i in range(n_rows)]


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidRequest("malformed", "'data' must be a (possibly nested) list")
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
