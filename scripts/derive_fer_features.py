"""Write fer's graph with its penultimate features as a second output, the file the fusion heads v5/v6 read.

    python scripts/derive_fer_features.py [--out models/fer_mini_xception_features.onnx]

The pinned `models/fer_mini_xception.onnx` plus `GlobalAveragePool(add_4) -> Flatten` as a second output
`features` [N,128] (`vision.classifier.with_pooled_output`; its `probs` are bit-identical to the plain graph's,
checked here on random crops before writing). Shipped pinned in models/models.json as `cnn_features`, so a
plain install reads it without the `onnx` package. Prints the file's sha256.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from vision import onnx  # noqa: E402
from vision.classifier import FER_FEATURES, with_pooled_output  # noqa: E402
from vision.registry import model_file, sha256_of  # noqa: E402


def derive(out: Path) -> str:
    plain = model_file("cnn").path
    data = with_pooled_output(plain.read_bytes())
    crops = np.random.default_rng(0).uniform(-1, 1, (8, 1, 64, 64)).astype(np.float32)
    probs = onnx.session(plain).run(["probs"], {"input": crops})[0]
    probs2, features = onnx.session(data).run(["probs", "features"], {"input": crops})
    if not np.array_equal(probs, probs2) or features.shape != (8, FER_FEATURES):
        raise SystemExit("derive_fer_features: the derived graph's probs differ from fer's; nothing written")
    out.write_bytes(data)
    return sha256_of(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "fer_mini_xception_features.onnx")
    args = ap.parse_args(argv)
    print(f"{args.out}: sha256 {derive(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
