"""Which inputs of the default fusion head (v6) read real crowd faces as disgust, and what leaving one out does.

    python scripts/try_head_inputs.py ../shared/data/expressions [--crowds ../shared/data/crowds/images]
                                      [--drop geometry,sharpness] [--frontal] [--workers 2]

1. The shared photos (subject-disjoint 5-fold CV, each photo's degraded copies in its fold, as the v6 rows of
   scripts/eval_expressions.py): macro recall over 7 and 5 classes and the calibration error at full size,
   48 px and 32 px, of v6's recipe as it is and with each block of `--drop` left out (its columns weighted 0).
2. With `--crowds` (real crowd photos without expression labels, e.g. WIDER FACE: measured, never trained or
   tuned on): the folder goes once through the audience scene with the shipped default head, whose inputs for
   each face are kept in memory (numbers only), with the face's height in pixels, yaw and pitch. Printed:
   - the shipped head's disgust-minus-neutral logit split into its input blocks' contributions (the head is
     linear after standardising), for faces under 32 px against faces of 64 px and more, and for faces of
     48 px and more turned (|yaw| > 25 degrees) or looking down (pitch < -10) against frontal ones (|yaw| < 10,
     pitch > 0);
   - each variant of step 1, retrained on all the photos, on those inputs: the share of faces whose top label
     is disgust, and neutral, per band of face height.
3. With `--frontal`, one more variant: the geometry block taken after the face's 3-D landmarks are turned to face
   the camera (a similarity fit of the rigid points to MediaPipe's canonical face, `frontal_geometry`), and for
   each geometry how much of the crowd faces' yaw and pitch a ridge regression still reads from it (R^2, 5-fold).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expression_data as ed  # noqa: E402
import fusion_v2 as v2  # noqa: E402

#: The v6 head's input blocks (vision.classifier.fusion2_features, then fer's penultimate features).
BLOCKS = {"blendshapes": slice(0, 52), "geometry": slice(52, 156), "fer_logp": slice(156, 163),
          "faceapi_logp": slice(163, 170), "faceapi_features": slice(170, 426), "sharpness": slice(426, 427),
          "fer_features": slice(427, 555)}
HEAD = "fusion-v6"
WIDTH = sum(b.stop - b.start for b in BLOCKS.values())  # v6's input width
BANDS = (0, 24, 32, 48, 64, np.inf)
DISGUST, NEUTRAL = ed.EMOTIONS.index("disgust"), ed.EMOTIONS.index("neutral")


def frontal_geometry(mesh: np.ndarray) -> np.ndarray:
    """[N,478*3] meshes in `expression_data.mesh_geometry`'s upright frame -> [N,104]: the geometry block's points
    (x, y in inter-ocular units from the eyes' centre, as `vision.features.geometry_features`) after the face is
    turned to face the camera: rotation and scale from a least-squares fit (scipy's Kabsch) of its rigid points
    (`vision.headpose.PNP_LANDMARKS`) to the canonical face's (`CANONICAL_POINTS`). Rows of zeros stay zeros."""
    from scipy.spatial.transform import Rotation

    from vision.features import GEOMETRY_LANDMARKS, LEFT_EYE_OUTER, RIGHT_EYE_OUTER
    from vision.headpose import CANONICAL_POINTS, PNP_LANDMARKS

    canon = CANONICAL_POINTS - CANONICAL_POINTS.mean(axis=0)
    eyes = [PNP_LANDMARKS.index(RIGHT_EYE_OUTER), PNP_LANDMARKS.index(LEFT_EYE_OUTER)]
    iod = float(np.linalg.norm(canon[eyes[1]] - canon[eyes[0]]))
    flip = np.array([1.0, -1.0, -1.0])  # image frame (y down, depth away) <-> the canonical face's (y up, z back)
    out = np.zeros((len(mesh), 2 * len(GEOMETRY_LANDMARKS)), np.float32)
    for i, m in enumerate(np.asarray(mesh, np.float64).reshape(len(mesh), -1, 3)):
        if not m.any():
            continue
        pts = m * flip
        rigid = pts[list(PNP_LANDMARKS)]
        centre = rigid.mean(axis=0)
        rotation, _ = Rotation.align_vectors(canon, rigid - centre)
        turned = rotation.apply(rigid - centre)
        scale = float((turned * canon).sum() / max((turned ** 2).sum(), 1e-12))
        points = scale * rotation.apply(pts[list(GEOMETRY_LANDMARKS)] - centre)
        rel = (points - canon[eyes].mean(axis=0)) / iod * flip
        out[i] = rel[:, :2].reshape(-1)
    return out


def pose_r2(geometry: np.ndarray, faces: dict) -> dict:
    """How much of the faces' yaw and pitch a ridge regression reads from `geometry` (R^2, 5-fold)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_score

    ok = np.isfinite(faces["yaw"]) & np.isfinite(faces["pitch"])
    return {k: float(cross_val_score(RidgeCV(alphas=np.logspace(-2, 3, 12)), geometry[ok], faces[k][ok], cv=5,
                                     scoring="r2").mean()) for k in ("yaw", "pitch")}


def variants(drop: list[str]) -> dict[str, tuple[slice, ...]]:
    return {"v6 as it is": (), **{f"without {name}": (BLOCKS[name],) for name in drop}}


def photo_figures(readings, y, subjects, dropped, workers) -> dict:
    report = v2.cross_validate(readings, y, subjects, head=HEAD, with_baselines=False, workers=workers,
                               dropped=dropped)
    return {k: part[HEAD] for k, part in report["conditions"].items()}


def crowd_inputs(folder: Path):
    """`scene_inputs` for `folder`'s photos, as `audience analyze` reads a folder of photos."""
    from vision.capture import resolve_inputs

    return scene_inputs([s for s in resolve_inputs([str(folder)]) if s.kind == "image"])


def scene_inputs(specs: list) -> tuple[np.ndarray, dict]:
    """The shipped default head's inputs [N,555] for every face it read in the photos `specs` (the audience scene,
    `vision.pipeline.analyze_job`, kept as the head reads them), and those faces' source (index into `specs`),
    face_px, yaw, pitch and mesh (`expression_data.mesh_geometry`)."""
    from vision.pipeline import Settings, analyze_job, build_stages, model_files
    from vision.quiet import native_stderr_to_devnull

    settings = Settings(scene="audience")
    with native_stderr_to_devnull():
        stages = build_stages(settings, "image", model_files(settings))
    head, rows, meshes = stages.classifier, [], []
    inner = head.head_inputs

    def keep_inputs(readings, faces):  # what the head reads, kept as it reads it, and the faces' meshes
        rows.append(inner(readings, faces))
        meshes.extend(ed.mesh_geometry(o.landmarks, o.width, o.height) for o in faces)
        return rows[-1]

    head.head_inputs = keep_inputs
    try:
        with native_stderr_to_devnull():
            tables = [columns for columns, _ in analyze_job(specs, settings, stages=stages)]
    finally:
        stages.close()
    cols = {k: np.concatenate([np.asarray(t[k], object) for t in tables]) for k in ("emotion", "face_px", "yaw",
                                                                                   "pitch")}
    source = np.repeat(np.arange(len(tables)), [len(t["emotion"]) for t in tables])
    read = np.asarray([isinstance(e, str) and e in ed.EMOTIONS for e in cols["emotion"]], bool)
    x = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, WIDTH), np.float32)
    assert len(x) == read.sum(), (len(x), read.sum())  # one input row per face read, in order
    faces = {k: cols[k][read].astype(np.float64) for k in ("face_px", "yaw", "pitch")}
    faces["source"] = source[read]
    faces["mesh"] = np.concatenate(meshes) if meshes else np.zeros((0, 478 * 3), np.float32)
    return x, faces


