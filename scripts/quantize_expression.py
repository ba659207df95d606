"""Try ONNX Runtime int8 quantisation of the two expression CNNs (fer and face-api): speed and agreement.

    python scripts/quantize_expression.py ../shared/data/expressions [--limit 400] [--calibrate 100] [--out DIR]

Every labelled photo (the first --limit) is landmarked once (MediaPipe, image mode) and cut into the two crops
the pipeline reads (vision.classifier.face_crops / face_crops_rgb). Each CNN is quantised into --out (never
into models/) by `onnxruntime.quantization`: dynamic (uint8 weights) and static (uint8 activations, int8
weights, calibrated on the first --calibrate crops; QDQ and QOperator; per-tensor and per-channel, and a
per-channel QOperator variant with reduce_range). Printed, in one run:
- ms per face on one thread, float and each variant, interleaved on windows of 8 crops, best of --rounds
  (a same-run ratio float / quantised, so a shared machine's noise hits both alike);
- on the photos not used for calibration: each variant's top-label agreement with the float CNN and the
  largest |probability difference|, and the default classifier's (fusion, v2 head) top-label agreement with
  the float pipeline when that CNN is replaced by the variant.
The project adopts a quantised CNN only if it is >= 1.5x faster and the fusion agrees on >= 98% of photos,
and then only after `scripts/eval_expressions.py` shows the macro recalls within 0.005; the last column says
whether the first two hold. Nothing is written to models/: an adopted file would be pinned by hand.
Needs nothing beyond onnxruntime (symbolic shape inference is skipped: both graphs have static shapes).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expression_data as ed  # noqa: E402

from vision import onnx  # noqa: E402
from vision.capture import Frame, read_image  # noqa: E402
from vision.classifier import face_crops, face_crops_rgb  # noqa: E402
from vision.quiet import native_stderr_to_devnull  # noqa: E402
from vision.registry import model_file  # noqa: E402

WINDOW = 8  # faces per call, as a window of the frame loop with one face per frame


def read_faces(folder: Path, limit: int):
    """[(image, observation)] of the photos where MediaPipe finds a face."""
    from vision.landmarker import Landmarker, LandmarkerOptions

    faces = []
    with native_stderr_to_devnull():
        lm = Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode="image", max_faces=1))
        try:
            for path, _ in ed.read_labels(folder)[:limit]:
                image = read_image(str(path))
                obs = lm.detect(Frame(path.name, 0, 0.0, image)) if image is not None else None
                if obs is not None and len(obs):
                    faces.append((image, obs))
        finally:
            lm.close()
    return faces


def variants(float_path: Path, calib: np.ndarray, out: Path, name: str) -> dict[str, Path]:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {"input": x}

    pre = out / f"{name}_pre.onnx"
    quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=True)
    found = {}
    path = out / f"{name}_dynamic_u8.onnx"
    quantize_dynamic(str(pre), str(path), weight_type=QuantType.QUInt8)
    found["dynamic u8"] = path
    for fmt in (QuantFormat.QDQ, QuantFormat.QOperator):
        for per_channel in (False, True):
            label = f"static {fmt.name} {'per-channel' if per_channel else 'per-tensor'}"
            path = out / f"{name}_{label.replace(' ', '_')}.onnx"
            quantize_static(str(pre), str(path), Reader(), quant_format=fmt, per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            found[label] = path
    path = out / f"{name}_static_QOperator_reduce_range.onnx"
    quantize_static(str(pre), str(path), Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                    reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    found["static QOperator per-channel reduce_range"] = path
    return found


def ms_per_face(sessions: dict, x: np.ndarray, rounds: int) -> dict[str, float]:
    """Interleaved: every session over the same windows in each round; best round per session."""
    windows = [x[i:i + WINDOW] for i in range(0, len(x) - WINDOW + 1, WINDOW)]
    best = dict.fromkeys(sessions, np.inf)
    for s in sessions.values():
        s.run(None, {"input": windows[0]})  # warm
    for _ in range(rounds):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            for w in windows:
                s.run(None, {"input": w})
            best[k] = min(best[k], (time.perf_counter() - t0) / (len(windows) * WINDOW))
    return {k: 1000 * v for k, v in best.items()}


def fused_labels(faces, cnn_path: Path, faceapi_path: Path) -> np.ndarray:
    from vision.classifier import CnnClassifier, FaceApiClassifier, Fusion2Classifier

    head = Fusion2Classifier(model_file("fusion").path, CnnClassifier(cnn_path), FaceApiClassifier(faceapi_path))
    return np.concatenate([head.classify([img], [obs])[0].labels for img, obs in faces])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--limit", type=int, default=400, help="photos read (the first N of labels.csv)")
    ap.add_argument("--calibrate", type=int, default=100, help="faces used for calibration, left out of agreement")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="where the quantised files go (default: a temp folder)")
    args = ap.parse_args(argv)
    faces = read_faces(args.labelled_dir, args.limit)
    if len(faces) <= args.calibrate + WINDOW:
        ap.error(f"only {len(faces)} faces found: raise --limit or lower --calibrate")
    crops = {"cnn": face_crops([f[0] for f in faces], [f[1] for f in faces]),
             "faceapi": face_crops_rgb([f[0] for f in faces], [f[1] for f in faces])}
    held = faces[args.calibrate:]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        float_paths = {n: model_file(n).path for n in crops}
        reference = fused_labels(held, float_paths["cnn"], float_paths["faceapi"])
        print(f"{len(faces)} faces ({args.calibrate} for calibration, {len(held)} for agreement); "
              f"ms/face on one thread, windows of {WINDOW}, best of {args.rounds} interleaved rounds")
        for name, x in crops.items():
            found = variants(float_paths[name], x[:args.calibrate], out, name)
            sessions = {"float": onnx.session(float_paths[name])} | {k: onnx.session(p) for k, p in found.items()}
            ms = ms_per_face(sessions, x, args.rounds)
            probs = {k: s.run(None, {"input": x[args.calibrate:]})[0] for k, s in sessions.items()}
            print(f"{name} ({float_paths[name].name}): float {ms['float']:.3f} ms/face")
            for k, path in found.items():
                speed = ms["float"] / ms[k]
                top = float((probs[k].argmax(1) == probs["float"].argmax(1)).mean())
                dprob = float(np.abs(probs[k] - probs["float"]).max())
                swapped = {**float_paths, name: path}
                fused = float((fused_labels(held, swapped["cnn"], swapped["faceapi"]) == reference).mean())
                ok = speed >= 1.5 and fused >= 0.98
                print(f"  {k:42s} {ms[k]:6.3f} ms/face  {speed:4.2f}x  top label {100 * top:5.1f}%  "
                      f"max|dprob| {dprob:.3f}  fusion label {100 * fused:5.1f}%  "
                      f"{'passes speed+agreement' if ok else 'fails'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
