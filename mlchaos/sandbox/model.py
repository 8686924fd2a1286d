"""The served model and its request validation, with no HTTP in sight.

:class:`ServedModel` trains on the bundled iris split and answers Open Inference
Protocol (OIP / KServe V2) infer requests given as parsed JSON. Bad input raises
:class:`InvalidRequest` carrying a short machine-readable ``reason``; the HTTP
layer maps it to status 400.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlchaos.sandbox import dataset
from mlchaos.sandbox.faults import Faults
from mlchaos.sandbox.signals import distribution

DEFAULT_VERSION = "2"
MODEL_VERSION = DEFAULT_VERSION  # the version served after start-up (kept for importers)
OLDER_VERSION_AGE_SECONDS = 30 * 86400.0
INPUT_NAME = "input-0"
OUTPUT_NAME = "predict"
ACCEPTED_DATATYPES = frozenset({"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64"})
MAX_BATCH = 10_000
# plausible iris measurements in cm: a 10x unit skew (cm read as mm) stays inside, so it shows up as drift
FEATURE_RANGE = (0.0, 100.0)


class InvalidRequest(ValueError):
    """An infer request that cannot be served; ``reason`` is a metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnknownVersion(LookupError):
    """A load asked for a version the repository does not hold."""


class LoadFailed(RuntimeError):
    """A load failed (the ``fail_load`` fault); the previously served version stays."""


@dataclass
class Prediction:
    """The outputs for one batch: classes when they are finite, the raw values always."""

    classes: list[int]
    class_names: list[str]
    values: list[float] = field(default_factory=list)

    @property
    def non_finite(self) -> int:
        return sum(not math.isfinite(v) for v in self.values)


@dataclass(frozen=True)
class TrainedVersion:
    """One trained version of the model."""

    version: str
    estimator: Any = field(repr=False)
    trained_at: float
    class_distribution: tuple[float, ...]


# version -> (training split, how much older than start-up its training time is stamped)
VERSIONS: dict[str, tuple[Callable[[], dataset.Split], float]] = {
    "1": (dataset.older_training_split, OLDER_VERSION_AGE_SECONDS),
    "2": (dataset.training_split, 0.0),
}


@dataclass
class ServedModel:
    """A scikit-learn classifier, every version trained on iris at start-up; one of them served.

    Version "1" stands for the previous release: trained on the older, smaller split and
    stamped as trained :data:`OLDER_VERSION_AGE_SECONDS` before start-up (the sandbox keeps
    no files, so its age is simulated). Version "2" is the current one, served by default.
    """

    name: str = "iris"
    faults: Faults = field(default_factory=Faults)
    _versions: dict[str, TrainedVersion] = field(default_factory=dict, repr=False)
    _active: TrainedVersion | None = field(default=None, repr=False)

    @property
    def version(self) -> str:
        return self._active.version if self._active else DEFAULT_VERSION

    @property
    def trained_at(self) -> float:
        return self._active.trained_at if self._active else 0.0

    @property
    def class_distribution(self) -> tuple[float, ...]:
        return self._active.class_distribution if self._active else ()

    @property
    def ready(self) -> bool:
        """True once a version is loaded, unless the ``not_ready`` fault is set."""
        return self._active is not None and not self.faults.flags.not_ready

    def train(self) -> None:
        """Fit every version (well under a second, mostly imports) and serve the default one."""
        from sklearn.linear_model import LogisticRegression

        now = time.time()
        for version, (split, age) in VERSIONS.items():
            x, y = split()
            estimator = LogisticRegression(max_iter=500)
            estimator.fit(x, y)
            shares = tuple(distribution(y, len(dataset.CLASS_NAMES)))
            self._versions[version] = TrainedVersion(version, estimator, now - age, shares)
        self._active = self._versions[DEFAULT_VERSION]

    def load(self, version: str | None = None) -> TrainedVersion:
        """Serve ``version`` (default: the current one); raise UnknownVersion or LoadFailed and keep the old one."""
        wanted = DEFAULT_VERSION if version is None else version
        if wanted not in self._versions:
            raise UnknownVersion(f"model {self.name!r} has no version {wanted!r}; known: {', '.join(self._versions)}")
        if self.faults.flags.fail_load:
            raise LoadFailed(f"failed to load model {self.name!r} version {wanted!r} (fail_load fault)")
        self._active = self._versions[wanted]
        return self._active

    def index(self) -> list[dict[str, str]]:
        """The repository index, Triton-shaped: one entry per version with its state."""
        return [{"name": self.name, "version": v, "state": "READY" if self._active is t else "UNAVAILABLE"}
                for v, t in self._versions.items()]

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
        """Predict the class of every row (rows must already be validated); NaN under the nan_outputs fault."""
        active = self._active
        if active is None:
            raise RuntimeError("model is not trained yet")
        if self.faults.flags.nan_outputs:
            return Prediction([], [], [math.nan] * len(rows))
        classes = [int(c) for c in active.estimator.predict(rows)]
        return Prediction(classes, [dataset.CLASS_NAMES[c] for c in classes], [float(c) for c in classes])


def parse_infer_request(body: Any) -> list[list[float]]:
    """Validate an OIP infer body and return its rows; raise InvalidRequest otherwise."""
    if not isinstance(body, dict):
        raise InvalidRequest("malformed", "request body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidRequest("malformed", "'inputs' must be a list with exactly one tensor")
    tensor = inputs[0]
    datatype = tensor.get("datatype", "FP32")
    if not isinstance(datatype, str) or datatype not in ACCEPTED_DATATYPES:
        raise InvalidRequest("wrong_datatype", f"unsupported datatype {datatype!r}")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
    ):
        raise InvalidRequest("wrong_shape", f"shape must be [N, {dataset.N_FEATURES}], got {shape!r}")
    n_rows, n_cols = shape
    if n_cols != dataset.N_FEATURES or not 1 <= n_rows <= MAX_BATCH:
        raise InvalidRequest(
            "wrong_shape", f"shape must be [N, {dataset.N_FEATURES}] with 1 <= N <= {MAX_BATCH}"
        )
    flat = _flatten(tensor.get("data"))
    if len(flat) != n_rows * n_cols:
        raise InvalidRequest(
            "wrong_shape", f"data holds {len(flat)} values but shape {shape} needs {n_rows * n_cols}"
        )
    values: list[float] = []
    integral = datatype.startswith("INT")
    low, high = FEATURE_RANGE
    for v in flat:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InvalidRequest("wrong_datatype", f"non-numeric value {v!r} in a {datatype} tensor")
        if math.isnan(v):
            raise InvalidRequest("nan", "data contains NaN")
        if not low <= v <= high:
            raise InvalidRequest("out_of_range", f"value {v!r} outside the feature range [{low:g}, {high:g}]")
        if integral and not float(v).is_integer():
            raise InvalidRequest("wrong_datatype", f"non-integer value {v!r} in a {datatype} tensor")
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
