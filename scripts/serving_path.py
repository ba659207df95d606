"""The shared photos read the way an audience is read ("serving path"): training and evaluation data for the heads.

The heads were first trained on readings taken the photo way (`expression_data`: the MediaPipe landmarker on the
whole photo; a venue copy shrunk to a 24-64 px face and then restored to the photo's size). An audience is read
another way: a detector box in a wide frame, FaceMesh on that box, the CNN crops cut from the small face itself.
Here each photo's venue copy (`degrade.venue`'s recipe and random draws, not restored: the face stays 24-64 px)
is shown in a dim frame three times its size and read through the audience scene (`vision.pipeline.analyze_job`),
keeping the v6-form head's inputs (numbers only). `serving_conditions` returns them as conditions "serve0",
"serve1" (one per copy), cached in /tmp (about 6 min on 2 cores, cold). Used by `scripts/train_fusion_head.py
--head v7` (trained on them too), `scripts/eval_expressions.py` (evaluated on them) and
`scripts/try_serving_path.py`.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
from pathlib import Path
from unittest import mock

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import degrade  # noqa: E402
import expression_data as ed  # noqa: E402
import try_head_inputs as thi  # noqa: E402

WIDTH = thi.WIDTH  # v6's (and v7's) input width
DEFAULT_CACHE = Path("/tmp/audience_serving_path.npz")
COPIES = 2  # serving-path copies per photo
FRAME_MIN = (320, 240)  # the smallest frame a copy is shown in (width, height)


def venue_small(image: np.ndarray, box: degrade.FaceBox, rng: np.random.Generator) -> np.ndarray:
    """`degrade.venue`'s copy (same recipe, same random draws) before it is restored to the photo's size: the
    face 24-64 px wide, as a venue camera's sensor records it."""
    with mock.patch.object(degrade, "restore", lambda small, shape: small):
        return degrade.venue(image, box, rng)


def in_frame(small: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The small copy at the centre of a dim frame three times its size (at least FRAME_MIN), the background a
    little darker than the copy's edges, with sensor noise: a face the detector has to find."""
    h, w = small.shape[:2]
    height, width = max(FRAME_MIN[1], 3 * h), max(FRAME_MIN[0], 3 * w)
    edges = np.concatenate([small[0].ravel(), small[-1].ravel(), small[:, 0].ravel(), small[:, -1].ravel()])
    level = 0.6 * float(np.median(edges))
    frame = np.clip(level + rng.normal(0.0, 3.0, (height, width, 3)), 0, 255).astype(np.uint8)
    y0, x0 = (height - h) // 2, (width - w) // 2
    frame[y0:y0 + h, x0:x0 + w] = small
    return frame


def small_copies(rows: list, copies: int):
    """(photo index, copy, the small copy, the face's width in it in px) for every photo's serving-path copies:
    `venue_small` around the face box of the landmarker on the full photo, as expression_data degrades."""
    from vision.capture import Frame
    from vision.landmarker import Landmarker, LandmarkerOptions
    from vision.quiet import native_stderr_to_devnull
    from vision.registry import model_file

    with native_stderr_to_devnull():
        lm = Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode="image", max_faces=1))
    with lm:
        for i, (path, _) in enumerate(rows):
            image = ed.read_image(str(path))
            if image is None:
                continue
            with native_stderr_to_devnull():
                obs = lm.detect(Frame(path.name, 0, 0.0, image))
            box = (ed._face_box(obs, degrade) if len(obs) else
                   degrade.FaceBox.default(image.shape[1], image.shape[0]))
            for k in range(copies):
                small = venue_small(image, box, np.random.default_rng([i, k, 1]))
                yield i, k, small, box.w * small.shape[1] / image.shape[1]


