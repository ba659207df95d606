"""`audience analyze` on one process vs all cores, same inputs, in one run.

    python scripts/bench_workers.py VIDEO_OR_FOLDER... [--fps N] [--repeat-video 4]

A single video shorter than a minute is first made into a longer one (played forwards and backwards
`--repeat-video` times, into a temporary folder) so it is long enough to be split into segments.
Prints the end-to-end fps of each run (model loading and writing included) and the speed-up ratio,
and checks that both runs wrote the same frames and track ids.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _bench import analyze, cores, read_frames, write_video


def lengthen(video: str, times: int, folder: Path) -> str:
    """VIDEO played forwards and backwards, `times` passes in all, into folder (MJPG)."""
    frames, fps = read_frames(video)
    passes = [frames if k % 2 == 0 else frames[::-1] for k in range(times)]
    return write_video(folder / "long.avi", [f for p in passes for f in p], fps or 25, "MJPG")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--fps", type=float, default=None)
    ap.add_argument("--repeat-video", type=int, default=4)
    args = ap.parse_args(argv)
    extra = ["--fps", str(args.fps)] if args.fps else []
    n_cores = cores()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = args.inputs
        if len(inputs) == 1 and Path(inputs[0]).is_file() and args.repeat_video > 1:
            inputs = [lengthen(inputs[0], args.repeat_video, tmp)]
        t1, s1 = analyze(inputs, tmp / "one", "--workers", "1", *extra)
        tn, sn = analyze(inputs, tmp / "all", "--workers", str(n_cores), *extra)
        import pandas as pd

        a = pd.read_parquet(tmp / "one" / "observations.parquet")
        b = pd.read_parquet(tmp / "all" / "observations.parquet")
        same = a["frame"].tolist() == b["frame"].tolist() and a["track_id"].tolist() == b["track_id"].tolist()
    frames = s1["frames_analysed"]
    print(f"{frames} frames analysed, {s1['faces']} face observations")
    print(f"  1 process : {frames / t1:7.1f} fps end to end ({t1:.1f} s)")
    print(f"  {n_cores} processes: {frames / tn:7.1f} fps end to end ({tn:.1f} s, {sn['workers']} workers used)")
    print(f"speed-up {t1 / tn:.2f}x; same frames and track ids: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
