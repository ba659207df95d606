"""Per-viewer smoothing and baselines (vision.reactions)."""
import numpy as np
import pytest

from builders import run_cli
from vision.labels import DELTA_BASES, DELTA_COLUMNS
from vision.reactions import ReactionOptions, Reactions


def rows(t, values, track=1, source="cam"):
    """Table columns for one track: every value in DELTA_BASES follows `values` (offset per column)."""
    t = np.asarray(t, np.float64)
    cols = {"source": np.full(len(t), source, object), "track_id": np.full(len(t), track, np.int64), "t": t}
    for j, c in enumerate(DELTA_BASES):
        cols[c] = (np.asarray(values, np.float64) + 0.01 * j).astype(np.float32)
    return cols


def concat(*parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_smoothing_is_an_exponential_filter_in_seconds_not_frames():
    # a step from 0 to 1 (baseline: the 0 at t = 0): after dt seconds the reaction has moved 1 - exp(-dt / tau)
    out = Reactions(ReactionOptions(smooth_s=2.0, baseline_s=0.5)).update(rows([0, 1, 3], [0, 1, 1]))
    first = 1 - np.exp(-0.5)
    expected = [0, first, first + (1 - first) * (1 - np.exp(-1.0))]
    np.testing.assert_allclose(out["p_anger_delta"], expected, atol=1e-6)
    np.testing.assert_allclose(out["p_anger"], [0, 1, 1], atol=1e-6)  # the reading itself stays as read
    # the same step sampled 4x as often reaches the same value at the same time
    dense = Reactions(ReactionOptions(smooth_s=2.0, baseline_s=0.1)).update(
        rows(np.arange(0, 3.01, 0.25), [0] + [1] * 12))
    assert dense["p_anger_delta"][-1] == pytest.approx(1 - np.exp(-1.5), abs=1e-6)
    raw = Reactions(ReactionOptions(smooth_s=0.0, baseline_s=0.1)).update(rows([0, 1, 3], [0, 1, 0.5]))
    np.testing.assert_allclose(raw["p_anger_delta"], [0, 1, 0.5], atol=1e-6)


def test_baseline_is_the_median_of_the_opening_window_and_removes_a_resting_face():
    # a viewer whose resting face reads 0.4, with a short reaction to 0.9 after the opening 10 s
    t = np.arange(0, 30, 0.5)
    v = np.where((t >= 20) & (t < 23), 0.9, 0.4)
    out = Reactions(ReactionOptions(smooth_s=0.0, baseline_s=10.0)).update(rows(t, v))
    d = out["p_anger_delta"]
    assert np.allclose(d[t < 20], 0.0, atol=1e-6)  # the resting face reads as no reaction
    assert np.allclose(d[(t >= 20) & (t < 23)], 0.5, atol=1e-6)
    # a value of its own baseline per column (the columns differ by 0.01 each)
    assert np.allclose(out["valence_delta"][t < 20], 0.0, atol=1e-6)
    assert set(DELTA_COLUMNS) <= set(out)


def test_the_opening_window_is_causal_and_frozen_after():
    t = np.arange(0, 6, 1.0)
    v = [0.1, 0.3, 0.2, 0.9, 0.9, 0.9]  # window 2 s: samples at 0, 1, 2 -> median 0.2, then frozen
    out = Reactions(ReactionOptions(smooth_s=0.0, baseline_s=2.0)).update(rows(t, v))
    np.testing.assert_allclose(out["p_anger_delta"], [0.0, 0.1, 0.0, 0.7, 0.7, 0.7], atol=1e-6)


def test_fed_in_pieces_it_gives_what_it_gives_at_once():
    # what `audience live` (second by second) and `analyze` (the whole source) both rely on
    rng = np.random.default_rng(3)
    a = rows(np.arange(0, 20, 0.5), rng.random(40), track=1)
    b = rows(np.arange(0.25, 20, 0.5), rng.random(40), track=2)
    everything = concat(a, b)
    order = np.argsort(everything["t"], kind="stable")
    everything = {k: v[order] for k, v in everything.items()}
    once = Reactions().update(everything)
    live = Reactions()
    pieces = [live.update({k: v[(everything["t"] >= s) & (everything["t"] < s + 1)] for k, v in everything.items()})
              for s in range(20)]
    for c in DELTA_COLUMNS:
        np.testing.assert_array_equal(np.concatenate([p[c] for p in pieces]), once[c])


def test_tracks_and_sources_are_separate_and_untracked_or_unread_rows_pass():
    cols = concat(rows([0, 1], [0.2, 0.2], track=1, source="a"), rows([0, 1], [0.8, 0.8], track=1, source="b"),
                  rows([0], [0.5], track=-1))
    cols["p_fear"] = cols["p_fear"].copy()
    cols["p_fear"][1] = np.nan  # an expression not read on this row (e.g. a face too small to read)
    out = Reactions(ReactionOptions(smooth_s=1.0)).update(cols)
    assert np.allclose(out["p_anger_delta"][:4], 0.0, atol=1e-6)  # each its own baseline
    assert np.isnan(out["p_anger_delta"][4]) and out["p_anger"][4] == pytest.approx(0.5)  # no track: no reaction
    assert np.isnan(out["p_fear"][1]) and np.isnan(out["p_fear_delta"][1])
    assert out["p_fear_delta"][0] == pytest.approx(0.0, abs=1e-6)
    assert cols["p_anger"][1] == pytest.approx(0.2)  # the input is left as it was


def test_options_are_checked():
    for bad in ({"smooth_s": -1}, {"baseline_s": 0}, {"smooth_s": float("nan")}, {"baseline_s": float("inf")}):
        with pytest.raises(ValueError):
            ReactionOptions(**bad)


def test_cli_rejects_a_negative_smoothing_in_one_line(tmp_path):
    r = run_cli("analyze", "x.mp4", "--out", tmp_path, "--smooth", "-1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--smooth" in r.stderr
