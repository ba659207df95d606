"""In-process timing of the curve paths on one database, for comparing two checkouts on the same data
(bench_api's HTTP figures swing 2-3x on a shared host; this measures the query alone).

    python scripts/bench_curve_paths.py build sqlite:////tmp/curves.db [--small]
    python scripts/bench_curve_paths.py time sqlite:////tmp/curves.db [--code /path/to/other/checkout]

build: one content, 50 screenings x 7,200 s of camera-seconds of 200 faces (as bench_api loads them);
--small adds a 51st screening of 3 faces in every second (below K = 5: left out of every answer).
time: median of 15 queries (K = 5, 4 metrics) of the whole content at 1 s and 10 s, and of 10 screenings
at 1 s, with the `service` package of --code (default: this checkout). Run both checkouts alternately.
(Before the atoms, wide buckets were computed from track_second, which this data leaves empty: compare
the 10 s figure only between checkouts that sum camera-seconds.)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def build(url: str, small: bool) -> None:
    from sqlmodel import Session

    from service import store
    from service.db import make_engine, migrate
    from service.models import Content, Screening, camera_second
    from vision.stats import VALUES

    engine = make_engine(url)
    migrate(engine)
    rng = np.random.default_rng(0)
    with Session(engine) as s:
        content = Content(title="bench", duration_s=7200)
        s.add(content)
        s.commit()
        cid = content.id
        ids = []
        for _ in range(51 if small else 50):
            screening = Screening(content_id=cid)
            s.add(screening)
            s.commit()
            ids.append(screening.id)
    with engine.begin() as conn:
        for j, sid in enumerate(ids):
            k = 3 if j == 50 else 200
            for start in range(0, 7200, 1800):
                secs = np.arange(start, start + 1800)
                m = rng.uniform(0.3, 0.7, (len(secs), len(VALUES))) * k
                conn.execute(camera_second.insert(), [
                    {"screening_id": sid, "camera": "cam1", "second": int(x), "k": k,
                     **{f"m_{v}": float(m[i, q]) for q, v in enumerate(VALUES)},
                     **{f"mm_{v}": float(m[i, q] ** 2 / k * 1.1) for q, v in enumerate(VALUES)}}
                    for i, x in enumerate(secs)])
    with Session(engine) as s:
        store.refresh_content(s, cid)
        s.commit()
    print(f"built content {cid}: {len(ids)} screenings")


def timing(url: str, queries: int = 15) -> dict:
    from sqlmodel import Session

    from service import store
    from service.db import make_engine

    metrics = ["p_happiness", "valence", "smile", "attention"]
    out = {}
    with Session(make_engine(url)) as s:
        ids = store.screenings_of(s, 1, None, {})
        for name, bucket, cid, chosen in (("whole content, 1 s", 1, 1, ids), ("whole content, 10 s", 10, 1, ids),
                                          ("10 screenings, 1 s", 1, None, ids[:10])):
            store.curves(s, chosen, metrics, bucket, cid, 5)
            lat = []
            for _ in range(queries):
                t0 = time.perf_counter()
                store.curves(s, chosen, metrics, bucket, cid, 5)
                lat.append((time.perf_counter() - t0) * 1000)
            out[name] = round(float(np.median(lat)), 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["build", "time"])
    ap.add_argument("db")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(args.code))
    if args.action == "build":
        build(args.db, args.small)
    else:
        print(f"{args.code}: median ms {timing(args.db)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
