"""Convert face-api's expression net (uint8-quantised tfjs weights) to ONNX without TensorFlow.

    python scripts/convert_faceapi_to_onnx.py models/src/face_expression_model-weights_manifest.json \
        models/faceapi_expression.onnx

The npm package `@vladmandic/face-api` (MIT) ships `model/face_expression_model.bin` and its weights
manifest. The manifest lists every tensor (name, shape, and for most a uint8 quantisation: value = q * scale
+ min); the .bin holds them back to back. The net (face-api's `FaceFeatureExtractor` + `FaceExpressionNet`):
subtract the mean RGB (122.782, 117.001, 104.298), divide by 255, four dense blocks of four convolutions
(the first a stride-2 3x3 conv in block 0, else stride-2 depthwise-separable convs; each later conv adds to
the sum of the earlier outputs, ReLU between), a 7x7 average pool (= global, 112 -> 7) giving 256 features,
a fully connected layer to 7 logits and a softmax.

The ONNX graph (opset 13, NCHW): input ``input`` float32 [N, 3, 112, 112], an RGB face crop with pixel
values 0-255; outputs ``probs`` float32 [N, 7] in the project's order (anger, disgust, fear, happiness,
sadness, surprise, neutral; face-api's own order is neutral, happy, sad, angry, fearful, disgusted,
surprised) and ``features`` float32 [N, 256], the pooled features before the last layer.
The script checks the ONNX model against an independent NumPy forward pass of the same dequantised
weights, written in tfjs' NHWC conventions with TensorFlow "same" padding, and refuses to write a model
that differs by more than 1e-4.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _bench import write_checked  # first: it puts the project on the import path
from vision.onnx import session

MEAN_RGB = (122.782, 117.001, 104.298)
FACEAPI_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
# project class k (vision.labels.EMOTIONS order) <- face-api output ORDER[k]
ORDER = (3, 5, 4, 1, 2, 6, 0)
BLOCKS = ("dense0", "dense1", "dense2", "dense3")
TOLERANCE = 1e-4
_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16}


def read_weights(manifest: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a tfjs weights manifest (and the .bin files it names), dequantised to float32."""
    manifest = Path(manifest)
    groups = json.loads(manifest.read_text())
    out: dict[str, np.ndarray] = {}
    for group in groups:
        blob = b"".join((manifest.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            q = w.get("quantization")
            dtype = np.dtype(_DTYPES[q["dtype"] if q else w["dtype"]])
            count = int(np.prod(w["shape"], dtype=np.int64))
            raw = np.frombuffer(blob, dtype, count, offset)
            offset += count * dtype.itemsize
            values = raw.astype(np.float64) * q["scale"] + q["min"] if q else raw
            out[w["name"]] = np.asarray(values, np.float32).reshape(w["shape"])
        if offset != len(blob):
            raise ValueError(f"{manifest}: {len(blob) - offset} bytes left over after the last tensor")
    return out


# ---------------------------------------------------------------- NumPy reference (NHWC, tfjs semantics)

def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """[N, Ho, Wo, k, k, C] sliding windows after TensorFlow "same" padding."""
    x = np.pad(x, ((0, 0), _same_pads(x.shape[1], k, s), _same_pads(x.shape[2], k, s), (0, 0)))
    n, h, w, c = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    sn, sh, sw, sc = x.strides
    return np.lib.stride_tricks.as_strided(x, (n, ho, wo, k, k, c), (sn, sh * s, sw * s, sh, sw, sc),
                                           writeable=False)


def _conv(x, filters, bias, s):  # filters [kh, kw, Cin, Cout]
    return np.einsum("nhwijc,ijcd->nhwd", _windows(x, filters.shape[0], s), filters) + bias


def _separable(x, w, prefix, s):  # depthwise [kh, kw, C, 1], pointwise [1, 1, C, Cout]
    depth = np.einsum("nhwijc,ijc->nhwc", _windows(x, 3, s), w[prefix + "depthwise_filter"][..., 0])
    return depth @ w[prefix + "pointwise_filter"][0, 0] + w[prefix + "bias"]


def _relu(x):
    return np.maximum(x, 0)


def numpy_forward(weights: dict[str, np.ndarray], batch_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, 112, 112, 3] RGB 0-255 -> (probs [N, 7] in face-api's order, pooled features [N, 256])."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    x = (np.asarray(batch_rgb, np.float64) - np.array(MEAN_RGB)) / 255.0
    for i, block in enumerate(BLOCKS):
        p = block + "/conv"
        out1 = _relu(_conv(x, w[p + "0/filters"], w[p + "0/bias"], 2) if i == 0 else _separable(x, w, p + "0/", 2))
        out2 = _separable(out1, w, p + "1/", 1)
        out3 = _separable(_relu(out1 + out2), w, p + "2/", 1)
        out4 = _separable(_relu(out1 + out2 + out3), w, p + "3/", 1)
        x = _relu(out1 + out2 + out3 + out4)
    features = x.mean(axis=(1, 2))  # avgPool 7x7 stride 2 "valid" on a 7x7 map
    logits = features @ w["fc/weights"] + w["fc/bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), features


# ---------------------------------------------------------------- ONNX graph (NCHW)

def to_onnx(weights: dict[str, np.ndarray]):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def conv(x, out, filters_hwio, bias, stride, group=1):
        k = filters_hwio.shape[0]
        top, bottom = _same_pads(112, k, stride)  # every stride-2 conv here has an even input: pad (0, 1)
        pads = [top, top, bottom, bottom] if stride == 2 else [k // 2] * 4
        w = const(out + "_w", np.transpose(filters_hwio, (3, 2, 0, 1)))
        ins = [x, w] + ([const(out + "_b", bias)] if bias is not None else [])
        nodes.append(helper.make_node("Conv", ins, [out], kernel_shape=[k, k], strides=[stride, stride],
                                      pads=pads, group=group))
        return out

    def separable(x, prefix, stride):
        dw = weights[prefix + "depthwise_filter"]  # [3, 3, C, 1] -> group conv [C, 1, 3, 3]
        depth = conv(x, prefix + "dw", np.transpose(dw, (0, 1, 3, 2)), None, stride, group=dw.shape[2])
        return conv(depth, prefix + "pw", weights[prefix + "pointwise_filter"], weights[prefix + "bias"], 1)

    def op(kind, ins, out, **attrs):
        nodes.append(helper.make_node(kind, ins, [out], **attrs))
        return out

    mean = const("mean_rgb", np.array(MEAN_RGB).reshape(1, 3, 1, 1))
    x = op("Div", [op("Sub", ["input", mean], "centred"), const("scale255", np.array(255.0))], "x0")
    for i, block in enumerate(BLOCKS):
        p = block + "/conv"
        first = (conv(x, p + "0", weights[p + "0/filters"], weights[p + "0/bias"], 2) if i == 0
                 else separable(x, p + "0/", 2))
        out1 = op("Relu", [first], p + "0_relu")
        out2 = separable(out1, p + "1/", 1)
        s12 = op("Add", [out1, out2], p + "_s12")
        out3 = separable(op("Relu", [s12], p + "_in3"), p + "2/", 1)
        s123 = op("Add", [s12, out3], p + "_s123")
        out4 = separable(op("Relu", [s123], p + "_in4"), p + "3/", 1)
        x = op("Relu", [op("Add", [s123, out4], p + "_s1234")], p + "_out")
    op("Flatten", [op("GlobalAveragePool", [x], "pooled")], "features", axis=1)
    fc_w = weights["fc/weights"][:, list(ORDER)]
    fc_b = weights["fc/bias"][list(ORDER)]
    op("Gemm", ["features", const("fc_w", fc_w), const("fc_b", fc_b)], "logits")
    op("Softmax", ["logits"], "probs", axis=-1)
    graph = helper.make_graph(
        nodes, "faceapi_expression",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 7]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 256])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="audience scripts/convert_faceapi_to_onnx.py")
    model.ir_version = 8
    model.doc_string = ("face-api (vladmandic/face-api, MIT) expression net: RGB 0-255 [N,3,112,112] -> probs[7] "
                        "(anger, disgust, fear, happiness, sadness, surprise, neutral) and pooled features[256]")
    onnx.checker.check_model(model)
    return model


def max_difference(weights: dict[str, np.ndarray], model_bytes: bytes, batch_rgb: np.ndarray) -> float:
    """Largest |ONNX - NumPy| over probabilities and pooled features for an NHWC RGB batch."""
    sess = session(model_bytes)
    probs, feats = sess.run(None, {"input": np.transpose(batch_rgb, (0, 3, 1, 2)).astype(np.float32)})
    ref_probs, ref_feats = numpy_forward(weights, batch_rgb)
    return float(max(np.abs(probs - ref_probs[:, list(ORDER)]).max(), np.abs(feats - ref_feats).max()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest", type=Path, help="face_expression_model-weights_manifest.json (its .bin beside it)")
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    weights = read_weights(args.manifest)
    blob = to_onnx(weights).SerializeToString()
    batch = np.random.default_rng(0).uniform(0, 255, (4, 112, 112, 3))
    diff = max_difference(weights, blob, batch)
    return write_checked(args.out, blob, diff, TOLERANCE)


if __name__ == "__main__":
    raise SystemExit(main())
