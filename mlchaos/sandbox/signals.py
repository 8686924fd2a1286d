"""The model server's ML signals: its Prometheus metrics and the prediction-drift score.

:func:`psi` is the population stability index of the classes predicted over a sliding
window (:class:`PredictionWindow`) against the class distribution of the training split:

    PSI = sum over classes i of (a_i - e_i) * ln(a_i / e_i)

with ``a_i`` the share of class i among the window's predictions and ``e_i`` its share
in the training labels. A class never predicted in the window (an empty bin) would make
``ln(0)`` infinite, so every share is floored at :data:`PSI_EPSILON` (1e-4) before the
sum: one class missing from balanced 3-class traffic then scores about 2.8, all traffic
in one class about 6.1 (a usual alarm line is 0.2). Until the window holds
:data:`MIN_WINDOW` predictions the score is 0 (too few samples to mean anything), and
``model_prediction_drift_window_predictions`` says how many it was computed from.

Online accuracy: an infer request that carries an OIP ``"id"`` has its predicted classes
remembered (:class:`PredictionLog`, the most recent :data:`MAX_REMEMBERED_IDS` ids); feedback
naming that id is compared with them once, counted in ``model_feedback_matched_total`` and
``model_feedback_correct_total``.

:class:`Signals` is the bookkeeping the HTTP layer calls (no HTTP in here): every
labelled series is created up front, so a counter that was never incremented is still
exported as 0 and ``rate()`` / ``increase()`` see it from the first scrape.
"""

from __future__ import annotations

import math
import threading
from collections import Counter as Tally
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where the metrics are built: a driver reading this module's helpers never needs it
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PSI_EPSILON = 1e-4
WINDOW_SIZE = 100
MIN_WINDOW = 50
# reasons an infer request is rejected (the `reason` label of model_invalid_inputs_total)
INVALID_REASONS = ("nan", "out_of_range", "wrong_shape", "wrong_datatype", "malformed", "malformed_json", "too_large")
MAX_REMEMBERED_IDS = 10_000  # request ids whose predictions wait for feedback
MAX_REMEMBERED_ROWS = 1_000_000  # predicted classes held in all (a batch holds up to 10,000 rows)
MAX_ID_LENGTH = 256  # a longer request id is echoed but not remembered


def distribution(labels: Iterable[int], n_classes: int) -> list[float]:
    """The share of each class 0..n_classes-1 among ``labels`` (all zeros when empty)."""
    tally = Tally(labels)
    total = sum(tally.values())
    return [tally.get(c, 0) / total if total else 0.0 for c in range(n_classes)]


