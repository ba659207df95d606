"""What the minimum audience size K costs a curve: for each K, the camera-seconds with faces (the atoms every
answer is summed from) that are left out of every answer, the face-seconds they held, and the seconds of
the screening (all cameras pooled, bucket = 1 s) that lose some or all of their faces.

    python scripts/suppression_loss.py --observations demo-out/observations.parquet [--k 2,3,5,10]
    python scripts/suppression_loss.py --db sqlite:///audience.db [--screening ID ...]
    python scripts/suppression_loss.py --simulate [--seats 120 --cameras 4 --occupancy 0.6 --detected 0.7]

--observations reads `audience analyze` outputs (one screening per file), --db the stored camera-seconds
of each screening, --simulate a venue: seats split evenly over cameras, each seat taken with probability
`occupancy`, each present face found in a given second with probability `detected` (turned away,
occluded, too small), 10 minutes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def atoms_from_observations(path: Path) -> np.ndarray:
    """[atoms, 2]: second, k faces of each (camera, second) with faces."""
    import pandas as pd

    from vision.stats import track_seconds

    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    atoms = []
    for _, part in frame.groupby("source", sort=True):  # per camera, in the order of its name
        seconds, k = np.unique(track_seconds({c: part[c].to_numpy() for c in part.columns})["second"],
                               return_counts=True)
        atoms += zip(seconds.tolist(), k.tolist())
    return np.array(atoms, np.int64).reshape(-1, 2)


def atoms_from_db(url: str, screenings: list[int] | None) -> dict[int, np.ndarray]:
    from sqlalchemy import create_engine, select

    from service.models import camera_second

    cs = camera_second.c
    query = select(cs.screening_id, cs.second, cs.k).where(cs.k > 0)
    if screenings:
        query = query.where(cs.screening_id.in_(screenings))
    out: dict[int, list] = {}
    with create_engine(url).connect() as conn:
        for sid, second, k in conn.execute(query):
            out.setdefault(int(sid), []).append((int(second), int(k)))
    return {sid: np.array(v, np.int64) for sid, v in out.items()}


def simulate(seats: int, cameras: int, occupancy: float, detected: float, seconds: int = 600,
             seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    present = rng.random(seats) < occupancy
    per_camera = np.array_split(np.flatnonzero(present), cameras)
    atoms = []
    for faces in per_camera:
        k = rng.binomial(len(faces), detected, seconds)
        atoms += [(s, int(k[s])) for s in range(seconds) if k[s] > 0]
    return np.array(atoms, np.int64).reshape(-1, 2)


def report(name: str, atoms: np.ndarray, ks: list[int]) -> None:
    seconds = np.unique(atoms[:, 0])
    total = np.bincount(np.searchsorted(seconds, atoms[:, 0]), atoms[:, 1], len(seconds))
    print(f"{name}: {len(atoms)} camera-seconds with faces, {int(atoms[:, 1].sum())} face-seconds, "
          f"{len(seconds)} seconds with faces, median {np.median(atoms[:, 1]):.0f} faces per camera-second")
    for k in ks:
        small = atoms[:, 1] < k
        kept = np.bincount(np.searchsorted(seconds, atoms[:, 0]), np.where(small, 0, atoms[:, 1]), len(seconds))
        print(f"  K = {k:2d}: camera-seconds left out {small.mean():6.1%}, face-seconds left out "
              f"{atoms[small, 1].sum() / atoms[:, 1].sum():6.1%}, seconds suppressed {np.mean(kept == 0):6.1%}, "
              f"seconds losing some faces {np.mean((kept > 0) & (kept < total)):6.1%} "
              f"(before atoms, when a second's total decided: {np.mean(total < k):6.1%} suppressed)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--observations", type=Path, nargs="*", default=[])
    ap.add_argument("--db")
    ap.add_argument("--screening", type=int, nargs="*")
    ap.add_argument("--simulate", action="store_true")
    ap.add_argument("--seats", type=int, default=120)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--occupancy", type=float, default=0.6)
    ap.add_argument("--detected", type=float, default=0.7)
    ap.add_argument("--k", default="2,3,5,10")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    for path in args.observations:
        report(str(path), atoms_from_observations(path), ks)
    if args.db:
        for sid, atoms in sorted(atoms_from_db(args.db, args.screening).items()):
            report(f"screening {sid}", atoms, ks)
    if args.simulate:
        report(f"simulated: {args.seats} seats, {args.cameras} cameras, occupancy {args.occupancy:.0%}, "
               f"each face found {args.detected:.0%} of seconds",
               simulate(args.seats, args.cameras, args.occupancy, args.detected), ks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
