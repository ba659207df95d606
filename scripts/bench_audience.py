"""Audience-scale benchmark on synthetic theatre audiences (scripts/make_audience.py), in one run.

    python scripts/bench_audience.py ../shared/data/expressions [--seats 32] [--seconds 20] [--fps 2]
                                     [--scaling 10,40,100] [--workers 2] [--against COMMIT] [--repeat N]
                                     [--audience DIR] [--label-rules balanced,probable]

Generates the audiences into a temporary folder, runs `audience analyze --scene audience` on them and
prints, against the ground truth: seat recall (faces found / faces visible, for faces >= 48 px tall),
duplicate and false-positive rates, id switches per seat-hour, the per-second correlation between the
measured happiness share (mean p_happiness) and the true share, the share of matched faces whose label is
their true expression and the label shares, frames/s and faces analysed/s, and how the cost per frame grows
with the number of faces (--scaling). `--label-rules balanced,probable` analyses the audience again under each
`--label-rule` and prints its labels against the truth.

`--against COMMIT` also analyses the same audience with that git commit's code (`git archive` into a temporary
folder), the two runs interleaved `--repeat` times, and prints faces/s of each and their ratio (the same run:
a loaded host slows both alike), and faces per CPU second of the whole analysis (workers included) times the
worker count: the faces/s the workers would reach on that many idle cores, robust to the host's load (an upper
bound: the serial start and end of a run are counted as if they ran in parallel). `--audience DIR` reuses an audience made earlier (make_audience.py's folder)
instead of making one.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vision.tracker import iou_matrix  # noqa: E402

MIN_FACE_PX = 48


def generate(labelled: Path, out: Path, seats: int, seconds: float) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_audience.py"), str(labelled), "--out", str(out),
                    "--seats", str(seats), "--seconds", str(seconds)], check=True, stdout=subprocess.DEVNULL)


def analyse(folder: Path, fps: float, workers: int, extra=(), code: Path = ROOT, out: str = "out") -> tuple[float, dict]:
    """`audience analyze` on the folder's audience with the code in `code` (this checkout or an archived commit)."""
    import os

    env = {**os.environ, "PYTHONPATH": str(code)}
    t0, c0 = time.perf_counter(), _children_cpu()
    subprocess.run([sys.executable, "-m", "service.cli", "analyze", str(folder / "audience.avi"), "--scene", "audience",
                    "--fps", str(fps), "--out", str(folder / out), "--quiet", "--workers", str(workers), *extra],
                   check=True, cwd=code, env=env)
    summary = json.loads((folder / out / "summary.json").read_text())
    summary["cpu_seconds"] = _children_cpu() - c0
    return time.perf_counter() - t0, summary


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and theirs (the analysis and its workers)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def archived(commit: str, into: Path) -> Path:
    """The tree of a git commit, written into `into` (models included: they are in git)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def analysed_frames(n_frames: int, source_fps: float, rate: float) -> list[int]:
    """The frames the capture selects at an analysis rate: where floor(t * rate) moves on."""
    ticks = np.floor(np.arange(n_frames) / source_fps * rate + 1e-9)
    return [0] + [i for i in range(1, n_frames) if ticks[i] != ticks[i - 1]]


def evaluate(folder: Path, rate: float, out: str = "out") -> dict:
    import pandas as pd

    truth = pd.read_csv(folder / "truth.csv")
    obs = pd.read_parquet(folder / out / "observations.parquet")
    meta = json.loads((folder / "seats.json").read_text())
    by_frame = dict(tuple(obs.groupby("frame")))
    visible = found = duplicates = false_pos = 0
    seat_ids: dict[int, list[tuple[int, int]]] = {}  # seat -> [(frame, track id)]
    labels: list[tuple[str, str]] = []  # (true, read) expression of each matched face with a reading
    away = truth[truth["visible"] == 0].groupby("seat")["frame"].apply(set).to_dict()
    for f in analysed_frames(int(truth["frame"].max()) + 1, meta["fps"], rate):
        t_rows = truth[(truth["frame"] == f) & (truth["visible"] == 1)]
        o_rows = by_frame.get(f)
        big = (t_rows["h"] * meta["height"] >= MIN_FACE_PX).to_numpy()
        visible += int(big.sum())
        if o_rows is None or len(o_rows) == 0:
            continue
        if len(t_rows) == 0:
            false_pos += len(o_rows)
            continue
        iou = iou_matrix(t_rows[["x", "y", "w", "h"]].to_numpy(), o_rows[["x", "y", "w", "h"]].to_numpy())
        best_truth, best_iou = iou.argmax(axis=0), iou.max(axis=0)
        matched = set()
        for j in np.argsort(-best_iou):
            if best_iou[j] < 0.3:
                false_pos += 1
            elif best_truth[j] in matched:
                duplicates += 1
            else:
                matched.add(best_truth[j])
                seat = int(t_rows["seat"].iloc[best_truth[j]])
                seat_ids.setdefault(seat, []).append((f, int(o_rows["track_id"].iloc[j])))
                if o_rows["emotion"].iloc[j]:
                    labels.append((t_rows["emotion"].iloc[best_truth[j]], o_rows["emotion"].iloc[j]))
        found += sum(1 for i in matched if big[i])
    # a switch: the id of a seat changes while its viewer stayed (a viewer who left may come back new)
    switches = sum(1 for seat, seq in seat_ids.items() for (f0, a), (f1, b) in zip(seq, seq[1:])
                   if a != b and not any(f0 < g < f1 for g in away.get(seat, ())))
    seat_seconds = truth["visible"].sum() / meta["fps"]
    truth["sec"] = np.floor(truth["t"]).astype(int)
    true_share = truth[truth["visible"] == 1].groupby("sec")["emotion"].apply(lambda e: float((e == "happiness").mean()))
    curves = pd.read_csv(folder / out / "curves.csv").set_index("t")
    common = [s for s in true_share.index if s in curves.index and np.isfinite(curves.loc[s, "p_happiness"])]
    r = float(np.corrcoef(true_share.loc[common], curves.loc[common, "p_happiness"])[0, 1]) if len(common) > 2 else float("nan")
    n_obs = max(len(obs), 1)
    true_label, read_label = np.array([t for t, _ in labels]), np.array([r for _, r in labels])
    return {"label_accuracy": float((true_label == read_label).mean()) if labels else float("nan"),
            "label_shares": {e: float((read_label == e).mean()) for e in sorted(set(read_label))},
            "true_shares": {e: float((true_label == e).mean()) for e in sorted(set(true_label))},
            "labelled_faces": len(labels), "recall": found / max(visible, 1), "visible": visible, "found": found,
            "duplicate_rate": duplicates / n_obs, "false_positive_rate": false_pos / n_obs,
            "id_switches": switches, "id_switches_per_seat_hour": switches / max(seat_seconds / 3600, 1e-9),
            "happiness_r": r}


def _shares(shares: dict) -> str:
    return ", ".join(f"{e} {v:.2f}" for e, v in sorted(shares.items(), key=lambda kv: -kv[1]))


def tiles_recall(folder: Path, grid: int, frames: int = 5, overlap: float = 0.2) -> float:
    """The alternative front end, for comparison: MediaPipe's landmarker alone on grid x grid overlapping
    tiles of the whole frame (no MTCNN). Recall of faces >= 48 px on the first `frames` seconds."""
    import cv2
    import pandas as pd

    from vision.capture import Frame
    from vision.detector import nms
    from vision.landmarker import Landmarker, LandmarkerOptions, boxes_from_landmarks
    from vision.registry import model_file
    from vision.quiet import native_stderr_to_devnull

    truth = pd.read_csv(folder / "truth.csv")
    meta = json.loads((folder / "seats.json").read_text())
    cap = cv2.VideoCapture(str(folder / "audience.avi"))
    found = visible = 0
    with native_stderr_to_devnull():
        lm = Landmarker(LandmarkerOptions(model_file("face_landmarker").path, mode="image", max_faces=50,
                                          image_padding=0.0))
        try:
            for k in range(frames):
                f = int(k * meta["fps"])
                cap.set(cv2.CAP_PROP_POS_FRAMES, f)
                ok, image = cap.read()
                if not ok:
                    break
                h, w = image.shape[:2]
                tw, th = w / grid * (1 + overlap), h / grid * (1 + overlap)
                boxes = []
                for gy in range(grid):
                    for gx in range(grid):
                        x0 = int(min(max(gx * w / grid - (tw - w / grid) / 2, 0), w - tw))
                        y0 = int(min(max(gy * h / grid - (th - h / grid) / 2, 0), h - th))
                        tile = image[y0:y0 + int(th), x0:x0 + int(tw)]
                        b = boxes_from_landmarks(lm.landmark(Frame("t", 0, 0.0, tile))[0])
                        for x, y, bw, bh in b:
                            boxes.append([(x0 + x * tile.shape[1]) / w, (y0 + y * tile.shape[0]) / h,
                                          bw * tile.shape[1] / w, bh * tile.shape[0] / h])
                boxes = np.array(boxes).reshape(-1, 4)
                if len(boxes):
                    xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)
                    boxes = boxes[nms(xyxy, boxes[:, 2] * boxes[:, 3], 0.3)]
                t_rows = truth[(truth["frame"] == f) & (truth["visible"] == 1)]
                t_rows = t_rows[t_rows["h"] * meta["height"] >= MIN_FACE_PX]
                visible += len(t_rows)
                if len(boxes) and len(t_rows):
                    found += int((iou_matrix(t_rows[["x", "y", "w", "h"]].to_numpy(), boxes).max(axis=1) >= 0.3).sum())
        finally:
            lm.close()
    return found / max(visible, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--seats", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=2.0, help="analysis rate")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--scaling", default="10,40,100", help="seat counts for the cost-growth runs ('' to skip)")
    ap.add_argument("--compare-tiles", default="2,3,4", help="grids for the tiled-MediaPipe comparison ('' to skip)")
    ap.add_argument("--audience", type=Path, default=None, help="an audience folder made earlier (reused as is)")
    ap.add_argument("--against", default=None, help="a git commit analysed too, interleaved (faces/s ratio)")
    ap.add_argument("--repeat", type=int, default=1, help="with --against: runs of each")
    ap.add_argument("--label-rules", default="", help="also analyse under each of these --label-rule values "
                    "(e.g. balanced,probable) and print each face's label against the truth")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        main_dir = args.audience or Path(tmp) / f"seats{args.seats}"
        if args.audience is None:
            generate(args.labelled_dir, main_dir, args.seats, args.seconds)
        if args.against:
            old = archived(args.against, Path(tmp) / "against")
            rates: dict[str, list[float]] = {"this checkout": [], args.against: []}
            cpu_rates: dict[str, list[float]] = {"this checkout": [], args.against: []}
            for _ in range(args.repeat):
                for name, code, out in (("this checkout", ROOT, "out"), (args.against, old, "out-against")):
                    e, s = analyse(main_dir, args.fps, args.workers, code=code, out=out)
                    rates[name].append(s["faces"] / e)
                    cpu_rates[name].append(s["faces"] / s["cpu_seconds"] * args.workers)
                    if code == ROOT:
                        elapsed, summary = e, s  # this checkout's last run, for the figures below
            mo = evaluate(main_dir, args.fps, "out-against")
            for name, r in rates.items():
                print(f"  {name}: faces analysed/s " + ", ".join(f"{x:.1f}" for x in r) + f"; per CPU second x "
                      f"{args.workers} workers " + ", ".join(f"{x:.1f}" for x in cpu_rates[name]))
            now, before = np.median(rates["this checkout"]), np.median(rates[args.against])
            cnow, cbefore = np.median(cpu_rates["this checkout"]), np.median(cpu_rates[args.against])
            print(f"  this checkout / {args.against}: wall {now / before:.3f} (medians {now:.1f} / {before:.1f} faces/s), "
                  f"CPU {cnow / cbefore:.3f} ({cnow:.1f} / {cbefore:.1f} faces/s on {args.workers} idle cores), "
                  f"interleaved, the same run; {args.against}: recall {mo['recall']:.3f}, id switches "
                  f"{mo['id_switches']}, happiness r {mo['happiness_r']:.3f}")
        else:
            elapsed, summary = analyse(main_dir, args.fps, args.workers)
        m = evaluate(main_dir, args.fps)
        layout = json.loads((main_dir / "seats.json").read_text())  # the audience analysed (--audience: as made)
        with open(main_dir / "truth.csv", newline="") as f:
            seconds = max(float(r["t"]) for r in csv.DictReader(f)) + 1 / layout["fps"]
        print(f"{len(layout['seats'])} seats, {seconds:g} s at analysis rate {args.fps:g} fps, "
              f"{layout['width']}x{layout['height']}:")
        print(f"  seat recall (faces >= {MIN_FACE_PX} px): {m['recall']:.3f} ({m['found']}/{m['visible']})   target >= 0.95")
        print(f"  duplicate rate {m['duplicate_rate']:.3f}, false-positive rate {m['false_positive_rate']:.3f}")
        print(f"  id switches: {m['id_switches']} = {m['id_switches_per_seat_hour']:.1f} per seat-hour   target <= 1")
        print(f"  happiness share per second, correlation with truth: r = {m['happiness_r']:.3f}   target >= 0.9")
        print(f"  {summary['frames_analysed'] / elapsed:.2f} frames/s, {summary['faces'] / elapsed:.1f} faces analysed/s "
              f"end to end ({elapsed:.1f} s, {args.workers} worker(s))   target >= 100 faces/s; "
              f"{summary['faces'] / summary['cpu_seconds'] * args.workers:.1f} faces/s on {args.workers} idle cores "
              f"(faces per CPU second x workers)")
        for grid in [int(g) for g in args.compare_tiles.split(",") if g.strip()]:
            print(f"  for comparison, MediaPipe alone on {grid}x{grid} overlapping tiles: recall "
                  f"{tiles_recall(main_dir, grid):.3f}")
        print(f"  labels of matched faces against the truth: {m['label_accuracy']:.3f} right; shares "
              + _shares(m["label_shares"]) + " (truth " + _shares(m["true_shares"]) + ")")
        for rule in [r for r in args.label_rules.split(",") if r.strip()]:
            r = m  # the run above already labelled by its rule in force (summary: settings.label_rule)
            if rule != summary["settings"]["label_rule"]:
                analyse(main_dir, args.fps, args.workers, extra=("--label-rule", rule), out=f"out-{rule}")
                r = evaluate(main_dir, args.fps, f"out-{rule}")
            print(f"  --label-rule {rule}: labels {r['label_accuracy']:.3f} right ({r['labelled_faces']} faces); "
                  "shares " + _shares(r["label_shares"]))
        sizes = [int(s) for s in args.scaling.split(",") if s.strip()]
        rows = []
        for seats in sizes:
            d = Path(tmp) / f"scale{seats}"
            generate(args.labelled_dir, d, seats, 12.0)
            e, s = analyse(d, args.fps, args.workers)
            rows.append((seats, s["faces"] / max(s["frames_analysed"], 1), e / max(s["frames_analysed"], 1), s["faces"] / e))
        if rows:
            print("cost growth (12 s clips, end to end, model loading included):")
            for seats, faces, per_frame, fps in rows:
                print(f"  {seats:4d} seats: {faces:6.1f} faces/frame, {per_frame:6.2f} s/frame, "
                      f"{1000 * per_frame / max(faces, 1):6.1f} ms/face, {fps:6.1f} faces/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
