"""Build a synthetic theatre-audience video with ground truth, from labelled face photos.

    python scripts/make_audience.py ../shared/data/expressions --out /tmp/audience [--seats 32] [--seconds 20]

One person per seat, in rows from the back (small faces) to the front (large faces), in a dark room lit
by a flickering screen, with small head motion and sensor noise. Each seat shows its person's neutral
photo, and switches to their happy photo during scripted funny moments (each seat laughs in some of
them, with its own onset); a few viewers leave and come back. Writes `audience.avi` (MJPG) and
`truth.csv` (frame, t, seat, visible, emotion, x, y, w, h: the face box normalised 0-1), plus
`seats.json` (seat centres). Generate into a temporary folder: the photos are third-party and are never
committed.
"""
from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expression_data as ed  # noqa: E402
from _bench import parser  # noqa: E402


def pick_people(folder: Path, n: int, rng) -> list[tuple[Path, Path]]:
    """(neutral photo, happy photo) of n different people who have both, web portraits first."""
    by_person: dict[str, dict[str, Path]] = defaultdict(dict)
    for path, label in ed.read_labels(folder):
        if ed.kind_of(path.name) == "web" and ed.EMOTIONS[label] in ("neutral", "happiness"):
            by_person[ed.subject_of(path.name)].setdefault(ed.EMOTIONS[label], path)
    people = sorted(p for p, d in by_person.items() if len(d) == 2)
    if not people:
        raise SystemExit("error: no person with both a neutral and a happy photo in " + str(folder))
    chosen = [people[i] for i in rng.permutation(len(people))]
    chosen = (chosen * (n // len(chosen) + 1))[:n]  # people repeat only when seats outnumber them
    return [(by_person[p]["neutral"], by_person[p]["happiness"]) for p in chosen]


def face_patch(path: Path, size: int) -> np.ndarray:
    """The central face region of a portrait, as a size x size BGR patch."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    side = int(min(h, w) * 0.92)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return cv2.resize(img[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA)


def layout(seats: int, width: int, height: int) -> list[dict]:
    cols = int(np.ceil(np.sqrt(seats * 2.5)))
    rows = int(np.ceil(seats / cols))
    out = []
    for r in range(rows):  # r = 0 is the back row
        face = int(48 + (140 - 48) * (r / max(rows - 1, 1)))  # face height in px
        face = max(48, min(face, int(0.7 * width / cols), int(0.6 * height / rows)))
        y = int(height * (0.12 + 0.76 * (r + 0.5) / rows))
        n = min(cols, seats - r * cols)
        for c in range(n):
            x = int(width * (c + 0.5) / cols)
            out.append({"seat": len(out), "row": r, "cx": x, "cy": y, "face": face})
    return out


def main(argv=None) -> int:
    ap = parser(__doc__, seats=32, seconds=20.0, fps=10.0, width=1920, height=1080, seed=0)
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    seats = layout(args.seats, args.width, args.height)
    people = pick_people(args.labelled_dir, len(seats), rng)
    n_frames = int(args.seconds * args.fps)
    # funny moments: a third of the time; each seat laughs in each moment with p=0.75, onset jittered
    moments = [(s, s + args.seconds / 8) for s in np.arange(args.seconds / 8, args.seconds, args.seconds / 3)]
    for s in seats:
        s["laughs"] = [(a + rng.uniform(0, 0.8), b + rng.uniform(-0.5, 0.5)) for a, b in moments if rng.random() < 0.75]
        s["away"] = None
        s["phase"] = rng.uniform(0, 2 * np.pi, 3)
    for s in rng.choice(seats, size=max(1, len(seats) // 12), replace=False):  # some viewers step out
        start = rng.uniform(0.2, 0.6) * args.seconds
        s["away"] = (start, start + rng.uniform(0.15, 0.3) * args.seconds)
    patches = {}
    for s, (neutral, happy) in zip(seats, people):
        size = int(s["face"] * 1.25)
        patches[s["seat"]] = {"neutral": face_patch(neutral, size), "happiness": face_patch(happy, size)}
    yy, xx = np.mgrid[0:1:complex(0, 256), 0:1:complex(0, 256)]
    oval = np.clip((1.0 - np.hypot((xx - 0.5) / 0.46, (yy - 0.5) / 0.5)) / 0.12, 0, 1).astype(np.float32)

    background = np.full((args.height, args.width, 3), 18, np.uint8)
    for s in seats:  # seat backs below each face
        cv2.rectangle(background, (s["cx"] - s["face"], s["cy"] + s["face"] // 2),
                      (s["cx"] + s["face"], s["cy"] + 2 * s["face"]), (30, 28, 34), -1)
    writer = cv2.VideoWriter(str(args.out / "audience.avi"), cv2.VideoWriter_fourcc(*"MJPG"), args.fps,
                             (args.width, args.height))
    with open(args.out / "truth.csv", "w", newline="") as f:
        truth = csv.writer(f)
        truth.writerow(["frame", "t", "seat", "visible", "emotion", "x", "y", "w", "h"])
        for i in range(n_frames):
            t = i / args.fps
            light = 0.75 + 0.12 * np.sin(2 * np.pi * t / 3.1) + rng.normal(0, 0.03)
            frame = background.astype(np.float32)
            for s in seats:
                visible = not (s["away"] and s["away"][0] <= t < s["away"][1])
                emotion = "happiness" if any(a <= t < b for a, b in s["laughs"]) else "neutral"
                dx = int(round(0.04 * s["face"] * np.sin(2 * np.pi * t / 4 + s["phase"][0])))
                dy = int(round(0.03 * s["face"] * np.sin(2 * np.pi * t / 5 + s["phase"][1])))
                patch = patches[s["seat"]][emotion]
                size = patch.shape[0]
                x0, y0 = s["cx"] - size // 2 + dx, s["cy"] - size // 2 + dy
                if visible:
                    alpha = cv2.resize(oval, (size, size))[..., None]
                    region = frame[y0:y0 + size, x0:x0 + size]
                    region[:] = region * (1 - alpha) + patch.astype(np.float32) * alpha
                fw, fh = 0.8 * size, 0.9 * size  # the face inside the patch
                truth.writerow([i, f"{t:.4f}", s["seat"], int(visible), emotion if visible else "",
                                f"{(x0 + (size - fw) / 2) / args.width:.5f}", f"{(y0 + (size - fh) / 2) / args.height:.5f}",
                                f"{fw / args.width:.5f}", f"{fh / args.height:.5f}"])
            frame = frame * light + rng.normal(0, 4, frame.shape)
            writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    writer.release()
    (args.out / "seats.json").write_text(json.dumps(
        {"width": args.width, "height": args.height, "fps": args.fps,
         "seats": [{k: s[k] for k in ("seat", "row", "cx", "cy", "face")} for s in seats]}, indent=1))
    print(f"wrote {args.out}/audience.avi ({n_frames} frames, {len(seats)} seats, faces "
          f"{min(s['face'] for s in seats)}-{max(s['face'] for s in seats)} px) and truth.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
