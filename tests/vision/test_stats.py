"""vision.stats: critical values and intervals as scipy.stats computes them, sums that merge, z-scores."""
import math

import numpy as np
import pytest
import scipy.stats

from vision.curves import BucketStats
from vision.labels import VALUE_COLUMNS
from vision.stats import (INT_KEYS, SECOND_KEYS, group_sums, mean_ci95, read_mask, t_critical_95, track_seconds,
                          welch_ci95, z_scores)
from vision.table import COLUMNS, empty_columns


def observations(n=400, tracks=7, seconds=12, source="cam", seed=0):
    """Random observation columns: `tracks` faces over `seconds` s, every value uniform, some unread."""
    rng = np.random.default_rng(seed)
    dtypes = empty_columns()
    cols = {c: np.zeros(n, dtypes[c].dtype) for c in COLUMNS}
    cols.update(t=np.sort(rng.uniform(0, seconds, n)), track_id=rng.integers(1, tracks + 1, n),
                source=np.array([source] * n, object))
    for c in VALUE_COLUMNS:
        cols[c] = rng.uniform(0, 1, n).astype(np.float32)
    cols["quality"] = rng.uniform(0, 1, n).astype(np.float32)
    cols["p_neutral"][rng.random(n) < 0.1] = np.nan  # not landmarked
    return cols


def sums(x: np.ndarray) -> tuple[int, float, float]:
    return len(x), float(x.sum()), float((x * x).sum())


def test_t_critical_values_are_scipys_for_every_df():
    df = np.arange(1, 501)
    want = scipy.stats.t.ppf(0.975, df)
    assert np.array_equal(t_critical_95(df), want)
    assert all(t_critical_95(int(d)) == w for d, w in zip(df, want))  # scalars too
    assert t_critical_95(2.5) == scipy.stats.t.ppf(0.975, 2.5)  # Welch's degrees of freedom are real numbers
    assert math.isnan(t_critical_95(0)) and math.isnan(t_critical_95(0.5)) and math.isnan(t_critical_95(-1))
    # what the old table (1.96 past df 30) was off by
    assert t_critical_95(31) == pytest.approx(2.0395, abs=1e-4) and t_critical_95(31) / 1.96 > 1.04


@pytest.mark.parametrize("seed", range(5))
def test_student_interval_equals_scipys(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.4, 0.2, rng.integers(2, 60))
    mean, half = mean_ci95(*sums(x))
    low, high = scipy.stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    assert mean == pytest.approx(x.mean(), rel=1e-12)
    assert half == pytest.approx((high - low) / 2, rel=1e-9)


def test_student_interval_needs_two_faces():
    mean, half = mean_ci95(np.array([0, 1, 2]), np.array([0.0, 0.3, 0.5]), np.array([0.0, 0.09, 0.13]))
    assert np.isnan(mean[0]) and mean[1] == pytest.approx(0.3) and mean[2] == pytest.approx(0.25)
    assert np.isnan(half[0]) and np.isnan(half[1]) and half[2] > 0


@pytest.mark.parametrize("seed", range(10))
def test_welch_interval_equals_scipys(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.5, rng.uniform(0.05, 0.3), rng.integers(2, 40))
    b = rng.normal(0.3, rng.uniform(0.05, 0.3), rng.integers(2, 40))
    result = scipy.stats.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(0.95)
    half = welch_ci95(*sums(a), *sums(b))
    assert half == pytest.approx((high - low) / 2, rel=1e-9)
    assert (low + high) / 2 == pytest.approx(a.mean() - b.mean(), rel=1e-9)


def test_welch_interval_edges():
    # a side with one face: no interval; two constant sides: no spread, a zero half-width
    assert np.isnan(welch_ci95(1, 0.5, 0.25, 3, 1.5, 0.8))
    assert welch_ci95(2, 1.0, 0.5, 3, 0.6, 0.12) == 0.0
    # vectorised over buckets
    got = welch_ci95([2, 3], [1.0, 1.2], [0.5, 0.5], [3, 1], [0.6, 0.2], [0.12, 0.04])
    assert got[0] == 0.0 and np.isnan(got[1])


