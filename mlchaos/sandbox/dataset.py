"""The bundled iris data set, split deterministically into training and holdout rows.

Loaded from scikit-learn's packaged copy: no download is ever needed.
"""

from __future__ import annotations

from functools import lru_cache

CLASS_NAMES: tuple[str, ...] = ("setosa", "versicolor", "virginica")
FEATURE_NAMES: tuple[str, ...] = (
    "sepal_length_cm",
    "sepal_width_cm",
    "petal_length_cm",
    "petal_width_cm",
)
N_FEATURES = len(FEATURE_NAMES)

Split = tuple[list[list[float]], list[int]]


@lru_cache(maxsize=1)
def _splits() -> tuple[Split, Split]:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    data = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, random_state=42, stratify=data.target
    )
    return (
        ([[float(v) for v in row] for row in x_train], [int(v) for v in y_train]),
        ([[float(v) for v in row] for row in x_test], [int(v) for v in y_test]),
    )


def training_split() -> Split:
    """Return the training rows (105 of 150) as (features, labels)."""
    x, y = _splits()[0]
    return [list(r) for r in x], list(y)


def holdout_split() -> Split:
    """Return the holdout rows (45 of 150) as (features, labels)."""
    x, y = _splits()[1]
    return [list(r) for r in x], list(y)


@lru_cache(maxsize=1)
def _older_split() -> Split:
    from sklearn.model_selection import train_test_split

    x, y = _splits()[0]
    x_old, _, y_old, _ = train_test_split(x, y, train_size=0.5, random_state=7, stratify=y)
    return [list(r) for r in x_old], [int(v) for v in y_old]


def older_training_split() -> Split:
    """Half of the training rows (52 of 105, stratified): what the previous model version was trained on."""
    x, y = _older_split()
    return [list(r) for r in x], list(y)
