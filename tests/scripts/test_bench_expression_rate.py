"""scripts/bench_expression_rate.py: the frame-sampling noise it prints beside each rate's curve difference."""
import numpy as np

from bench_expression_rate import PROBS, analyse, curves
from builders import FIXTURES


def test_half_curves_read_only_their_own_frames():
    cols, faces, report = analyse(FIXTURES / "two_faces.mp4", 0.0)
    assert faces == len(cols["t"]) > 0
    full = curves(cols, report, 1.0)
    frames = np.asarray(report.analysed_t, np.float64)
    odd = np.searchsorted(frames, np.asarray(cols["t"], np.float64)) % 2 == 1
    assert 0 < odd.sum() < len(odd)
    spoiled = {k: np.array(v, copy=True) for k, v in cols.items()}
    for p in PROBS:
        spoiled[p][odd] = np.where(np.isfinite(spoiled[p][odd]), 1.0 / len(PROBS), np.nan)
    even_before, even_after = curves(cols, report, 1.0, 0), curves(spoiled, report, 1.0, 0)
    assert even_before.shape == full.shape
    np.testing.assert_array_equal(even_before, even_after)  # the even half never sees the odd frames' rows
    assert not np.allclose(curves(cols, report, 1.0, 1), curves(spoiled, report, 1.0, 1), equal_nan=True)
