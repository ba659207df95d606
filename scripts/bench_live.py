"""Live benchmark: `audience live` on a paced 1080p audience clip, in one run.

    python scripts/bench_live.py [../shared/data/expressions] [--seats 32] [--seconds 30] [--rates 2,4]

Generates a synthetic theatre audience (scripts/make_audience.py: 1920x1080, 25 fps) into a temporary
folder, starts `audience serve` on a fresh SQLite database, and runs `audience live --realtime` on the clip
(the file behaves like a camera: frames arrive at 25 fps whether analysis keeps up or not) once per
requested analysis rate. Prints, per rate: achieved analysis rate, the share of frames dropped by the
keep-the-newest policy, and latency p50/p95 from reading a frame to its analysis and from reading the
last frame of a second to the service's acknowledgement of that second.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from _bench import AUDIENCE, ROOT, Stopwatch, make_audience, serving  # first: the project on the import path
from service.uplink.client import ApiClient


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path, nargs="?", default=ROOT.parent / "shared" / "data" / "expressions")
    ap.add_argument("--seats", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rates", default="2,4,8", help="analysis rates to try, frames per second")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = make_audience(args.labelled_dir, tmp, args.seats, args.seconds, "--fps", "25")
        print(f"clip: {args.seats} seats, 1920x1080, 25 fps, {args.seconds:g} s, paced in real time; "
              f"service: SQLite on loopback; machine: 2 cores, everything on them")
        results = []
        with serving(f"sqlite:///{tmp}/live.db") as server:
            base = server.url
            _, content = ApiClient(base).request("POST", "/api/v1/contents", {"title": "bench", "duration_s": args.seconds})
            for rate in [float(r) for r in args.rates.split(",")]:
                _, screening = ApiClient(base).request("POST", "/api/v1/screenings", {"content_id": content["id"]})
                with Stopwatch() as wall:
                    run = subprocess.run([*AUDIENCE, "live", "--source", str(clip), "--realtime", "--scene",
                                          "audience", "--fps", str(rate), "--api", base, "--screening",
                                          str(screening["id"]), "--spool", str(tmp / f"s{rate}.db"),
                                          "--metrics-port", "-1", "--flush-timeout", "60"],
                                         cwd=ROOT, capture_output=True, text=True)
                if run.returncode != 0:
                    raise SystemExit(run.stderr)
                s = json.loads(run.stdout.strip().splitlines()[-1])
                s["wall_s"] = wall.s
                results.append((rate, s))
                print(f"requested {rate:g} frames/s: achieved {s['analysis_fps']:.2f} frames/s "
                      f"({s['frames_analysed']} analysed of {s['frames_read']} offered, "
                      f"drop rate {s['drop_rate']:.1%}), {s['faces'] / max(s['elapsed_s'], 1e-9):.0f} faces/s; "
                      f"latency read->analysed p50 {s['latency_analysed_p50_s'] * 1000:.0f} ms, "
                      f"p95 {s['latency_analysed_p95_s'] * 1000:.0f} ms; read->stored p50 "
                      f"{s['latency_stored_p50_s']:.2f} s, p95 {s['latency_stored_p95_s']:.2f} s; "
                      f"spool left {s['spool_left']}")
    print(json.dumps({f"rate_{r:g}": {k: s[k] for k in ("analysis_fps", "drop_rate", "latency_analysed_p50_s",
                                                         "latency_analysed_p95_s", "latency_stored_p50_s",
                                                         "latency_stored_p95_s", "faces")} for r, s in results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
