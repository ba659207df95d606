"""scripts/serving_path.py: the venue copy kept small, shown in a dim frame, read through the audience scene."""
from pathlib import Path

import cv2
import numpy as np
import pytest

t = pytest.importorskip("serving_path")
degrade = pytest.importorskip("degrade")

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "images"
BOX = degrade.FaceBox(40, 50, 80, 100, eyes_y=85, mouth_y=130)


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    img = np.full((200, 160, 3), 128, np.uint8)
    img[60:140, 40:120] = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)
    return img


def test_the_small_copy_is_the_venue_copy_before_it_is_restored(photo):
    for seed in range(6):  # occluded or not, dim or not, blurred or not: the same draws either way
        small = t.venue_small(photo, BOX, np.random.default_rng([seed, 0]))
        restored = degrade.venue(photo, BOX, np.random.default_rng([seed, 0]))
        assert 24 * 160 / 80 - 1 <= small.shape[1] <= 64 * 160 / 80 + 1  # the face 24-64 px wide
        assert np.array_equal(degrade.restore(small, photo.shape), restored)
    assert degrade.restore(photo[:2, :2], (4, 4, 3)).shape == (4, 4, 3)  # restore itself is left as it was


def test_the_frame_holds_the_copy_at_its_centre_on_a_dimmer_background(photo):
    small = t.venue_small(photo, BOX, np.random.default_rng(1))
    frame = t.in_frame(small, np.random.default_rng(2))
    h, w = small.shape[:2]
    assert frame.shape == (max(240, 3 * h), max(320, 3 * w), 3) and frame.dtype == np.uint8
    y0, x0 = (frame.shape[0] - h) // 2, (frame.shape[1] - w) // 2
    assert np.array_equal(frame[y0:y0 + h, x0:x0 + w], small)
    assert frame[:10, :10].mean() < small[0].mean()
    big = t.in_frame(np.zeros((120, 150, 3), np.uint8), np.random.default_rng(0))
    assert big.shape == (360, 450, 3)


def test_head_inputs_stand_in_for_a_condition():
    x, found = np.ones((3, t.WIDTH), np.float32), np.array([True, False, True])
    cond = t.HeadInputs(x, found)
    assert t.WIDTH == 555
    assert cond.v5_features(flip=True, fer_flip=False) is x and cond.found is found


def test_a_face_in_a_frame_is_read_through_the_audience_scene_with_the_shipped_heads_inputs(tmp_path):
    face = cv2.imread(str(FIXTURES / "astronaut.jpg"))
    small = cv2.resize(face, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "face.png"), t.in_frame(small, np.random.default_rng(0)))
    x, found, px = t.read_through_scene([tmp_path / "face.png", None, FIXTURES / "empty.png"])
    assert found.tolist() == [True, False, False]
    assert x.shape == (3, 555) and np.isfinite(x).all()
    assert np.abs(x[0]).sum() > 0 and not x[1:].any() and px[0] > 0


def test_each_photo_gives_its_copies_and_the_face_width_in_them():
    rows = [(FIXTURES / "astronaut.jpg", 0), (FIXTURES / "missing.jpg", 0)]
    got = list(t.small_copies(rows, 2))
    assert [(i, k) for i, k, _, _ in got] == [(0, 0), (0, 1)]  # the unreadable photo gives none
    for _, _, small, width in got:
        assert degrade.FACE_PX[0] - 1 <= width <= degrade.FACE_PX[1] + 1  # the venue recipe's 24-64 px face
        assert small.dtype == np.uint8 and small.shape[2] == 3
    assert got[0][3] != got[1][3]  # each copy draws its own size


def test_render_writes_each_copy_in_its_frame_and_returns_the_face_widths(tmp_path):
    rows = [(FIXTURES / "astronaut.jpg", 0), (FIXTURES / "missing.jpg", 0)]
    widths = t.render(rows, tmp_path, 2)
    assert widths.shape == (2, 2) and np.isnan(widths[:, 1]).all()
    assert widths[:, 0].tolist() == [width for _, _, _, width in t.small_copies(rows, 2)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0_0.png", "0_1.png"]


def _draws(n, bias, rng):
    """n rows of a calibrated 7-class reading and labels drawn from it with `bias` added to its log-probabilities."""
    from scipy.special import log_softmax

    logp = log_softmax(rng.normal(0, 1.5, (n, 7)), axis=1)
    shifted = np.exp(log_softmax(logp + bias, axis=1))
    y = np.array([rng.choice(7, p=p) for p in shifted])
    return logp, y


def test_band_biases_recover_a_known_shift_and_by_band_reports_before_and_after():
    tsp = pytest.importorskip("try_serving_path")
    rng = np.random.default_rng(0)
    bias = np.array([0.0, 0.8, 0.0, -0.5, 0.0, 0.0, 0.6])
    logp, y = _draws(4000, bias, rng)
    fitted = tsp.band_biases(logp, y, l2=0.0)
    assert np.abs((fitted - fitted.mean()) - (bias - bias.mean())).max() < 0.15  # up to a constant
    shrunk = tsp.band_biases(logp, y, l2=4000.0)
    assert np.abs(shrunk).sum() < np.abs(fitted).sum()

    n = 1000  # two copies of n photos, the small band shifted, the large one as read
    y_photos = rng.integers(0, 7, n)
    split = [(np.nonzero(np.arange(n) % 5 != f)[0], np.nonzero(np.arange(n) % 5 == f)[0]) for f in range(5)]
    probs, found, width = [], [], []
    for copy in range(2):
        w = rng.uniform(24, 64, n)
        z = rng.normal(0, 1, (n, 7)) + 2.0 * np.eye(7)[y_photos] + np.where(w[:, None] < 32, bias, 0)
        probs.append(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))
        found.append(np.ones(n, bool))
        width.append(w)
    bands = tsp.by_band(probs, y_photos, found, width, split, l2=1.0)
    assert list(bands) == [(24, 32), (32, 40), (40, 48), (48, 65)]
    n_small, before, after = bands[(24, 32)]
    assert n_small == sum(int((w < 32).sum()) for w in width)
    assert after[2] < before[2] and after[3] < before[3]  # the shifted band: the bias fixes NLL and calibration


def test_valence_max_is_happiness_minus_the_largest_negative_and_by_class_reports_both():
    tsp = pytest.importorskip("try_serving_path")
    probs = np.array([[0.1, 0.2, 0.0, 0.5, 0.1, 0.0, 0.1],    # anger, disgust, fear, happiness, sadness, ...
                      [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                      [0.3, 0.3, 0.0, 0.0, 0.3, 0.0, 0.1]])
    assert np.allclose(tsp.valence_max(probs), [0.5 - 0.2, 0.0, -0.3])
    y = np.array([3, 6, 0])
    out = tsp.valence_by_class(probs, y, np.array([True, True, True]))
    assert set(out) == {"sum (ours)", "max (FaceReader)"}
    _, means = out["sum (ours)"]
    assert np.isclose(means[3], 0.5 - 0.4) and np.isclose(means[6], 0.0) and np.isclose(means[0], -0.9)
    corr, means = out["max (FaceReader)"]
    assert np.isclose(means[0], -0.3) and -1 <= corr <= 1
