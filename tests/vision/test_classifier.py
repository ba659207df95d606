"""The expression classifiers on fixture faces: shapes, batching across a window, and the shipped models."""
import numpy as np
import pytest

from builders import FIXTURES
from vision.capture import Frame, read_image
from vision.labels import CLASSIFIERS, EMOTIONS


@pytest.fixture(scope="module")
def frames():
    from vision.landmarker import Landmarker, LandmarkerOptions
    from vision.registry import model_file

    out = []
    lm = Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode="image"))
    try:
        for name in ("astronaut.jpg", "empty.png", "mirrored.jpg"):
            image = read_image(str(FIXTURES / "images" / name))
            out.append((image, lm.detect(Frame(name, 0, 0.0, image))))
    finally:
        lm.close()
    assert [len(o) for _, o in out] == [1, 0, 1]
    return out


@pytest.fixture(scope="module")
def models():
    from vision.registry import model_file
    from vision.pipeline import CLASSIFIER_MODELS

    return {n: model_file(n) for names in CLASSIFIER_MODELS.values() for n in names}


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_classifier_reads_a_window_in_one_call_like_frame_by_frame(name, frames, models):
    from vision.pipeline import build_classifier

    clf = build_classifier(name, models)
    images, observations = [f[0] for f in frames], [f[1] for f in frames]
    window = clf.classify(images, observations)
    assert len(window[1]) == 0 and window[1] is observations[1]  # no face: handed back as it was
    for (image, obs), got in zip(frames, window):
        if len(obs):
            one = clf(image, obs)
            assert np.allclose(one.probs, got.probs, atol=1e-5) and (one.labels == got.labels).all()
            assert got.probs.shape == (1, 7) and np.allclose(got.probs.sum(axis=1), 1, atol=1e-5)
            assert EMOTIONS[got.labels[0]] == "happiness"  # both fixture faces smile
    assert clf.classify([], []) == []


def test_v2_head_takes_both_cnns_and_sharpness(frames, models):
    from vision.classifier import Fusion2Classifier
    from vision.pipeline import build_classifier

    clf = build_classifier("fusion-v2", models)  # v2: the default until fusion-v6 (models/fusion_head_v6.md)
    assert isinstance(clf, Fusion2Classifier)
    from vision.onnx import registered_session

    n_in = registered_session("fusion_v2").get_inputs()[0].shape[1]
    assert n_in == 52 + 104 + 7 + 7 + 256 + 1


def test_rgb_crops_are_upright_colour_faces(frames):
    import cv2

    from vision.classifier import face_crops, face_crops_rgb, sharpness

    image, obs = frames[0]
    rgb = face_crops_rgb([image], [obs])
    gray = face_crops([image], [obs], size=112)
    assert rgb.shape == (1, 3, 112, 112) and rgb.dtype == np.float32 and 0 <= rgb.min() and rgb.max() <= 255
    # channels are R, G, B: their luma is the gray crop (cut by the same map)
    luma = 0.299 * rgb[0, 0] + 0.587 * rgb[0, 1] + 0.114 * rgb[0, 2]
    assert np.abs(luma - (gray[0, 0] + 1) * 127.5).mean() < 2
    crops = face_crops([image], [obs])
    blurred = cv2.GaussianBlur(crops[0, 0], (0, 0), 2.0)[None, None]
    assert sharpness(blurred)[0] < sharpness(crops)[0] - 0.5


def test_v3_head_reads_crop_and_mirror_image_the_default_the_crop_alone(frames, models):
    from vision.pipeline import build_classifier

    assert build_classifier("fusion-v3", models).flip and not build_classifier("fusion-v2", models).flip


def test_test_time_flip_averages_each_cnn_over_the_crop_and_its_mirror_image(frames, models):
    from vision.classifier import CnnClassifier, FaceApiClassifier, cnn_outputs, face_crops, face_crops_rgb

    cnn, faceapi = CnnClassifier(models["cnn"].path), FaceApiClassifier(models["faceapi"].path)
    images, observations = [f[0] for f in frames], [f[1] for f in frames]
    crops, rgb = face_crops(images, observations), face_crops_rgb(images, observations)
    plain = cnn_outputs(cnn, faceapi, crops, rgb, flip=False)
    mirrored = cnn_outputs(cnn, faceapi, np.ascontiguousarray(crops[..., ::-1]),
                           np.ascontiguousarray(rgb[..., ::-1]), flip=False)
    both = cnn_outputs(cnn, faceapi, crops, rgb, flip=True)
    for a, b, got in zip(plain, mirrored, both):
        assert got.shape == a.shape and np.allclose(got, (a + b) / 2, atol=1e-5)
    assert not np.allclose(plain[2], mirrored[2], atol=1e-3)  # a real face is not its own mirror image
    # a crop that is its own mirror image reads the same with and without the flip
    sym = np.ascontiguousarray((crops + crops[..., ::-1]) / 2)
    sym_rgb = np.ascontiguousarray((rgb + rgb[..., ::-1]) / 2)
    for a, b in zip(cnn_outputs(cnn, faceapi, sym, sym_rgb, flip=False),
                    cnn_outputs(cnn, faceapi, sym, sym_rgb, flip=True)):
        assert np.allclose(a, b, atol=1e-4)


