"""The stored iris splits (mlchaos/sandbox/iris_splits.json) are exactly what scikit-learn computes."""

from mlchaos.sandbox import dataset


def test_stored_splits_equal_the_splits_scikit_learn_computes() -> None:
    computed = dataset.computed_splits()
    assert dataset.training_split() == computed["training"]
    assert dataset.holdout_split() == computed["holdout"]
    assert dataset.older_training_split() == computed["older_training"]
    assert (len(computed["training"][0]), len(computed["holdout"][0]), len(computed["older_training"][0])) == (
        105, 45, 52)


def test_reading_the_splits_needs_no_scikit_learn() -> None:
    import subprocess
    import sys

    code = ("import sys; from mlchaos.sandbox import dataset; dataset.holdout_split(); dataset.training_split();"
            " print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'numpy', 'scipy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_returned_split_is_a_copy() -> None:
    x, y = dataset.holdout_split()
    x[0][0] = -1.0
    y[0] = 99
    assert dataset.holdout_split()[0][0][0] != -1.0 and dataset.holdout_split()[1][0] != 99
