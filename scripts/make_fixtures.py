"""Build the redistributable test fixtures from scikit-image's public-domain astronaut photo.

    python scripts/make_fixtures.py PATH/TO/skimage/data/astronaut.png

The photo (Eileen Collins, NASA, public domain) ships in the scikit-image wheel at
`skimage/data/astronaut.png`. Writes into fixtures/:
- `two_faces.mp4`: 640x360, 15 fps, 5 s. Two faces (the photo and its mirror image) drifting slowly;
  the right-hand face leaves at 2.0 s and comes back at 3.5 s. Ground truth in `two_faces.json`.
- `images/astronaut.jpg` (one face), `images/mirrored.jpg` (one face), `images/empty.png` (no face).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "fixtures"
W, H, FPS, SECONDS = 640, 360, 15, 5.0
FACE = 220  # pixels: each copy of the photo's head-and-shoulders crop
RIGHT_GONE = (2.0, 3.5)  # seconds during which the right-hand face is out of the frame


def portrait(photo: np.ndarray) -> np.ndarray:
    crop = photo[0:300, 90:390]  # head and shoulders
    return cv2.resize(crop, (FACE, FACE), interpolation=cv2.INTER_AREA)


def frame_at(t: float, left: np.ndarray, right: np.ndarray, background: np.ndarray) -> np.ndarray:
    img = background.copy()
    dx = int(round(12 * np.sin(2 * np.pi * t / 2.5)))
    dy = int(round(6 * np.sin(2 * np.pi * t / 1.7)))
    y0 = (H - FACE) // 2 + dy
    img[y0:y0 + FACE, 70 + dx:70 + dx + FACE] = left
    if not RIGHT_GONE[0] <= t < RIGHT_GONE[1]:
        img[y0:y0 + FACE, 350 - dx:350 - dx + FACE] = right
    return img


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", help="skimage/data/astronaut.png from the scikit-image wheel")
    args = parser.parse_args(argv)
    photo = cv2.imread(args.photo, cv2.IMREAD_COLOR)
    if photo is None:
        print(f"error: {args.photo}: not readable", file=sys.stderr)
        return 1
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    left = portrait(photo)
    right = cv2.flip(left, 1)
    rng = np.random.default_rng(0)
    background = np.clip(rng.normal(40, 6, (H, W, 3)), 0, 255).astype(np.uint8)
    writer = cv2.VideoWriter(str(OUT / "two_faces.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    n = int(SECONDS * FPS)
    for i in range(n):
        writer.write(frame_at(i / FPS, left, right, background))
    writer.release()
    truth = {"fps": FPS, "frames": n, "faces": 2, "right_face_absent_s": list(RIGHT_GONE),
             "note": "two copies of one public-domain photo (one mirrored); right copy leaves and returns"}
    (OUT / "two_faces.json").write_text(json.dumps(truth, indent=2) + "\n")
    cv2.imwrite(str(OUT / "images" / "astronaut.jpg"), photo[0:320, 80:400], [cv2.IMWRITE_JPEG_QUALITY, 85])
    cv2.imwrite(str(OUT / "images" / "mirrored.jpg"), right, [cv2.IMWRITE_JPEG_QUALITY, 85])
    cv2.imwrite(str(OUT / "images" / "empty.png"), background[:120, :160])
    print(f"wrote fixtures to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
