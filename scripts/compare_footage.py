"""Compare expression classifiers on real footage: per clip, the share of each top label and the mean valence.

    python scripts/compare_footage.py ../shared/data/video/*.mp4 fixtures/two_faces.mp4 \\
        [--classifiers fusion-v2,fusion-v6] [--scene auto] [--by-size 24,32,48,64] [--label-rules balanced,probable]
        [--json]

Each clip is analysed (`audience analyze --classifier NAME`, one worker, in a temporary folder) once per
classifier; from its observations this prints, per clip and classifier, the number of face readings, the
share of faces whose top label (`emotion`) is each expression, the mean of each probability and the mean
valence (issue 12: a calm audience must read as calm, laughter as happiness, not disgust). `--by-size EDGES`
also prints them per band of face height in pixels (`face_px`), where a real audience's small faces differ
from its large ones. A folder of photos counts as one clip (e.g. `../shared/data/crowds/images --scene
audience`: real crowds, no expression labels, so their shares are a check, not a score). Only numbers are
kept; the analysis folders are deleted. `--label-rules balanced,probable` runs each classifier under each
`--label-rule` (the label shares change, the probabilities and valence do not).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def analyse(clip: Path, classifier: str, scene: str, edges: list[float] | None = None, label_rule: str = "auto") -> dict:
    """One clip through `audience analyze` with `classifier`: readings, top-label shares, mean probabilities and
    mean valence (an "error" entry instead where the command fails)."""
    import numpy as np
    import pandas as pd

    from vision.labels import EMOTIONS

    with tempfile.TemporaryDirectory(prefix="compare_footage_") as out:
        r = subprocess.run([sys.executable, "-m", "service.cli", "analyze", str(clip), "--classifier", classifier,
                            "--scene", scene, "--label-rule", label_rule, "--workers", "1", "--quiet", "--out", out],
                           capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            return {"error": (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]}
        obs = pd.read_parquet(Path(out) / "observations.parquet")
    obs = obs[obs["emotion"].isin(EMOTIONS)]
    out = summarise(obs, EMOTIONS)
    if edges and out["faces"]:
        bands = pd.cut(obs["face_px"], [0.0, *edges, np.inf], right=False)
        out["by_size"] = {f"{b.left:g}-{b.right:g} px": summarise(part, EMOTIONS)
                          for b, part in obs.groupby(bands, observed=False)}
    return out


def summarise(obs, emotions) -> dict:
    """Readings, mean valence, top-label shares and mean probabilities of these observations."""
    if obs.empty:
        return {"faces": 0}
    share = obs["emotion"].value_counts(normalize=True)
    return {"faces": int(len(obs)), "valence": float(obs["valence"].mean()),
            "top_share": {e: float(share.get(e, 0.0)) for e in emotions},
            "mean_p": {e: float(obs[f"p_{e}"].mean()) for e in emotions}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--classifiers", default="fusion-v2,fusion-v6")
    ap.add_argument("--scene", default="auto", choices=("single", "audience", "auto"))
    ap.add_argument("--by-size", default="", metavar="EDGES",
                    help="also per band of face height, these edges in pixels (e.g. 24,32,48,64)")
    ap.add_argument("--label-rules", default="auto", metavar="RULES",
                    help="each classifier under each of these --label-rule values (auto, balanced, probable)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from vision.labels import EMOTIONS

    edges = [float(e) for e in args.by_size.split(",") if e.strip()]
    rules = [r for r in args.label_rules.split(",") if r.strip()]
    runs = [(k, r, k if len(rules) == 1 else f"{k}/{r}") for k in args.classifiers.split(",") for r in rules]
    report = {str(c): {name: analyse(c, k, args.scene, edges, r) for k, r, name in runs} for c in args.clips}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    short = [e[:4] for e in EMOTIONS]
    print(f"{'clip':28s} {'classifier':18s} {'faces':>6s} {'valence':>7s}  top label share: "
          + " ".join(f"{s:>5s}" for s in short))
    for clip, by in report.items():
        for name, r in by.items():
            if "error" in r or not r.get("faces"):
                print(f"{Path(clip).name[:28]:28s} {name:18s} {r.get('error', 'no faces')}")
                continue
            bands = r.get("by_size", {}).items()
            rows = [(Path(clip).name[:28], r), *((f"  faces {band}", part) for band, part in bands)]
            for label, part in rows:
                if not part["faces"]:
                    continue
                print(f"{label:28s} {name:18s} {part['faces']:6d} {part['valence']:7.3f}  {'':16s} "
                      + " ".join(f"{part['top_share'][e]:5.2f}" for e in EMOTIONS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
