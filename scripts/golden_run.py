"""Golden run: `audience analyze` on the shared videos, and a comparison of two such runs.

Refactors must not change what the engine computes. Run this before and after (or on two checkouts) and
compare: every observation column must be identical, and every curves.csv column too, except the 95%
half-widths (`*_ci95`), whose differences are printed (the Student-t critical values moved from a hand-written
table to scipy.stats).

    python scripts/golden_run.py run --out /tmp/golden-before        # on the old checkout
    python scripts/golden_run.py run --out /tmp/golden-after         # on the new one
    python scripts/golden_run.py compare /tmp/golden-before /tmp/golden-after   # exit 1 on any difference
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUDIENCE_SHARED", ROOT.parent / "shared")) / "data" / "video"
# (name, inputs, extra options): a single face, a face that comes and goes, a walking crowd (audience scene)
RUNS = (
    ("single_face", ["single_face.mp4"], []),
    ("face_noface", ["face_noface.mov"], ["--fps", "5"]),
    ("walkers", ["walkers_1080p.mp4"], ["--scene", "audience", "--fps", "4"]),
    ("photos", ["multi_face.jpg", "single_face.jpg"], []),
)


def _cli_main():
    for name in ("service.cli", "vision.cli"):  # where the command line lives (it moved to service/)
        try:
            return importlib.import_module(name).main
        except ModuleNotFoundError:
            continue
    raise SystemExit("golden_run: no audience command line found")


def run(out: Path) -> int:
    main = _cli_main()
    for name, inputs, options in RUNS:
        code = main(["analyze", *[str(SHARED / i) for i in inputs], "--out", str(out / name), "--quiet",
                     "--workers", "1", *options])
        print(f"{name}: exit {code}")
        if code != 0:
            return code
    return 0


def _table(path: Path) -> dict[str, np.ndarray]:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pq.read_table(path) if path.suffix == ".parquet" else pcsv.read_csv(path)
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a.astype(str), b.astype(str)))


def compare(before: Path, after: Path) -> int:
    failures = 0
    for name, _, _ in RUNS:
        for file in ("observations.parquet", "curves.csv"):
            a, b = _table(before / name / file), _table(after / name / file)
            if list(a) != list(b):
                print(f"{name}/{file}: columns differ: {sorted(set(a) ^ set(b))}")
                failures += 1
                continue
            ci_diffs = []
            for column in a:
                if file == "curves.csv" and column.endswith("_ci95"):
                    x, y = a[column].astype(float), b[column].astype(float)
                    if x.shape != y.shape or not np.array_equal(np.isnan(x), np.isnan(y)):
                        print(f"{name}/{file}: {column}: rows or missing values differ")
                        failures += 1
                        continue
                    ok = ~np.isnan(x)
                    if ok.any():
                        rel = np.abs(y[ok] - x[ok]) / np.maximum(np.abs(x[ok]), 1e-12)
                        ci_diffs.append(float(rel.max()))
                elif not _same(a[column], b[column]):
                    print(f"{name}/{file}: {column} differs")
                    failures += 1
            rows = len(next(iter(a.values()))) if a else 0
            extra = (f"; 95% half-widths: largest relative change {max(ci_diffs):.2%}" if ci_diffs else "")
            print(f"{name}/{file}: {rows} rows, {len(a)} columns compared{extra}")
    print("identical" if not failures else f"{failures} difference(s)")
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    return run(args.out) if args.command == "run" else compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
