"""Fine-tune the last dense block of face-api's expression net on the shared photos and their venue copies.

    python scripts/tune_faceapi.py ../shared/data/expressions cv       [--epochs N]   # subject-disjoint CV
    python scripts/tune_faceapi.py ../shared/data/expressions export   [--epochs N]   # train on all, write ONNX

face-api's net (models/faceapi_expression.md) is four dense blocks, a global average pool and a linear layer.
Blocks 0-2 stay as they are; block 3 (four depthwise-separable convolutions, 14x14x128 -> 7x7x256) and the
linear layer are trained in JAX + optax from face-api's own weights, on block 2's output for every photo
under every condition of `expression_data.conditions()` (the photo, its face at 48 and 32 px, two random
venue-camera copies), cached once per photo set (`--maps`, float16, numbers only: no image is kept).
Loss: cross-entropy with balanced class weights (each class weighs the same in total: macro recall is the
target) and label smoothing; AdamW; random mirror images of the feature map as augmentation.

`cv` trains once per subject-disjoint fold (fusion_v2.folds: the same folds as every head, each photo's
copies in its fold) and writes the validation log-probabilities of every condition to `--oof` (.npz), for
eval_expressions.py and train_fusion_head.py `--head v4`. `export` trains on every photo and writes
`models/faceapi_tuned.onnx`: face-api's graph with a second block 3 + linear layer beside the original
one, so one call gives face-api's `probs` and `features` and the tuned net's `tuned_probs` (blocks 0-2 are
shared: about a quarter more work than face-api alone). The export is checked against the JAX forward pass.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expression_data as ed  # noqa: E402

DEFAULT_MAPS = Path("/tmp/audience_faceapi_dense2.npz")
DEFAULT_OOF = Path("/tmp/audience_faceapi_tuned_oof.npz")
BLOCK_INPUT = "dense2/conv_out"  # the converted graph's name of block 2's output (NCHW [N,128,14,14])
EPOCHS, BATCH, LR, WEIGHT_DECAY, SMOOTHING = 3, 128, 5e-4, 1e-3, 0.1


# ---------------------------------------------------------------- block 2's output of every photo, cached

def _with_output(model_path: Path, name: str) -> bytes:
    import onnx

    model = onnx.load(str(model_path))
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()


_WORKER = {}


def _maps_chunk(chunk):
    import degrade

    from vision.capture import Frame, read_image
    from vision.classifier import face_crops_rgb
    from vision.landmarker import Landmarker, LandmarkerOptions
    from vision.onnx import session
    from vision.quiet import native_stderr_to_devnull
    from vision.registry import model_file

    if not _WORKER:
        with native_stderr_to_devnull():
            _WORKER["lm"] = Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode="image",
                                                         max_faces=1))
        _WORKER["net"] = session(_with_output(model_file("faceapi").path, BLOCK_INPUT))
    lm, net, out = _WORKER["lm"], _WORKER["net"], []
    for index, path in chunk:
        image = read_image(path)
        box = None
        for cond in ed.conditions():
            if image is None:
                continue
            if cond == "full":
                img = image
            else:
                b = box or degrade.FaceBox.default(image.shape[1], image.shape[0])
                img = (degrade.fixed_size(image, b, ed.EVAL_SIZES[cond]) if cond in ed.EVAL_SIZES else
                       degrade.venue(image, b, np.random.default_rng([index, int(cond[5:])])))
            with native_stderr_to_devnull():
                obs = lm.detect(Frame(Path(path).name, 0, 0.0, img))
            if len(obs) == 0:
                continue
            if cond == "full":
                box = ed._face_box(obs, degrade)
            block = net.run([BLOCK_INPUT], {"input": face_crops_rgb([img], [obs])})[0]
            out.append((index, cond, block[0].transpose(1, 2, 0).astype(np.float16)))  # NHWC
    return out


def read_maps(folder: Path, cache: Path = DEFAULT_MAPS, workers: int = 2) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """condition -> (found [N] bool, block 2's output [N,14,14,128] float16, zeros where no face)."""
    rows = ed.read_labels(folder)
    cache, key = Path(cache), ed._cache_key(rows) + ":dense2"
    if cache.is_file():
        z = np.load(cache)
        if "key" in z and str(z["key"]) == key:
            return {c: (z[f"{c}/found"], z[f"{c}/maps"]) for c in ed.conditions()}
    items = [(i, str(p)) for i, (p, _) in enumerate(rows)]
    chunks = [items[k::workers * 8] for k in range(workers * 8)]
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        results = [r for part in pool.imap_unordered(_maps_chunk, chunks) for r in part]
    data = {c: (np.zeros(len(rows), bool), np.zeros((len(rows), 14, 14, 128), np.float16)) for c in ed.conditions()}
    for index, cond, block in results:
        data[cond][0][index] = True
        data[cond][1][index] = block
    np.savez(cache, key=key, **{f"{c}/{n}": a for c, (f, m) in data.items() for n, a in (("found", f), ("maps", m))})
    return data


# ---------------------------------------------------------------- block 3 + linear layer in JAX (NHWC)

def initial_params() -> dict:
    """face-api's own block 3 and linear layer (dequantised, outputs in the project's class order)."""
    from convert_faceapi_to_onnx import ORDER, read_weights

    w = read_weights(ed.ROOT / "models" / "src" / "face_expression_model-weights_manifest.json")
    p = {}
    for k in range(4):
        pre = f"dense3/conv{k}/"
        p[f"dw{k}"] = w[pre + "depthwise_filter"]  # [3,3,C,1]
        p[f"pw{k}"] = w[pre + "pointwise_filter"][0, 0]  # [C,256]
        p[f"b{k}"] = w[pre + "bias"]
    p["fc_w"], p["fc_b"] = w["fc/weights"][:, list(ORDER)], w["fc/bias"][list(ORDER)]
    return {k: np.asarray(v, np.float32) for k, v in p.items()}


def forward(params, x):
    """[B,14,14,128] block-2 maps -> ([B,7] logits, [B,256] pooled features), TF "same" padding."""
    import jax
    import jax.numpy as jnp

    def separable(h, k, stride):
        c = h.shape[-1]
        depth = jax.lax.conv_general_dilated(h, params[f"dw{k}"].reshape(3, 3, 1, c), (stride, stride), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)
        return depth @ params[f"pw{k}"] + params[f"b{k}"]

    relu = jax.nn.relu
    out1 = relu(separable(x, 0, 2))
    s12 = out1 + separable(out1, 1, 1)
    s123 = s12 + separable(relu(s12), 2, 1)
    h = relu(s123 + separable(relu(s123), 3, 1))
    feats = jnp.mean(h, axis=(1, 2))
    return feats @ params["fc_w"] + params["fc_b"], feats


def train(x: np.ndarray, y: np.ndarray, epochs: int = EPOCHS, seed: int = 0, log=None) -> dict:
    """Fine-tune block 3 + the linear layer on maps `x` [M,14,14,128] with labels `y` [M]."""
    import jax
    import jax.numpy as jnp
    import optax

    counts = np.bincount(y, minlength=7).astype(np.float64)
    class_w = jnp.asarray(len(y) / (7 * np.maximum(counts, 1)), jnp.float32)
    steps = epochs * int(np.ceil(len(y) / BATCH))
    opt = optax.adamw(optax.cosine_decay_schedule(LR, steps), weight_decay=WEIGHT_DECAY)
    params = jax.tree_util.tree_map(jnp.asarray, initial_params())
    state = opt.init(params)

    def loss_fn(p, xb, yb):
        logits, _ = forward(p, xb)
        target = optax.smooth_labels(jax.nn.one_hot(yb, 7), SMOOTHING)
        return jnp.sum(optax.softmax_cross_entropy(logits, target) * class_w[yb]) / jnp.sum(class_w[yb])

    @jax.jit
    def step(p, s, xb, yb):
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, loss

    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        order, total = rng.permutation(len(y)), 0.0
        for start in range(0, len(order) - BATCH + 1, BATCH):  # whole batches only: one compiled shape
            idx = np.sort(order[start:start + BATCH])
            xb = x[idx].astype(np.float32)
            flip = rng.random(len(idx)) < 0.5
            xb[flip] = xb[flip, :, ::-1]
            params, state, loss = step(params, state, jnp.asarray(xb), jnp.asarray(y[idx]))
            total += float(loss)
        if log:
            log(f"  epoch {epoch + 1}/{epochs}: loss {total / max(len(order) // BATCH, 1):.4f}")
    return {k: np.asarray(v) for k, v in params.items()}


def predict(params: dict, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """[M,7] log-probabilities."""
    import jax

    fwd = jax.jit(lambda p, xb: jax.nn.log_softmax(forward(p, xb)[0]))
    out = [np.asarray(fwd(params, x[i:i + batch].astype(np.float32))) for i in range(0, len(x), batch)]
    return np.concatenate(out) if out else np.zeros((0, 7), np.float32)


def training_rows(maps: dict, idx: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for found, m in maps.values():
        keep = idx[found[idx]]
        xs.append(m[keep])
        ys.append(y[keep])
    return np.concatenate(xs), np.concatenate(ys)


def cross_validate(maps: dict, y: np.ndarray, subjects, epochs: int, log=print) -> dict[str, np.ndarray]:
    """condition -> [N,7] out-of-fold log-probabilities (zeros where no face)."""
    import fusion_v2 as v2

    oof = {c: np.zeros((len(y), 7), np.float32) for c in maps}
    for k, (tr, te) in enumerate(v2.folds(y, subjects)):
        t0 = time.time()
        params = train(*training_rows(maps, tr, y), epochs=epochs, seed=k, log=log)
        for c, (found, m) in maps.items():
            keep = te[found[te]]
            oof[c][keep] = predict(params, m[keep])
        log(f"fold {k + 1}: {time.time() - t0:.0f} s")
    return oof


def read_oof(folder: Path, path: Path = DEFAULT_OOF) -> dict[str, np.ndarray]:
    """The out-of-fold log-probabilities `cv` wrote for this photo set (SystemExit if missing or stale)."""
    rows = ed.read_labels(folder)
    if Path(path).is_file():
        z = np.load(path)
        if str(z["key"]).startswith(ed._cache_key(rows) + ":tuned:"):
            return {c: z[c] for c in ed.conditions()}
    raise SystemExit(f"{path}: no out-of-fold readings of the tuned face-api for these photos; run "
                     f"python scripts/tune_faceapi.py {folder} cv")


# ---------------------------------------------------------------- ONNX: face-api + the tuned branch

def export_onnx(params: dict) -> bytes:
    """face-api's graph (models/faceapi_expression.onnx, unchanged) plus a branch from block 2's output
    through the tuned block 3, pooling and linear layer to a softmax, output `tuned_probs` [N,7]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from vision.registry import model_file

    model = onnx.load(str(model_file("faceapi").path))
    g = model.graph

    def const(name, array):
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def node(kind, ins, out, **attrs):
        g.node.append(helper.make_node(kind, ins, [out], **attrs))
        return out

    def separable(x, k, stride):
        dw = params[f"dw{k}"]  # [3,3,C,1] -> [C,1,3,3]
        pads = [0, 0, 1, 1] if stride == 2 else [1, 1, 1, 1]  # TF "same" on an even input
        depth = node("Conv", [x, const(f"t{k}_dw", np.transpose(dw, (2, 3, 0, 1)))], f"tuned/conv{k}_dw",
                     kernel_shape=[3, 3], strides=[stride, stride], pads=pads, group=dw.shape[2])
        pw = params[f"pw{k}"].T[:, :, None, None]  # [Cout,Cin,1,1]
        return node("Conv", [depth, const(f"t{k}_pw", pw), const(f"t{k}_b", params[f"b{k}"])],
                    f"tuned/conv{k}", kernel_shape=[1, 1])

    out1 = node("Relu", [separable(BLOCK_INPUT, 0, 2)], "tuned/out1")
    s12 = node("Add", [out1, separable(out1, 1, 1)], "tuned/s12")
    s123 = node("Add", [s12, separable(node("Relu", [s12], "tuned/in3"), 2, 1)], "tuned/s123")
    h = node("Relu", [node("Add", [s123, separable(node("Relu", [s123], "tuned/in4"), 3, 1)], "tuned/s1234")],
             "tuned/out")
    feats = node("Flatten", [node("GlobalAveragePool", [h], "tuned/pooled")], "tuned/features", axis=1)
    logits = node("Gemm", [feats, const("tuned_fc_w", params["fc_w"]), const("tuned_fc_b", params["fc_b"])],
                  "tuned/logits")
    node("Softmax", [logits], "tuned_probs", axis=-1)
    g.output.append(helper.make_tensor_value_info("tuned_probs", TensorProto.FLOAT, ["N", 7]))
    model.producer_name = "audience scripts/tune_faceapi.py"
    model.doc_string += ("; tuned_probs[7]: a second block 3 + linear layer fine-tuned on the shared expression "
                         "photos and their venue-camera degradations (scripts/tune_faceapi.py)")
    onnx.checker.check_model(model)
    return model.SerializeToString()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("mode", choices=("cv", "export"))
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--workers", type=int, default=2, help="processes reading the photos (first run only)")
    ap.add_argument("--maps", type=Path, default=DEFAULT_MAPS, help="cache of block 2's outputs (.npz)")
    ap.add_argument("--oof", type=Path, default=DEFAULT_OOF, help="cv: where the validation log-probabilities go")
    ap.add_argument("--out", type=Path, default=ed.ROOT / "models" / "faceapi_tuned.onnx")
    args = ap.parse_args(argv)
    rows = ed.read_labels(args.labelled_dir)
    y, subjects = ed.labels_and_subjects(rows)
    maps = read_maps(args.labelled_dir, args.maps, args.workers)
    if args.mode == "cv":
        oof = cross_validate(maps, y, subjects, args.epochs)
        np.savez(args.oof, key=ed._cache_key(rows) + f":tuned:{args.epochs}", **oof)
        for c in ed.EVAL_SIZES:
            found = maps[c][0]
            r = ed.recall_report(y, np.where(found, oof[c].argmax(axis=1), -1))
            print(f"{c:5s} tuned face-api alone: macro 7 {r['macro_recall']:.3f}, macro 5 {r['macro_recall_5']:.3f}")
        print(f"wrote {args.oof}")
        return 0
    params = train(*training_rows(maps, np.arange(len(y)), y), epochs=args.epochs, log=print)
    blob = export_onnx(params)
    from vision.onnx import session

    # the exported branch must agree with JAX on block 2's output of the same (random) crops
    import onnx

    model = onnx.load_from_string(blob)
    model.graph.output.append(onnx.helper.make_tensor_value_info(BLOCK_INPUT, onnx.TensorProto.FLOAT, None))
    crops = np.random.default_rng(0).uniform(0, 255, (16, 3, 112, 112)).astype(np.float32)
    got, block = session(model.SerializeToString()).run(["tuned_probs", BLOCK_INPUT], {"input": crops})
    diff = float(np.abs(got - np.exp(predict(params, block.transpose(0, 2, 3, 1)))).max())
    if diff > 1e-4:
        print(f"error: ONNX and JAX differ by {diff:.2e}", file=sys.stderr)
        return 1
    args.out.write_bytes(blob)
    print(f"wrote {args.out} ({len(blob):,} bytes) sha256 {hashlib.sha256(blob).hexdigest()}; ONNX vs JAX {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
