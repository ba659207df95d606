import math

import numpy as np
import pytest
import scipy.stats

from vision.curves import BucketStats
from vision.labels import VALUE_COLUMNS
from vision.stats import bucket_index, t_critical_95
from vision.table import COLUMNS, empty_columns


def rows(t, track, happy, source="a"):
    n = len(t)
    cols = empty_columns()
    cols = {c: np.zeros(n, cols[c].dtype) for c in COLUMNS}
    cols.update(t=np.asarray(t, float), track_id=np.asarray(track), source=np.array([source] * n, object),
                p_happiness=np.asarray(happy, np.float32))
    return cols


def test_bucket_index_with_content_offset():
    assert bucket_index(np.array([0.0, 0.99, 1.0, 2.5]), 1.0, 0.0).tolist() == [0, 0, 1, 2]
    assert bucket_index(np.array([10.0, 11.5]), 1.0, 10.0).tolist() == [0, 1]
    assert bucket_index(np.array([9.0]), 1.0, 10.0).tolist() == [-1]


def test_tracks_are_the_units_not_frames():
    s = BucketStats()
    # track 1: 10 samples at 1.0; track 2: 1 sample at 0.0 -> mean over faces is 0.5, not 10/11
    s.add_rows(rows([0.1] * 10 + [0.2], [1] * 10 + [2], [1.0] * 10 + [0.0]))
    c = s.curves()
    assert c["n_faces"].tolist() == [2]
    assert c["p_happiness"][0] == pytest.approx(0.5)
    sd = np.std([1.0, 0.0], ddof=1)
    assert c["p_happiness_ci95"][0] == pytest.approx(scipy.stats.t.ppf(0.975, 1) * sd / math.sqrt(2))  # 12.706


def test_buckets_without_faces_are_zero_not_missing():
    s = BucketStats()
    s.add_frames(np.arange(0, 3, 0.5))
    s.add_rows(rows([0.1, 2.2], [1, 1], [1.0, 0.0]))
    c = s.curves()
    assert c["t"].tolist() == [0, 1, 2]
    assert c["n_faces"].tolist() == [1, 0, 1]
    assert np.isnan(c["p_happiness"][1]) and np.isnan(c["p_happiness_ci95"][0])


def test_merge_equals_adding_everything_to_one():
    a, b, both = BucketStats(), BucketStats(), BucketStats()
    r1 = rows([0.1, 0.4, 1.2], [1, 2, 1], [0.2, 0.8, 0.4], source="cam1")
    r2 = rows([0.3, 1.5], [1, 1], [0.6, 0.9], source="cam2")
    a.add_rows(r1)
    b.add_rows(r2)
    both.add_rows(r1)
    both.add_rows(r2)
    a.merge(b)
    ca, cb = a.curves(), both.curves()
    for k in ca:
        assert np.allclose(ca[k], cb[k], equal_nan=True)
    assert ca["n_faces"].tolist() == [3, 2]  # track 1 of cam1 and track 1 of cam2 are different faces
    with pytest.raises(ValueError):
        a.merge(BucketStats(bucket=2.0))


def test_curve_columns_and_t_critical():
    c = BucketStats(bucket=0.5).curves()
    assert list(c)[:3] == ["t", "n_faces", "n_present"] and len(c) == 3 + 2 * len(VALUE_COLUMNS)
    assert t_critical_95(1) == pytest.approx(12.706, abs=1e-3) and t_critical_95(100) == pytest.approx(1.984, abs=1e-3)
    assert math.isnan(t_critical_95(0))
    with pytest.raises(ValueError):
        BucketStats(bucket=0)


def test_expressions_count_only_read_faces_while_every_present_face_counts():
    # track 1: read (quality 0.9); track 2: present but unreadable (no probabilities, attention 0);
    # track 3: read but below the minimum quality
    cols = rows([0.1, 0.2, 0.3], [1, 2, 3], [1.0, np.nan, 0.0])
    cols["p_neutral"] = np.array([0.0, np.nan, 1.0], np.float32)
    cols["quality"] = np.array([0.9, 0.0, 0.2], np.float32)
    cols["attention"] = np.array([1.0, 0.0, 1.0], np.float32)
    s = BucketStats(min_quality=0.4)
    s.add_rows(cols)
    c = s.curves()
    assert c["n_faces"].tolist() == [1] and c["n_present"].tolist() == [3]
    assert c["p_happiness"][0] == pytest.approx(1.0) and np.isnan(c["p_happiness_ci95"][0])
    assert c["attention"][0] == pytest.approx(2 / 3)
    cov = s.coverage()
    assert (cov["present_track_buckets"], cov["read_track_buckets"], cov["read_samples"]) == (3, 1, 1)
    everything = BucketStats(min_quality=0.0)
    everything.add_rows(cols)
    assert everything.curves()["n_faces"].tolist() == [2]  # the unreadable face never carries an expression
    with pytest.raises(ValueError):
        BucketStats(min_quality=2)
    with pytest.raises(ValueError):
        s.merge(everything)