def shipped_contributions(x, faces) -> None:
    import onnx
    from onnx import numpy_helper

    from vision.registry import model_file

    graph = onnx.load(str(model_file("fusion").path)).graph
    p = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    z, w = (x - p["mean"]) / p["scale"], p["W"][:, DISGUST] - p["W"][:, NEUTRAL]
    px, yaw, pitch = faces["face_px"], np.abs(faces["yaw"]), faces["pitch"]
    groups = {"small (< 32 px)": px < 32, "large (>= 64 px)": px >= 64,
              "turned/down (>= 48 px)": (px >= 48) & ((yaw > 25) | (pitch < -10)),
              "frontal (>= 48 px)": (px >= 48) & (yaw < 10) & (pitch > 0)}
    print("shipped head: disgust - neutral logit, mean contribution of each input block (before calibration)")
    print(f"  {'block':18s} " + " ".join(f"{g:>23s}" for g in groups) + "   (faces: "
          + ", ".join(str(int(m.sum())) for m in groups.values()) + ")")
    for name, block in BLOCKS.items():
        c = z[:, block] @ w[block]
        print(f"  {name:18s} " + " ".join(f"{c[m].mean():+23.2f}" for m in groups.values()))


def crowd_shares(label, logits, px) -> None:
    top = logits.argmax(axis=1)
    bands = [(lo, hi) for lo, hi in zip(BANDS[:-1], BANDS[1:])]
    cells = []
    for lo, hi in bands:
        m = (px >= lo) & (px < hi)
        cells.append(f"{(top[m] == DISGUST).mean():.2f}/{(top[m] == NEUTRAL).mean():.2f}" if m.any() else "-")
    print(f"  {label:26s} all {(top == DISGUST).mean():.2f}/{(top == NEUTRAL).mean():.2f}  " + "  ".join(
        f"{lo:g}-{hi:g} px {c}" for (lo, hi), c in zip(bands, cells)))


