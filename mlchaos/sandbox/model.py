"""The served model and its request validation, with no HTTP in sight.

:class:`ServedModel` trains on the bundled iris split and answers Open Inference
Protocol (OIP / KServe V2) infer requests given as parsed JSON. Bad input raises
:class:`InvalidRequest` carrying a short machine-readable ``reason``; the HTTP
layer maps it to status 400.

A *bad model push* (:meth:`ServedModel.push`) adds a defective version to the repository,
trained in-process, as if someone had pushed a bad artifact: ``label_flipped`` is trained on
labels shifted cyclically (y -> (y + 1) % 3), so its predictions stay class-balanced and only
accuracy shows it; ``random_weights`` keeps the estimator's shape but replaces its
coefficients with seeded random values (its predictions pile up on one class: drift shows it
too). A pushed version is not served until it is loaded.

The repository follows the Open Inference Protocol's model repository extension: :meth:`ServedModel.index`
lists every version with its state (``READY``, ``UNAVAILABLE``) and the reason, :meth:`ServedModel.unload`
stops serving (nothing is ready until the next load) and :meth:`ServedModel.load` serves a version again.
"""

from __future__ import annotations

import math
import re
import threading
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
DEFECTS = ("label_flipped", "random_weights")
RANDOM_WEIGHTS_SEED = 0  # every random_weights push gets the same weights: its accuracy is reproducible
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class InvalidRequest(ValueError):
    """An infer request that cannot be served; ``reason`` is a metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnknownVersion(LookupError):
    """A load asked for a version the repository does not hold."""


class LoadFailed(RuntimeError):
    """A load failed (the ``fail_load`` fault); the previously served version stays."""


class BadPush(ValueError):
    """A push that names an unknown defect or an unusable version name."""


class VersionConflict(RuntimeError):
    """A push or removal that clashes with the repository: a release version, another defect, the served one."""


class VersionNotFound(LookupError):
    """A removal of a version the repository does not hold."""


class NotLoaded(LookupError):
    """An unload of a model that is not loaded."""


@dataclass
class Prediction:
    """The outputs for one batch: classes when they are finite, the raw values always."""

    classes: list[int]
    class_names: list[str]
    values: list[float] = field(default_factory=list)
    version: str = ""  # the version that answered (a load may swap it right after)

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
    defect: str | None = None  # set for a pushed (defective) version


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
    _unloaded: bool = field(default=False, repr=False)  # unloaded: the last served version stays named, not served
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        """True once a version is loaded (and not unloaded since), unless the ``not_ready`` fault is set."""
        return self._active is not None and not self._unloaded and not self.faults.flags.not_ready

    @property
    def loaded(self) -> bool:
        """True while a version is loaded: false before training and after :meth:`unload`."""
        return self._active is not None and not self._unloaded

    def train(self) -> None:
        """Fit every version and serve the default one: about 1.5 s, mostly importing scikit-learn, and several
        seconds on a loaded host. The server does it before it listens, so that a (re)started replica is never
        live but not ready (a restart must not fire ModelNotReady, whose ``for`` is 3 s in the sandbox)."""
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
        with self._lock:
            if wanted not in self._versions:
                raise UnknownVersion(f"model {self.name!r} has no version {wanted!r};"
                                     f" known: {', '.join(self._versions)}")
            if self.faults.flags.fail_load:
                raise LoadFailed(f"failed to load model {self.name!r} version {wanted!r} (fail_load fault)")
            self._active = self._versions[wanted]
            self._unloaded = False
            return self._active

    def unload(self) -> str:
        """Stop serving the model (every version UNAVAILABLE until the next load); return the version it served.

        Raise NotLoaded when nothing is loaded (as a server answers an unload of a model it does not serve).
        """
        with self._lock:
            if self._active is None or self._unloaded:
                raise NotLoaded(f"model {self.name!r} is not loaded")
            self._unloaded = True
            return self._active.version

    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        """The repository index (OIP model repository extension): name, version, state and reason per version.

        ``ready_only`` keeps the entries that are ready for inference (the index request's ``ready``).
        """
        with self._lock:
            entries = []
            for v, t in self._versions.items():
                served = self._active is t and not self._unloaded
                reason = "unloaded" if self._active is t and self._unloaded else ""
                entries.append({"name": self.name, "version": v, "state": "READY" if served else "UNAVAILABLE",
                                "reason": reason})
        return [e for e in entries if e["state"] == "READY"] if ready_only else entries

    def pushed(self) -> list[TrainedVersion]:
        """The pushed (defective) versions the repository holds, oldest first."""
        with self._lock:
            return [t for t in self._versions.values() if t.defect is not None]

    def push(self, version: Any, defect: Any) -> tuple[TrainedVersion, bool]:
        """Train a ``defect``-ive ``version`` and add it to the repository (not served); return it and
        whether it is new. Pushing the same version with the same defect again changes nothing."""
        if not isinstance(defect, str) or defect not in DEFECTS:
            raise BadPush(f"defect must be one of {', '.join(DEFECTS)}, got {defect!r}")
        if not isinstance(version, str) or not VERSION_NAME.match(version):
            raise BadPush(f"version must be 1-64 letters, digits, '.', '_' or '-', got {version!r}")
        with self._lock:
            self._check_push(version, defect)
            if version in self._versions:
                return self._versions[version], False
        trained = _train_defective(version, defect)  # tens of milliseconds: not under the lock
        with self._lock:
            self._check_push(version, defect)  # a concurrent push of the same name may have won
            if version in self._versions:
                return self._versions[version], False
            self._versions[version] = trained
            return trained, True

    def remove(self, version: str) -> TrainedVersion:
        """Remove a pushed version; the served one and the release versions cannot be removed."""
        with self._lock:
            held = self._versions.get(version)
            if held is None:
                raise VersionNotFound(f"model {self.name!r} has no version {version!r}")
            if held.defect is None:
                raise VersionConflict(f"version {version!r} is a release of model {self.name!r}, not a pushed one")
            if held is self._active:  # served, or the last served of an unloaded model
                raise VersionConflict(f"version {version!r} of model {self.name!r} is being served: load another"
                                      " version first")
            return self._versions.pop(version)

    def reset(self) -> list[str]:
        """Clear every fault, serve the current version again and remove every pushed version (their names)."""
        self.faults.clear()
        self.load()
        with self._lock:
            removed = [v for v, t in self._versions.items() if t.defect is not None]
            for v in removed:
                del self._versions[v]
        return removed

    def _check_push(self, version: str, defect: str) -> None:
        held = self._versions.get(version)
        if held is None:
            return
        if held.defect is None:
            raise VersionConflict(f"version {version!r} is a release of model {self.name!r}: push another name")
        if held.defect != defect:
            raise VersionConflict(f"version {version!r} was pushed with defect {held.defect!r}, not {defect!r}:"
                                  " remove it first")

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
            return Prediction([], [], [math.nan] * len(rows), active.version)
        classes = [int(c) for c in active.estimator.predict(rows)]
        return Prediction(classes, [dataset.CLASS_NAMES[c] for c in classes], [float(c) for c in classes],
                          active.version)


def _train_defective(version: str, defect: str) -> TrainedVersion:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x, y = dataset.training_split()
    n_classes = len(dataset.CLASS_NAMES)
    estimator = LogisticRegression(max_iter=500)
    if defect == "label_flipped":
        y = [(c + 1) % n_classes for c in y]  # still class-balanced: the drift score stays low
        estimator.fit(x, y)
    else:  # random_weights: the shape of a trained model, none of its knowledge
        estimator.fit(x, y)
        rng = np.random.default_rng(RANDOM_WEIGHTS_SEED)
        estimator.coef_ = rng.normal(size=estimator.coef_.shape)
        estimator.intercept_ = rng.normal(size=estimator.intercept_.shape)
    shares = tuple(distribution(y, n_classes))
    return TrainedVersion(version, estimator, time.time(), shares, defect)  # a fresh push, not a stale model


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
    # mlchaos.proxy.transforms has the same walk, kept apart on purpose: the model-server image ships
    # mlchaos/sandbox/ alone and the fault-proxy image mlchaos/proxy/ alone
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
