"""A dim grey variant of a folder of photos, as a dark hall or an infrared venue camera sees it.

    python scripts/make_dim_crowds.py ../shared/data/crowds/images /tmp/crowds_dim [--gamma 1.6] [--gain 0.45] [--noise 4]

Each photo becomes grey (luma), darker in the mid-tones (gamma), darker overall (gain), with sensor noise
(Gaussian, sigma in 8-bit levels, seeded by the file name so a run is repeatable), saved as 3-channel JPEG
(quality 95). Defaults: gamma 1.6, gain 0.45, noise sigma 4, as in issue 11. Write outside the project
(WIDER FACE photos are never copied into it); `bench_crowds.py --dim` makes the same variant on the fly.
"""
from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

GAMMA, GAIN, NOISE = 1.6, 0.45, 4.0


def dim(image_bgr: np.ndarray, gamma: float = GAMMA, gain: float = GAIN, noise: float = NOISE,
        seed: int | str = 0) -> np.ndarray:
    """BGR uint8 -> the dim grey variant, BGR uint8: 255 * gain * (grey / 255) ** gamma + N(0, noise)."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    seed = zlib.crc32(seed.encode()) if isinstance(seed, str) else seed
    out = 255.0 * gain * grey ** gamma + np.random.default_rng(seed).normal(0.0, noise, grey.shape)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--gamma", type=float, default=GAMMA)
    ap.add_argument("--gain", type=float, default=GAIN)
    ap.add_argument("--noise", type=float, default=NOISE, help="sensor noise sigma, 8-bit levels")
    args = ap.parse_args(argv)
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        print(f"{args.images}: no photos", file=sys.stderr)
        return 5
    args.out.mkdir(parents=True, exist_ok=True)
    for p in files:
        img = cv2.imread(str(p))
        if img is None:
            print(f"{p}: not readable, skipped", file=sys.stderr)
            continue
        cv2.imwrite(str(args.out / p.name), dim(img, args.gamma, args.gain, args.noise, seed=p.name),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    print(f"{len(files)} photos -> {args.out} (gamma {args.gamma}, gain {args.gain}, noise sigma {args.noise})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