def test_group_sums_merge_exactly():
    a, b = observations(source="cam1", seed=1), observations(source="cam2", seed=2)
    both = {k: np.concatenate([a[k], b[k]]) for k in a}
    whole = group_sums(both, 1.0, 0.0, 0.3)
    parts = [group_sums(x, 1.0, 0.0, 0.3) for x in (a, b)]
    def by_key(g):
        return {key: tuple(x[i] for x in g[3:]) for i, key in enumerate(zip(*(x.tolist() for x in g[:3])))}

    merged_parts = {**by_key(parts[0]), **by_key(parts[1])}
    assert by_key(whole).keys() == merged_parts.keys()  # disjoint groups: the whole's are the parts'
    for key, values in by_key(whole).items():
        assert all(np.array_equal(x, y) for x, y in zip(values, merged_parts[key]))
    # sums of one group split in time add up to the group's sums
    early, late = ({k: v[m] for k, v in a.items()} for m in (a["t"] < 6, a["t"] >= 6))
    joined = BucketStats(bucket=20.0)
    joined.add_rows(early)
    other = BucketStats(bucket=20.0)
    other.add_rows(late)
    joined.merge(other)
    once = BucketStats(bucket=20.0)
    once.add_rows(a)
    for k, s in once._sums.items():
        assert np.allclose(joined._sums[k], s, rtol=1e-12) and np.array_equal(joined._counts[k], once._counts[k])
    # BucketStats of two sources merge exactly into those of both
    merged, other, together = BucketStats(), BucketStats(), BucketStats()
    merged.add_rows(a)
    other.add_rows(b)
    merged.merge(other)
    together.add_rows(both)
    got, want = merged.curves(), together.curves()
    assert all(np.array_equal(got[c], want[c], equal_nan=True) for c in want)


def test_track_seconds_is_columns():
    cols = observations(seed=3)
    batch = track_seconds(cols, content_offset=0.5, min_quality=0.3)
    assert list(batch) == list(SECOND_KEYS)
    assert all(batch[k].dtype == (np.int64 if k in INT_KEYS else np.float64) for k in SECOND_KEYS)
    assert len({len(v) for v in batch.values()}) == 1
    assert batch["n"].sum() == read_mask(cols, 0.3).sum()
    keys = list(zip(batch["track_id"].tolist(), batch["second"].tolist()))
    assert len(set(keys)) == len(keys) and min(batch["second"]) == -1  # content time: t - 0.5
    assert np.allclose(batch["s_p_happiness"].sum(), cols["p_happiness"][read_mask(cols, 0.3)].sum(dtype=np.float64))
    empty = track_seconds({k: v[:0] for k, v in cols.items()})
    assert list(empty) == list(SECOND_KEYS) and all(len(v) == 0 for v in empty.values())


def test_z_scores():
    own = {0: 0.5, 1: 0.9, 2: 0.4, 3: 0.2}
    others = [{0: 0.3, 1: 0.5, 2: 0.4}, {0: 0.5, 1: 0.7}, {0: 0.4}]
    z = z_scores(own, others)
    assert z["t"] == [0.0, 1.0, 2.0]  # second 3: no other screening has it
    assert z["norm_mean"] == pytest.approx([0.4, 0.6, 0.4])
    assert z["norm_sd"][0] == pytest.approx(0.1) and z["norm_sd"][2] is None  # one other: no SD
    assert z["z"][0] == pytest.approx(1.0) and z["z"][1] == pytest.approx(0.3 / np.std([0.5, 0.7], ddof=1))
    assert z["z"][2] is None
    assert z_scores({0: 1.0}, [{0: 0.5}, {0: 0.5}])["z"] == [None]  # no spread: no z
