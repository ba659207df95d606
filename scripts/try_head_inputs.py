"""Which inputs of the default fusion head (v6) read real crowd faces as disgust, and what leaving one out does.

    python scripts/try_head_inputs.py ../shared/data/expressions [--crowds ../shared/data/crowds/images]
                                      [--drop geometry,sharpness] [--workers 2]

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
"""
from __future__ import annotations

import argparse
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
BANDS = (0, 24, 32, 48, 64, np.inf)
DISGUST, NEUTRAL = ed.EMOTIONS.index("disgust"), ed.EMOTIONS.index("neutral")


def variants(drop: list[str]) -> dict[str, tuple[slice, ...]]:
    return {"v6 as it is": (), **{f"without {name}": (BLOCKS[name],) for name in drop}}


def photo_figures(readings, y, subjects, dropped, workers) -> dict:
    report = v2.cross_validate(readings, y, subjects, head=HEAD, with_baselines=False, workers=workers,
                               dropped=dropped)
    return {k: part[HEAD] for k, part in report["conditions"].items()}


def crowd_inputs(folder: Path):
    """The shipped default head's inputs [N,555] for every face it read in `folder`'s photos, and those faces'
    face_px, yaw, pitch (the audience scene, `vision.pipeline.analyze_job` as `audience analyze` reads a
    folder of photos)."""
    from vision.capture import resolve_inputs
    from vision.pipeline import Settings, analyze_job, build_stages, model_files
    from vision.quiet import native_stderr_to_devnull

    settings = Settings(scene="audience")
    specs = [s for s in resolve_inputs([str(folder)]) if s.kind == "image"]
    with native_stderr_to_devnull():
        stages = build_stages(settings, "image", model_files(settings))
    head, rows = stages.classifier, []
    inner = head.head_inputs

    def keep_inputs(readings, faces):  # what the head reads, kept as it reads it
        rows.append(inner(readings, faces))
        return rows[-1]

    head.head_inputs = keep_inputs
    try:
        with native_stderr_to_devnull():
            tables = [columns for columns, _ in analyze_job(specs, settings, stages=stages)]
    finally:
        stages.close()
    cols = {k: np.concatenate([np.asarray(t[k], object) for t in tables]) for k in ("emotion", "face_px", "yaw",
                                                                                   "pitch")}
    read = np.asarray([isinstance(e, str) and e in ed.EMOTIONS for e in cols["emotion"]])
    x = np.concatenate(rows).astype(np.float32)
    assert len(x) == read.sum(), (len(x), read.sum())  # one input row per face read, in order
    return x, {k: cols[k][read].astype(np.float64) for k in ("face_px", "yaw", "pitch")}


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--crowds", type=Path, default=None, help="a folder of real crowd photos (no labels needed)")
    ap.add_argument("--drop", default="geometry,sharpness", help=f"blocks to leave out in turn: {', '.join(BLOCKS)}")
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
        figures = photo_figures(readings, y, subjects, dropped, args.workers)
        print(f"  {label:26s} " + "  ".join(
            f"{k} {r['macro_recall']:.3f}/{r['macro_recall_5']:.3f} cal {r['calibration']['max_abs_error']:.3f}"
            for k, r in figures.items()))
        if crowd is not None:
            model = v2.make_head(HEAD, dropped=dropped).fit(photo_x, y[photo_rows])
            shares.append((label, model.logits(crowd[0])))
    if crowd is not None:
        x, faces = crowd
        print(f"\ncrowd photos ({args.crowds}): {len(x)} faces read")
        shipped_contributions(x, faces)
        print("top label disgust/neutral share, per face height (each variant retrained on all the photos)")
        for label, logits in shares:
            crowd_shares(label, logits, faces["face_px"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
