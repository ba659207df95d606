"""Take MediaPipe's landmark and blendshape models and its canonical face out of the pinned .task bundle.

    python scripts/extract_face_models.py [--task models/face_landmarker.task] [--out models]

`face_landmarker.task` is a zip. Written into `--out`, byte-identical to the members of the zip:
- `face_landmarks_detector.tflite`: 256x256 RGB in [0, 1] -> 478 landmarks (x, y, z in crop pixels) and a
  face-presence logit;
- `face_blendshapes.tflite`: 146 landmarks (x, y in image pixels) -> 52 blendshape scores;
`canonical_face(task)` decodes `geometry_pipeline_metadata_landmarks.binarypb` (MediaPipe's face geometry
metadata, a `GeometryPipelineMetadata` protobuf) into the canonical face's 468 vertices (centimetres; x to
the right of the image for a face looking at the camera, y up, z towards the camera) and the Procrustes
landmark basis; `vision.headpose` ships the few of those numbers it needs, and a test checks them here.

The sha256 of every output is checked against `models/models.json` (`--update-registry` writes the
entries instead, for a new .task). Exit 7 if the .task does not match its pin or an output differs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = {"face_landmarks": "face_landmarks_detector.tflite", "face_blendshapes": "face_blendshapes.tflite"}
GEOMETRY_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
CARD = "face_mesh_models.md"
EXIT_MODEL = 7


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes):
    """Protobuf wire format -> (field number, wire type, value) with value int (varint, fixed32 as bytes) or bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def decode_geometry(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """GeometryPipelineMetadata -> (canonical vertices [468,3], Procrustes basis [(landmark id, weight)]).

    Fields (mediapipe/tasks/cc/vision/face_geometry/proto): 1 = canonical_mesh, a Mesh3d {1: vertex_type
    (0 = VERTEX_PT: x, y, z, u, v per vertex), 3: repeated float vertex_buffer}; 2 = repeated
    WeightedLandmarkRef {1: landmark_id, 2: weight}."""
    basis, vertices = [], []
    for field, wire, value in _fields(blob):
        if field == 2 and wire == 2:
            ref = {f: v for f, _, v in _fields(value)}
            weight = struct.unpack("<f", ref[2])[0] if 2 in ref else 0.0
            basis.append((ref.get(1, 0), weight))
        elif field == 1 and wire == 2:
            for f, w, v in _fields(value):
                if f == 1 and w == 0 and v != 0:
                    raise ValueError(f"unexpected vertex type {v} (expected VERTEX_PT)")
                if f == 3:
                    vertices.extend(np.frombuffer(v, "<f4") if w == 2 else struct.unpack("<f", v))
    pt = np.asarray(vertices, np.float32).reshape(-1, 5)
    return np.ascontiguousarray(pt[:, :3]), np.asarray(basis, np.float32)


def canonical_face(task: Path) -> tuple[np.ndarray, np.ndarray]:
    """The .task's canonical face: vertices [468,3] and Procrustes basis [K,2] (landmark id, weight)."""
    with zipfile.ZipFile(task) as z:
        vertices, basis = decode_geometry(z.read(GEOMETRY_MEMBER))
    if vertices.shape != (468, 3) or not len(basis):
        raise ValueError(f"{GEOMETRY_MEMBER}: unexpected canonical face {vertices.shape}, {len(basis)} basis points")
    return vertices, basis


def extract(task: Path, out: Path) -> dict[str, tuple[str, str]]:
    """Write the outputs into `out`; return {registry name: (file name, sha256)}."""
    outputs = {}
    with zipfile.ZipFile(task) as z:
        for name, member in MEMBERS.items():
            outputs[name] = (member, z.read(member))
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (file, data) in outputs.items():
        (out / file).write_bytes(data)
        written[name] = (file, hashlib.sha256(data).hexdigest())
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", type=Path, default=ROOT / "models" / "face_landmarker.task")
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--registry", type=Path, default=ROOT / "models" / "models.json")
    ap.add_argument("--update-registry", action="store_true", help="write the outputs' sha256 into the registry")
    args = ap.parse_args(argv)
    registry = json.loads(args.registry.read_text())
    task_sha = hashlib.sha256(args.task.read_bytes()).hexdigest() if args.task.is_file() else None
    if task_sha != registry["face_landmarker"]["sha256"]:
        print(f"error: {args.task} is missing or not the pinned face_landmarker.task", file=sys.stderr)
        return EXIT_MODEL
    written = extract(args.task, args.out)
    bad = []
    for name, (file, sha) in written.items():
        if args.update_registry:
            registry[name] = {"file": file, "sha256": sha, "card": CARD}
        elif registry.get(name, {}).get("sha256") != sha:
            bad.append(file)
        print(f"{file}  {sha}")
    if args.update_registry:
        args.registry.write_text(json.dumps(registry, indent=2) + "\n")
    if bad:
        print(f"error: {', '.join(bad)} do not match their pins in {args.registry}", file=sys.stderr)
        return EXIT_MODEL
    return 0


if __name__ == "__main__":
    sys.exit(main())
