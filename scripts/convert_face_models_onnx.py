"""ONNX copies of MediaPipe's face landmark and blendshape models, for ONNX Runtime with a GPU provider.

Needs TensorFlow and tf2onnx at conversion time only, in a separate virtualenv (not a project dependency):

    python3 -m venv /work/venvs/convert
    /work/venvs/convert/bin/pip install tensorflow-cpu tf2onnx onnxruntime
    /work/venvs/convert/bin/python scripts/convert_face_models_onnx.py [--models models]

Converts `face_landmarks_detector.tflite` -> `face_landmarks_detector.onnx` (batch dimension dynamic) and
`face_blendshapes.tflite` -> `face_blendshapes.onnx` with `tf2onnx.convert.from_tflite` (opset 17), then
runs both on random and real-looking inputs in ONNX Runtime and in TensorFlow Lite's reference interpreter
and refuses to write a copy whose outputs differ by more than 0.01 px (landmarks, in crop pixels), 1e-3
(presence logit) or 1e-4 (blendshapes). Prints the sha256 of what it wrote, to pin in models/models.json.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from _bench import ROOT  # first: it puts the project on the import path
from vision.onnx import session

PAIRS = {"face_landmarks_detector": 1e-2, "face_blendshapes": 1e-4}


def convert(tflite: Path, onnx_path: Path, dynamic_batch: bool) -> None:
    import tf2onnx

    tf2onnx.convert.from_tflite(str(tflite), opset=17, output_path=str(onnx_path))
    if dynamic_batch:
        import onnx

        model = onnx.load(str(onnx_path))
        for value in list(model.graph.input) + list(model.graph.output):
            dims = value.type.tensor_type.shape.dim
            if dims and dims[0].dim_value == 1:
                dims[0].dim_param = "batch"
        onnx.save(model, str(onnx_path))


def reference(tflite: Path, x: np.ndarray) -> list[np.ndarray]:
    import tensorflow as tf

    it = tf.lite.Interpreter(model_path=str(tflite))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def check(tflite: Path, onnx_path: Path, inputs: list[np.ndarray], tolerance: float) -> float:
    s = session(onnx_path)
    name = s.get_inputs()[0].name
    worst = 0.0
    for x in inputs:
        ref = reference(tflite, x)
        got = s.run(None, {name: x})
        for r, g in zip(ref, got):  # the same outputs in the same order, up to reshaping
            worst = max(worst, float(np.abs(r.reshape(-1) - g.reshape(-1)).max()))
    if worst > tolerance:
        raise SystemExit(f"error: {onnx_path.name} differs from {tflite.name} by {worst:.2g} (> {tolerance:g})")
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    face = np.clip(rng.normal(0.5, 0.2, (1, 256, 256, 3)), 0, 1).astype(np.float32)
    inputs = {
        "face_landmarks_detector": [face, rng.random((1, 256, 256, 3), np.float32)],
        "face_blendshapes": [(rng.random((1, 146, 2), np.float32) * 200 + 100).astype(np.float32)],
    }
    for stem, tolerance in PAIRS.items():
        tflite, onnx_path = args.models / f"{stem}.tflite", args.models / f"{stem}.onnx"
        convert(tflite, onnx_path, dynamic_batch=stem == "face_landmarks_detector")
        try:
            worst = check(tflite, onnx_path, inputs[stem], tolerance)
        except SystemExit:
            onnx_path.unlink()
            raise
        print(f"{onnx_path.name}  {hashlib.sha256(onnx_path.read_bytes()).hexdigest()}  max diff {worst:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
