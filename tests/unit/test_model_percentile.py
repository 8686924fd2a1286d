"""The latency probe's percentile: linear interpolation between the closest ranks (numpy's default)."""

from __future__ import annotations

import pytest

from drivers.model.probes import _percentile

TIMINGS = [12.0, 3.0, 7.0, 5.0, 9.0]  # milliseconds, in the order the calls came back


@pytest.mark.parametrize(("q", "expected"), [(0, 3.0), (25, 5.0), (50, 7.0), (90, 10.8), (100, 12.0)])
def test_percentiles_interpolate_like_numpy(q, expected):
    assert _percentile(TIMINGS, q) == pytest.approx(expected)


def test_a_higher_percentile_of_one_sample_is_never_lower():
    values = [float(v) for v in (31, 4, 15, 9, 26, 5, 35, 8, 9, 7, 93, 2, 38, 4, 62)]
    found = [_percentile(values, q) for q in range(0, 101, 5)]
    assert found == sorted(found)


def test_one_value_is_every_percentile():
    assert {_percentile([4.2], q) for q in (1, 50, 95, 100)} == {4.2}