def psi(actual: Sequence[float], expected: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of ``actual`` shares against ``expected`` shares (empty bins floored)."""
    if len(actual) != len(expected):
        raise ValueError(f"{len(actual)} actual bins but {len(expected)} expected")
    total = 0.0
    for a, e in zip(actual, expected, strict=True):
        a, e = max(a, epsilon), max(e, epsilon)
        total += (a - e) * math.log(a / e)
    return total


class PredictionWindow:
    """The last ``size`` predicted classes and their PSI against a reference distribution (thread-safe)."""

    def __init__(self, reference: Sequence[float], size: int = WINDOW_SIZE, min_size: int = MIN_WINDOW) -> None:
        if size < 1 or not 1 <= min_size <= size:
            raise ValueError(f"need 1 <= min_size <= size, got {min_size}, {size}")
        self._lock = threading.Lock()
        self._classes: deque[int] = deque(maxlen=size)
        self.reference = list(reference)
        self.min_size = min_size

    def add(self, classes: Iterable[int]) -> None:
        with self._lock:
            self._classes.extend(classes)

    def reset(self, reference: Sequence[float] | None = None) -> None:
        """Forget every prediction (and switch to a new reference distribution if given)."""
        with self._lock:
            self._classes.clear()
            if reference is not None:
                self.reference = list(reference)

    def __len__(self) -> int:
        return len(self._classes)

    def score(self) -> float:
        """PSI of the window against the reference; 0 while the window holds fewer than ``min_size``."""
        with self._lock:
            if len(self._classes) < self.min_size:
                return 0.0
            return psi(distribution(self._classes, len(self.reference)), self.reference)


class PredictionLog:
    """Predicted classes by request id, for matching feedback later (bounded, thread-safe).

    Holds the most recent ``max_ids`` ids and at most ``max_rows`` classes in all; the oldest
    go first. Classes are stored one byte each (class indices below 256).
    """

    def __init__(self, max_ids: int = MAX_REMEMBERED_IDS, max_rows: int = MAX_REMEMBERED_ROWS) -> None:
        if max_ids < 1 or max_rows < 1:
            raise ValueError(f"need max_ids >= 1 and max_rows >= 1, got {max_ids}, {max_rows}")
        self._lock = threading.Lock()
        self._by_id: OrderedDict[str, bytes] = OrderedDict()
        self._rows = 0
        self.max_ids, self.max_rows = max_ids, max_rows

    def remember(self, request_id: str, classes: Sequence[int]) -> bool:
        """Remember the classes predicted for ``request_id`` (a reused id replaces its entry); False if not kept."""
        if len(request_id) > MAX_ID_LENGTH or not 1 <= len(classes) <= self.max_rows:
            return False
        packed = bytes(classes)
        with self._lock:
            old = self._by_id.pop(request_id, None)
            self._rows -= len(old) if old is not None else 0
            self._by_id[request_id] = packed
            self._rows += len(packed)
            while len(self._by_id) > self.max_ids or self._rows > self.max_rows:
                _, dropped = self._by_id.popitem(last=False)
                self._rows -= len(dropped)
        return True

    def match(self, request_id: str, labels: Sequence[int]) -> tuple[int, int]:
        """(matched, correct) for true ``labels`` of ``request_id``; (0, 0) for an unknown id or a count mismatch.

        A match forgets the id (each prediction is matched once); a count mismatch keeps it.
        """
        with self._lock:
            predicted = self._by_id.get(request_id)
            if predicted is None or len(predicted) != len(labels):
                return 0, 0
            del self._by_id[request_id]
            self._rows -= len(predicted)
        return len(labels), sum(p == t for p, t in zip(predicted, labels, strict=True))

    def clear(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._rows = 0

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def rows(self) -> int:
        return self._rows


@dataclass
class Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    predictions: Counter
    invalid_inputs: Counter
    info: Gauge
    ready: Gauge
    trained_at: Gauge
    non_finite: Counter
    awaiting_feedback: Counter
    feedback: Counter
    feedback_at: Gauge
    feedback_matched: Counter
    feedback_correct: Counter
    load_failures: Counter
    drift: Gauge
    drift_window: Gauge

    @classmethod
    def create(cls) -> Metrics:
        """Build a fresh registry holding every metric the server exports."""
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        reg = CollectorRegistry()

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, registry=reg)

        def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
            return Gauge(name, doc, labels, registry=reg)

        return cls(
            registry=reg,
            requests=counter("model_requests", "HTTP requests by endpoint and status code",
                             ["model", "endpoint", "code"]),
            latency=Histogram("model_inference_duration_seconds", "Time spent in model.predict (seconds)",
                              ["model"], buckets=LATENCY_BUCKETS, registry=reg),
            predictions=counter("model_predictions", "Predicted rows by class", ["model", "class_name"]),
            invalid_inputs=counter("model_invalid_inputs", "Rejected infer requests by reason", ["model", "reason"]),
            info=gauge("model_info", "1 for the model version being served", ["model", "version"]),
            ready=gauge("model_ready", "1 when the model can serve predictions", ["model"]),
            trained_at=gauge("model_trained_timestamp_seconds", "Unix time the served version was trained",
                             ["model"]),
            non_finite=counter("model_non_finite_outputs", "Output values that were NaN or infinite", ["model"]),
            awaiting_feedback=counter("model_predictions_awaiting_feedback",
                                      "Predicted rows of infer requests naming an OIP id: a client in a feedback loop"
                                      " will send their true labels", ["model"]),
            feedback=counter("model_feedback_events", "True labels received on the feedback endpoint", ["model"]),
            feedback_at=gauge("model_feedback_last_timestamp_seconds", "Unix time of the last feedback event",
                              ["model"]),
            feedback_matched=counter("model_feedback_matched",
                                     "True labels matched to a remembered prediction (feedback naming a request id)",
                                     ["model"]),
            feedback_correct=counter("model_feedback_correct",
                                     "Matched true labels the prediction got right", ["model"]),
            load_failures=counter("model_load_failures", "Repository loads of a model version that failed",
                                  ["model"]),
            drift=gauge("model_prediction_drift_psi",
                        "PSI of the predicted classes in the recent window against the training classes", ["model"]),
            drift_window=gauge("model_prediction_drift_window_predictions",
                               "Predictions the drift score was computed from", ["model"]),
        )


class Signals:
    """Bookkeeping of one model's signals: what the HTTP layer records, as metrics and drift window."""

    def __init__(self, model: str, class_names: Sequence[str], reference: Sequence[float],
                 metrics: Metrics | None = None, window: PredictionWindow | None = None,
                 log: PredictionLog | None = None) -> None:
        self.model = model
        self.class_names = tuple(class_names)
        self.metrics = metrics if metrics is not None else Metrics.create()
        self.window = window if window is not None else PredictionWindow(reference)
        self.log = log if log is not None else PredictionLog()
        m = self.metrics
        for name in self.class_names:
            m.predictions.labels(model, name)
        for reason in INVALID_REASONS:
            m.invalid_inputs.labels(model, reason)
        m.non_finite.labels(model)
        m.awaiting_feedback.labels(model)
        m.feedback.labels(model)
        m.feedback_at.labels(model).set(0)
        m.feedback_matched.labels(model)
        m.feedback_correct.labels(model)
        m.load_failures.labels(model)
        m.ready.labels(model).set(0)
        self._publish_drift()
        self._version: str | None = None

    def predicted(self, classes: Sequence[int], request_id: str | None = None) -> None:
        """Count predicted classes; remember them under ``request_id`` (when given) for feedback."""
        for c in classes:
            self.metrics.predictions.labels(self.model, self.class_names[c]).inc()
        self.window.add(classes)
        self._publish_drift()
        if request_id is not None:
            self.log.remember(request_id, classes)
            self.metrics.awaiting_feedback.labels(self.model).inc(len(classes))

    def load_failed(self) -> None:
        self.metrics.load_failures.labels(self.model).inc()

    def invalid(self, reason: str) -> None:
        self.metrics.invalid_inputs.labels(self.model, reason).inc()

    def non_finite(self, count: int) -> None:
        self.metrics.non_finite.labels(self.model).inc(count)

    def feedback(self, count: int, now: float) -> None:
        self.metrics.feedback.labels(self.model).inc(count)
        self.metrics.feedback_at.labels(self.model).set(now)

    def match(self, request_id: str | None, labels: Sequence[int]) -> int:
        """Compare true ``labels`` with the predictions remembered for ``request_id``; return how many matched."""
        if request_id is None:
            return 0
        matched, correct = self.log.match(request_id, labels)
        if matched:
            self.metrics.feedback_matched.labels(self.model).inc(matched)
            self.metrics.feedback_correct.labels(self.model).inc(correct)
        return matched

    def serving(self, version: str, trained_at: float, ready: bool, reference: Sequence[float] | None = None) -> None:
        """Publish the served version, its training time and readiness; a new version starts a fresh window."""
        m = self.metrics
        if version != self._version:
            if self._version is not None:
                m.info.remove(self.model, self._version)
            self.window.reset(reference)
            self._version = version
            self._publish_drift()
        m.info.labels(self.model, version).set(1)
        m.trained_at.labels(self.model).set(trained_at)
        m.ready.labels(self.model).set(1 if ready else 0)

    def _publish_drift(self) -> None:
        self.metrics.drift.labels(self.model).set(self.window.score())
        self.metrics.drift_window.labels(self.model).set(len(self.window))
