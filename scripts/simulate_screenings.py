"""Simulated screenings of a content with known latents (see vision/reaction_model/simulate.py).

    PYTHONPATH=. python scripts/simulate_screenings.py --db sqlite:///sim.db [--screenings 3] [--duration 600]
    PYTHONPATH=. python scripts/simulate_screenings.py --out season.npz        # the tensor and its ground truth

Viewer styles and reaction types (early laughers, late warmers, stone faces) are drawn from known latents
and pass through a nonlinear map; 13% of the seconds are missing in bursts. Into a database, each
screening becomes a screening of one new content (label `cut`), its viewers tracks of camera `cam1`;
into an .npz file go values, mask, truth, screening and reaction_type."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vision.reaction_model.simulate import simulate  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--screenings", type=int, default=3)
    p.add_argument("--duration", type=int, default=600, help="content seconds (default 600)")
    p.add_argument("--viewers", type=int, nargs=2, default=(60, 120), help="viewers per screening, min max")
    p.add_argument("--seed", type=int, default=0)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", help="database URL to store the season in")
    where.add_argument("--out", type=Path, help=".npz file for the tensor and its ground truth")
    args = p.parse_args(argv)
    if args.out:
        s = simulate(args.screenings, args.duration, tuple(args.viewers), seed=args.seed)
        np.savez_compressed(args.out, values=s.values, mask=s.mask, truth=s.truth, screening=s.screening,
                            reaction_type=s.reaction_type, cuts=np.array(s.cuts), metrics=np.array(s.metrics))
        print(f"{s.values.shape[0]} viewers x {s.values.shape[1]} s x {s.values.shape[2]} metrics, "
              f"{1 - s.mask.mean():.1%} unseen -> {args.out}")
        return 0
    from sqlmodel import Session

    from service.db import make_engine, migrate
    from service.reaction_store import load_simulated_season

    engine = make_engine(args.db)
    migrate(engine)
    with Session(engine) as session:
        content = load_simulated_season(session, args.screenings, args.duration, tuple(args.viewers), args.seed)
    print(f"content {content}: {args.screenings} simulated screenings in {args.db}; fit its model with "
          f"audience model fit --db {args.db} --content {content}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
