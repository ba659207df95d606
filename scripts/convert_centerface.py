"""Make CenterFace's ONNX model take any image size (the upstream file is fixed at [10, 3, 32, 32]).

    python scripts/convert_centerface.py models/src/centerface_bnmerged.onnx models/centerface.onnx

The graph and its weights are not touched: the script only renames the fixed input/output dimensions to
symbolic ones (batch N, height H, width W; the four output maps are H/4 x W/4) and drops the weights from
the graph's inputs (an old exporter listed them there, which keeps ONNX Runtime from folding constants).
It then refuses to write unless ONNX Runtime gives the same outputs for the original and the converted
model on the original's fixed input shape, and the converted model runs on a 480x640 input.

Model input: ``input.1`` float32 [N, 3, H, W], RGB 0-255 (no mean, no scaling), H and W multiples of 32.
Model outputs (stride 4): ``537`` heatmap [N, 1, H/4, W/4] (sigmoid), ``538`` box size [N, 2, ...] (log of
height, width in units of 4 px), ``539`` centre offset [N, 2, ...] (y, x), ``540`` 5 landmarks [N, 10, ...].
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx

from _bench import write_checked  # first: it puts the project on the import path
from vision.onnx import session

OUTPUT_CHANNELS = {"537": 1, "538": 2, "539": 2, "540": 10}


def convert(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    weights = {init.name for init in out.graph.initializer}
    kept = [i for i in out.graph.input if i.name not in weights]
    del out.graph.input[:]
    out.graph.input.extend(kept)
    if [i.name for i in out.graph.input] != ["input.1"] or {o.name for o in out.graph.output} != set(OUTPUT_CHANNELS):
        raise ValueError("not CenterFace's graph (inputs/outputs differ)")
    for value, dims in [(out.graph.input[0], ["N", 3, "H", "W"])] + [
            (o, ["N", OUTPUT_CHANNELS[o.name], "H/4", "W/4"]) for o in out.graph.output]:
        shape = value.type.tensor_type.shape
        for d, new in zip(shape.dim, dims):
            d.Clear()
            if isinstance(new, int):
                d.dim_value = new
            else:
                d.dim_param = new
    del out.graph.value_info[:]  # stale fixed intermediate shapes; ONNX Runtime infers them
    onnx.checker.check_model(out)
    return out


def check(original: bytes, converted: bytes) -> float:
    """Max abs difference of the outputs on the original's own input shape; raises if the converted one fails."""
    a, b = session(original), session(converted)
    x = np.random.default_rng(0).uniform(0, 255, (10, 3, 32, 32)).astype(np.float32)
    names = list(OUTPUT_CHANNELS)
    diff = max(float(np.abs(p - q).max()) for p, q in zip(a.run(names, {"input.1": x}), b.run(names, {"input.1": x})))
    big = b.run(names, {"input.1": np.zeros((1, 3, 480, 640), np.float32)})
    if big[0].shape != (1, 1, 120, 160) or big[3].shape != (1, 10, 120, 160):
        raise ValueError(f"converted model gives {big[0].shape} on a 480x640 input")
    return diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("target", type=Path)
    args = ap.parse_args(argv)
    original = args.source.read_bytes()
    converted = convert(onnx.load_from_string(original)).SerializeToString()
    diff = check(original, converted)
    return write_checked(args.target, converted, diff, 1e-4)


if __name__ == "__main__":
    sys.exit(main())
