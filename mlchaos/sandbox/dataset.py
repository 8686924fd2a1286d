"""The bundled iris data set, split deterministically into training and holdout rows.

Computed from scikit-learn's packaged copy (no download is ever needed) and kept in
``iris_splits.json`` beside this module, so a runner's probes and the traffic generator read the
rows without importing scikit-learn (about a second per process, several on a loaded host).
``python -m mlchaos.sandbox.dataset --write`` recomputes the file; a unit test checks it
against scikit-learn.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

CLASS_NAMES: tuple[str, ...] = ("setosa", "versicolor", "virginica")
FEATURE_NAMES: tuple[str, ...] = (
    "sepal_length_cm",
    "sepal_width_cm",
    "petal_length_cm",
    "petal_width_cm",
)
N_FEATURES = len(FEATURE_NAMES)

Split = tuple[list[list[float]], list[int]]


SPLITS_FILE = Path(__file__).with_name("iris_splits.json")


@lru_cache(maxsize=1)
def _stored() -> dict[str, Split]:
    data = json.loads(SPLITS_FILE.read_text())
    return {name: (data[name]["x"], data[name]["y"]) for name in ("training", "holdout", "older_training")}


def computed_splits() -> dict[str, Split]:
    """The three splits computed with scikit-learn (what ``iris_splits.json`` holds)."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    data = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, random_state=42, stratify=data.target
    )
    training = ([[float(v) for v in row] for row in x_train], [int(v) for v in y_train])
    x_old, _, y_old, _ = train_test_split(training[0], training[1], train_size=0.5, random_state=7,
                                          stratify=training[1])
    return {
        "training": training,
        "holdout": ([[float(v) for v in row] for row in x_test], [int(v) for v in y_test]),
        "older_training": ([list(r) for r in x_old], [int(v) for v in y_old]),
    }


def write_splits(path: Path = SPLITS_FILE) -> None:
    """Recompute the splits with scikit-learn and write them to ``path``."""
    splits = computed_splits()
    data = {name: {"x": x, "y": y} for name, (x, y) in splits.items()}
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")


def training_split() -> Split:
    """Return the training rows (105 of 150) as (features, labels)."""
    x, y = _stored()["training"]
    return [list(r) for r in x], list(y)


def holdout_split() -> Split:
    """Return the holdout rows (45 of 150) as (features, labels)."""
    x, y = _stored()["holdout"]
    return [list(r) for r in x], list(y)


def older_training_split() -> Split:
    """Half of the training rows (52 of 105, stratified): what the previous model version was trained on."""
    x, y = _stored()["older_training"]
    return [list(r) for r in x], list(y)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m mlchaos.sandbox.dataset --write")
    write_splits()
    print(f"wrote {SPLITS_FILE}")
