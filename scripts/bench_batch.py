"""`audience batch` throughput: the same recordings with --engine local and on Ray with 1 and 2 nodes.

    python scripts/bench_batch.py [../shared/data/video/WolfgangLanger_Pexels.mp4] [--recordings 4] [--fps N]

Makes a season of `--recordings` recordings (links to VIDEO, one screening each) and runs the whole batch
command on it three times, each into a fresh SQLite database and output folder:
1. `--engine local --workers 1`, pinned to core 0;
2. `--engine ray` on a one-node cluster (the node's processes pinned to core 0, one CPU);
3. `--engine ray` on two nodes (the second pinned to core 1, one CPU).
The driver of every run is pinned to core 0 as well. Prints frames/s of each run, the ratios
ray(1 node)/local and ray(2 nodes)/ray(1 node), the largest worker resident set (memory per job in flight),
and the machine's load (`uptime`) before and after, since other work on the machine skews every figure.
The cluster binds to 127.0.0.1 and is shut down at the end.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import resource
import subprocess
import tempfile
from pathlib import Path
from unittest import mock

from _bench import AUDIENCE, ROOT, Stopwatch, peak_rss_mb

ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
       "PYTHONPATH": str(ROOT)}
NODE = dict(num_cpus=1, node_ip_address="127.0.0.1", object_store_memory=100 * 2 ** 20)


def pinned(cores: set[int]):
    return lambda: os.sched_setaffinity(0, cores)


def batch(manifest: Path, out: Path, fps: float | None, *extra: str) -> tuple[float, int, float, float]:
    """(seconds, frames analysed, worker peak RSS MB from the summary line or None, seconds inside jobs)."""
    args = [*AUDIENCE, "batch", str(manifest), "--db", f"sqlite:///{out}.db", "--out",
            str(out), *extra, *(["--fps", str(fps)] if fps else [])]
    with Stopwatch() as wall:
        r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **ENV},
                           preexec_fn=pinned({0}))
    seconds = wall.s
    if r.returncode != 0:
        raise SystemExit(f"batch failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    with open(out / "_summary.csv", newline="") as f:
        done = [row for row in csv.DictReader(f) if row["status"] == "done"]
    frames, in_jobs = sum(int(r["frames"]) for r in done), sum(float(r["seconds"]) for r in done)
    rss = re.search(r"worker peak RSS (\d+) MB", r.stdout)
    return seconds, frames, float(rss.group(1)) if rss else None, in_jobs


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path, nargs="?",
                    default=Path(os.environ.get("AUDIENCE_SHARED", ROOT.parent / "shared")) / "data" / "video"
                    / "WolfgangLanger_Pexels.mp4")
    ap.add_argument("--recordings", type=int, default=4)
    ap.add_argument("--fps", type=float, default=None, help="analysis rate (default: every frame)")
    args = ap.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 cores (one per node)")
    os.environ.update(ENV)
    from ray.cluster_utils import Cluster

    print(f"load before: {uptime()}")
    with tempfile.TemporaryDirectory(prefix="bb", dir="/tmp") as tmp:
        tmp = Path(tmp)
        rows = ["path,content,screening,camera"]
        for k in range(args.recordings):
            (tmp / f"rec{k}{args.video.suffix}").symlink_to(args.video.resolve())
            rows.append(f"rec{k}{args.video.suffix},Bench,night {k},cam")
        manifest = tmp / "season.csv"
        manifest.write_text("\n".join(rows) + "\n")
        results = {}
        t, frames, _, in_jobs = batch(manifest, tmp / "local", args.fps, "--engine", "local", "--workers", "1")
        results["local, 1 core"] = (t, frames, peak_rss_mb(resource.RUSAGE_CHILDREN), in_jobs)
        everything = os.sched_getaffinity(0)
        cluster = None
        (tmp / "ray").mkdir()  # Ray's default folder (RAY_TMPDIR/ray), where the cluster writes its address file:
        with mock.patch.dict(os.environ, {"RAY_TMPDIR": str(tmp)}):  # here, not /tmp/ray (a fresh machine lacks it)
            try:
                os.sched_setaffinity(0, {0})  # the node's processes inherit the core
                cluster = Cluster(initialize_head=True, head_node_args=dict(NODE, include_dashboard=False,
                                                                            temp_dir=str(tmp / "ray")))
                results["ray, 1 node"] = batch(manifest, tmp / "ray1", args.fps, "--engine", "ray", "--address",
                                               cluster.address)
                os.sched_setaffinity(0, {1})
                cluster.add_node(**NODE)
                os.sched_setaffinity(0, everything)
                results["ray, 2 nodes"] = batch(manifest, tmp / "ray2", args.fps, "--engine", "ray", "--address",
                                                cluster.address)
            finally:
                os.sched_setaffinity(0, everything)
                if cluster is not None:
                    cluster.shutdown()
    print(f"{args.recordings} recordings of {args.video.name}, analysis rate {args.fps or 'every frame'}")
    for name, (t, frames, rss, in_jobs) in results.items():
        print(f"  {name:15s} {t:7.1f} s  {frames / t:7.1f} frames/s  ({frames} frames; {in_jobs:.1f} s inside "
              f"jobs, summed over workers; peak RSS of a worker {rss:.0f} MB)")
    rate = {k: r[1] / r[0] for k, r in results.items()}
    print(f"ray 1 node / local: {rate['ray, 1 node'] / rate['local, 1 core']:.2f} (overhead "
          f"{100 * (1 - rate['ray, 1 node'] / rate['local, 1 core']):.0f}%); ray 2 nodes / 1 node: "
          f"{rate['ray, 2 nodes'] / rate['ray, 1 node']:.2f}")
    print(f"load after: {uptime()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