def print_figures(label: str, figures: dict) -> None:
    print(f"  {label:26s} " + "  ".join(
        f"{k} {r['macro_recall']:.3f}/{r['macro_recall_5']:.3f} cal {r['calibration']['max_abs_error']:.3f}"
        for k, r in figures.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--crowds", type=Path, default=None, help="a folder of real crowd photos (no labels needed)")
    ap.add_argument("--drop", default="geometry,sharpness", help=f"blocks to leave out in turn: {', '.join(BLOCKS)}")
    ap.add_argument("--frontal", action="store_true", help="also the geometry of faces turned to face the camera")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=ed.DEFAULT_CACHE)
    args = ap.parse_args(argv)
    drop = [d for d in args.drop.split(",") if d]
    unknown = [d for d in drop if d not in BLOCKS]
    if unknown:
        ap.error(f"unknown block(s) {', '.join(unknown)}; choose from {', '.join(BLOCKS)}")
    y, subjects = ed.labels_and_subjects(ed.read_labels(args.labelled_dir))
    readings = ed.read_conditions(args.labelled_dir, args.cache, workers=args.workers)
    crowd = crowd_inputs(args.crowds) if args.crowds else None
    print("shared photos, subject-disjoint 5-fold CV: macro recall 7 / 5 classes, calibration error")
    shares = []
    # every photo under every condition: the rows each variant is retrained on for the crowd check
    photo_x, photo_rows = v2.stack(readings, list(readings), np.arange(len(y)), v2.FEATURES[HEAD])
    for label, dropped in variants(drop).items():
        print_figures(label, photo_figures(readings, y, subjects, dropped, args.workers))
        if crowd is not None:
            model = v2.make_head(HEAD, dropped=dropped).fit(photo_x, y[photo_rows])
            shares.append((label, model.logits(crowd[0])))
    if args.frontal:
        label, meshes = "frontal geometry", ed.read_mesh(args.labelled_dir, workers=args.workers)
        turned = {k: dataclasses.replace(r, geometry=frontal_geometry(meshes[k])) for k, r in readings.items()}
        print_figures(label, photo_figures(turned, y, subjects, (), args.workers))
        if crowd is not None:
            x_turned = crowd[0].copy()
            x_turned[:, BLOCKS["geometry"]] = frontal_geometry(crowd[1]["mesh"])
            tx, rows = v2.stack(turned, list(turned), np.arange(len(y)), v2.FEATURES[HEAD])
            shares.append((label, v2.make_head(HEAD).fit(tx, y[rows]).logits(x_turned)))
    if crowd is not None:
        x, faces = crowd
        print(f"\ncrowd photos ({args.crowds}): {len(x)} faces read")
        shipped_contributions(x, faces)
        print("top label disgust/neutral share, per face height (each variant retrained on all the photos)")
        for label, logits in shares:
            crowd_shares(label, logits, faces["face_px"])
        if args.frontal:
            print("crowd faces' yaw / pitch read from the geometry block (ridge, R^2 5-fold)")
            for label, g in (("as shipped", x[:, BLOCKS["geometry"]]), ("frontal", x_turned[:, BLOCKS["geometry"]])):
                r2 = pose_r2(g, faces)
                print(f"  {label:26s} yaw {r2['yaw']:.2f}  pitch {r2['pitch']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
