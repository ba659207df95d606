"""The venue-camera degradations used to train and evaluate the expression heads."""
import numpy as np
import pytest

degrade = pytest.importorskip("degrade")


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    img = np.full((200, 160, 3), 128, np.uint8)
    img[60:140, 40:120] = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)  # a detailed "face"
    return img


BOX = degrade.FaceBox(40, 50, 80, 100, eyes_y=85, mouth_y=130)


def detail(img):
    return float(np.abs(np.diff(img[60:140, 40:120].astype(np.float32), axis=1)).mean())


def test_venue_is_deterministic_for_a_seed_and_differs_between_seeds(photo):
    a = degrade.venue(photo, BOX, np.random.default_rng([3, 0]))
    b = degrade.venue(photo, BOX, np.random.default_rng([3, 0]))
    c = degrade.venue(photo, BOX, np.random.default_rng([3, 1]))
    assert a.shape == photo.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    before = photo.copy()
    degrade.venue(photo, BOX, np.random.default_rng(5))
    assert np.array_equal(photo, before)  # the input is never changed


def test_smaller_faces_keep_less_detail(photo):
    full, px48, px32 = detail(photo), detail(degrade.fixed_size(photo, BOX, 48)), detail(degrade.fixed_size(photo, BOX, 32))
    assert full > px48 > px32
    assert degrade.fixed_size(photo, BOX, 32).shape == photo.shape
    assert np.array_equal(degrade.fixed_size(photo, BOX, 32), degrade.fixed_size(photo, BOX, 32))
    assert degrade.shrink(photo, 32, BOX.w).shape[:2] == (80, 64)


def test_low_light_darkens_and_adds_noise(photo):
    flat = np.full((50, 50, 3), 200, np.uint8)
    dark = degrade.low_light(flat, gain=0.3, gamma=1.0, noise=4.0, rng=np.random.default_rng(0))
    assert 50 < dark.mean() < 70 and dark.std() > 2
    again = degrade.low_light(flat, gain=0.3, gamma=1.0, noise=4.0, rng=np.random.default_rng(0))
    assert np.array_equal(dark, again)


def test_motion_blur_keeps_mean_and_smooths_along_its_direction(photo):
    blurred = degrade.motion_blur(photo, 5, 0.0)
    assert abs(blurred.astype(float).mean() - photo.astype(float).mean()) < 2
    assert detail(blurred) < detail(photo) / 2


def test_occlusion_covers_only_its_part(photo):
    mouth = degrade.occlude(photo, BOX, "mouth", 0)
    eyes = degrade.occlude(photo, BOX, "eyes", 0)
    assert (mouth[125:135, 60:100] == 0).all() and np.array_equal(mouth[80:90], photo[80:90])
    assert (eyes[82:88, 60:100] == 0).all() and np.array_equal(eyes[125:135], photo[125:135])
    with pytest.raises(ValueError):
        degrade.occlude(photo, BOX, "nose", 0)


def test_jpeg_round_trip_keeps_shape_and_is_close(photo):
    out = degrade.jpeg(photo, 90)
    assert out.shape == photo.shape and np.abs(out.astype(int) - photo).mean() < 20