def render(rows: list, folder: Path, copies: int) -> np.ndarray:
    """Write every photo's serving-path copies into `folder` as `<index>_<copy>.png`, each in its frame; returns
    [copies, N] the face's width in px in each copy (NaN: the photo did not read)."""
    widths = np.full((copies, len(rows)), np.nan)
    for i, k, small, width in small_copies(rows, copies):
        cv2.imwrite(str(folder / f"{i}_{k}.png"), in_frame(small, np.random.default_rng([i, k, 2])))
        widths[k, i] = width
    return widths


def read_through_scene(files: list[Path | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shipped default head's inputs [N, WIDTH] for the largest face read in each file (zeros where none was
    read or the file is None), whether one was, and its face_px: the audience scene (`try_head_inputs.scene_inputs`)."""
    from vision.capture import resolve_inputs

    named = [i for i, path in enumerate(files) if path is not None]
    inputs, faces = thi.scene_inputs(resolve_inputs([str(files[i]) for i in named]) if named else [])
    x, px = np.zeros((len(files), WIDTH), np.float32), np.zeros(len(files))
    for row, (source, size) in enumerate(zip(faces["source"], faces["face_px"])):
        i = named[source]
        if size > px[i]:
            x[i], px[i] = inputs[row], size
    return x, px > 0, px


class HeadInputs:
    """A condition whose head inputs were taken whole (`expression_data.Readings`' interface for v6's rows), and
    the face's width in px in each photo's copy (`face_width`, where known)."""

    def __init__(self, x: np.ndarray, found: np.ndarray, face_width: np.ndarray | None = None):
        self.x, self.found, self.face_width = x, found, face_width

    def v5_features(self, flip: bool = False, fer_flip: bool | None = None) -> np.ndarray:
        return self.x


def serving_conditions(labelled_dir: Path, cache: Path = DEFAULT_CACHE, copies: int = COPIES) -> dict[str, HeadInputs]:
    """condition ("serve0", ...) -> the photos' serving-path head inputs and face widths, cached in `cache`."""
    import tempfile

    rows = ed.read_labels(labelled_dir)
    key = _cache_key(rows, copies)
    if cache.is_file():
        z = np.load(cache)
        if str(z["key"]) == key:
            return {f"serve{k}": HeadInputs(z[f"x{k}"], z[f"found{k}"], z[f"width{k}"]) for k in range(copies)}
    arrays = {}
    with tempfile.TemporaryDirectory() as tmp:
        widths = render(rows, Path(tmp), copies)
        for k in range(copies):
            arrays[f"width{k}"] = widths[k]
            files = [p if p.is_file() else None for p in (Path(tmp) / f"{i}_{k}.png" for i in range(len(rows)))]
            arrays[f"x{k}"], arrays[f"found{k}"], _ = read_through_scene(files)
            print(f"serving-path copy {k}: a face read in {arrays[f'found{k}'].mean():.3f} of the photos", flush=True)
    np.savez_compressed(cache, key=key, **arrays)
    return {f"serve{k}": HeadInputs(arrays[f"x{k}"], arrays[f"found{k}"], arrays[f"width{k}"]) for k in range(copies)}


def _cache_key(rows, copies: int) -> str:
    """What the serving-path readings depend on: the photos (expression_data's key: photos, labels, the
    degradations' code), the models the audience scene reads faces with, this recipe's code and the copies."""
    from vision.registry import model_file

    h = hashlib.sha256(ed._cache_key(rows).encode())
    for name in SCENE_MODELS:
        h.update(model_file(name).sha256.encode())
    for code in (venue_small, small_copies, in_frame, render, read_through_scene, thi.scene_inputs):
        h.update(inspect.getsource(code).encode())
    h.update(str(copies).encode())
    return h.hexdigest()


#: The models behind the head inputs the audience scene reads (detectors, FaceMesh, both CNNs).
SCENE_MODELS = ("face_landmarker", "face_landmarks", "face_blendshapes", "centerface", "mtcnn_pnet", "mtcnn_rnet",
                "mtcnn_onet", "cnn", "cnn_features", "faceapi")