def test_v4_head_adds_the_tuned_face_api_branch_read_in_the_same_call(frames, models):
    from vision.classifier import FaceApiClassifier, face_crops_rgb
    from vision.onnx import registered_session
    from vision.pipeline import build_classifier

    clf = build_classifier("fusion-v4", models)
    assert clf.tuned and not clf.flip and not build_classifier("fusion", models).tuned
    assert registered_session("fusion_v4").get_inputs()[0].shape[1] == 52 + 104 + 7 + 7 + 256 + 1 + 7
    # the tuned model keeps face-api's own outputs unchanged beside its branch
    rgb = face_crops_rgb([f[0] for f in frames], [f[1] for f in frames])
    plain = FaceApiClassifier(models["faceapi"].path).outputs(rgb)
    probs, feats, tuned = FaceApiClassifier(models["faceapi_tuned"].path).tuned_outputs(rgb)
    assert np.allclose(probs, plain[0], atol=1e-6) and np.allclose(feats, plain[1], atol=1e-6)
    assert tuned.shape == (2, 7) and np.allclose(tuned.sum(axis=1), 1, atol=1e-5)


def test_on_the_cpu_the_cnns_read_one_face_per_call_and_give_what_one_call_gives(models):
    from vision.classifier import CnnClassifier, FaceApiClassifier, run_faces

    rng = np.random.default_rng(3)
    cnn, faceapi = CnnClassifier(models["cnn"].path), FaceApiClassifier(models["faceapi"].path)
    assert cnn.faces_per_call == 1 and faceapi.faces_per_call == 1
    gray = rng.uniform(-1, 1, (5, 1, 64, 64)).astype(np.float32)
    rgb = rng.uniform(0, 255, (5, 3, 112, 112)).astype(np.float32)
    for clf, crops, names in ((cnn, gray, ["probs"]), (faceapi, rgb, ["probs", "features"])):
        whole = clf._session.run(names, {"input": crops})
        for per_call in (1, 2, 0):
            got = run_faces(clf._session, names, "input", crops, per_call)
            assert [g.shape for g in got] == [w.shape for w in whole]
            for g, w in zip(got, whole):
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)
    np.testing.assert_allclose(faceapi.outputs(rgb)[1], faceapi._session.run(["features"], {"input": rgb})[0],
                               rtol=0, atol=1e-4)


def test_face_crops_chunks_keep_every_face_in_order():
    from vision.classifier import FaceCrops

    rng = np.random.default_rng(5)
    parts = [FaceCrops(rng.integers(0, 255, (n, 64, 64), dtype=np.uint8),
                       rng.integers(0, 255, (n, 112, 112, 3), dtype=np.uint8)) for n in (3, 0, 9, 1, 4)]
    whole = FaceCrops.join(parts)
    for faces in (1, 2, 4, 17, 100):
        chunks = list(FaceCrops.chunks(parts, faces))
        assert [len(c) for c in chunks[:-1]] == [faces] * (len(chunks) - 1) and 0 < len(chunks[-1]) <= faces
        joined = FaceCrops.join(chunks)
        assert (joined.gray == whole.gray).all() and (joined.colour == whole.colour).all()
    assert list(FaceCrops.chunks([parts[1]], 4)) == []


@pytest.mark.parametrize("name", ["fusion-v2", "fusion-v6"])
def test_a_fusion_head_reads_a_window_in_chunks_as_it_would_whole(name, frames, models, monkeypatch):
    """read_crops turns READ_CHUNK faces at a time into float inputs (a 100-seat window's at once were ~0.7 GB):
    the same readings as the whole window in one chunk."""
    import vision.classifier as vc
    from vision.pipeline import build_classifier

    clf = build_classifier(name, models)
    image, obs = frames[0]
    parts = [clf.cut([image], [obs]) for _ in range(5)]  # five frames of the same face
    whole = clf.read_crops(parts)
    monkeypatch.setattr(vc, "READ_CHUNK", 2)
    np.testing.assert_allclose(clf.read_crops(parts), whole, rtol=0, atol=1e-5)
    assert whole.shape[0] == 5
