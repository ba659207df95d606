"""Draw the faces and track ids of one analysed frame on that frame, to look at what the tracker did.

    python scripts/draw_tracks.py VIDEO OUT_DIR [--t SECONDS] [--png /tmp/tracks.png]

OUT_DIR is an `audience analyze` output folder (its observations.parquet). The frame nearest --t that
was analysed is read from VIDEO and written, with every face's box and id, to --png (default in /tmp):
green = expression read, orange = present but below the minimum quality, red = unreadable (found, not
landmarked). The picture is for a person to look at; it never goes into the project or its outputs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np


def annotate(image: np.ndarray, rows, min_quality: float) -> np.ndarray:
    """A copy of the frame with each row's box, track id and quality drawn on it."""
    out = image.copy()
    h, w = out.shape[:2]
    for r in rows.itertuples():
        x0, y0 = int(r.x * w), int(r.y * h)
        x1, y1 = int((r.x + r.w) * w), int((r.y + r.h) * h)
        unreadable = not np.isfinite(r.p_neutral)
        colour = (0, 0, 255) if unreadable else (0, 200, 0) if r.quality >= min_quality else (0, 160, 255)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        label = f"{r.track_id} q{r.quality:.2f}"
        cv2.putText(out, label, (x0, max(y0 - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)
    return out


def main(argv=None) -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--t", type=float, default=0.0, help="seconds: the analysed frame nearest this time")
    ap.add_argument("--png", type=Path, default=Path("/tmp/tracks.png"))
    args = ap.parse_args(argv)
    obs = pd.read_parquet(args.out_dir / "observations.parquet")
    if obs.empty:
        print("no faces in the observations", file=sys.stderr)
        return 1
    min_quality = json.loads((args.out_dir / "summary.json").read_text())["settings"].get("min_quality", 0.0)
    frame = int(obs.loc[(obs["t"] - args.t).abs().idxmin(), "frame"])
    cap = cv2.VideoCapture(str(args.video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
    ok, image = cap.read()
    cap.release()
    if not ok:
        print(f"cannot read frame {frame} of {args.video}", file=sys.stderr)
        return 1
    rows = obs[obs["frame"] == frame]
    cv2.imwrite(str(args.png), annotate(image, rows, min_quality))
    print(f"frame {frame} (t={rows['t'].iloc[0]:.2f} s): {len(rows)} faces, ids {sorted(rows['track_id'].tolist())} "
          f"-> {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
