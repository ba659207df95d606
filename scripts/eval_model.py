"""Honest evaluation of the audience model, in one run.

    PYTHONPATH=. python scripts/eval_model.py                      # the simulator (a)
    PYTHONPATH=. python scripts/eval_model.py --db URL --content 1 # a database's per-track statistics (b)
    PYTHONPATH=. python scripts/eval_model.py --bench-fit          # + fit time of 100 viewers x 7,200 s x 12
    PYTHONPATH=. python scripts/eval_model.py --pipeline /tmp/aud0 /tmp/aud1 --pipeline-db sqlite:///aud.db
        # (b) synthetic audience videos (scripts/make_audience.py, one folder each, same --seconds) analysed
        # end to end by `audience analyze` into one content of a SQLite database, one screening each

Held out: one screening (the last) whose viewers are forecast from the first 5% and from the first 10
minutes of the content; of the other screenings, 10% of the observed viewer-seconds (imputation). Errors
are RMSEs over the 12 metrics of observed viewer-seconds, for: the content mean curve, each viewer's own
mean + the content curve, linear (CP) factorisation and the factorised VAE. The simulator's rows also give
the error against the noise-free truth."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vision.reaction_model import ContentMean, CPFactorisation, ViewerMeanPlusContent, holdout_cells, rmse  # noqa: E402
from vision.reaction_model.simulate import simulate  # noqa: E402
from vision.reaction_model.vae import FactorisedVAE  # noqa: E402


VAE = {}  # settings of the VAE (--latent, --epochs)


def models(seed: int):
    return {"content mean": ContentMean(), "viewer mean + content": ViewerMeanPlusContent(),
            "linear (CP, rank 8)": CPFactorisation(rank=8, seed=seed, prior_components=VAE["prior_components"]),
            "factorised VAE": FactorisedVAE(seed=seed, **VAE)}


def evaluate(values, mask, screening, truth=None, seed=0, span=None, groups=None) -> None:
    """`span`: (first, last) second of a part of the content to score apart (the simulator's cuts differ
    in the middle fifth): the forecasts from the first 5% inside and outside it. `groups`: a label per
    viewer (the screening's cut) for every model's per-cut time structure (None: one for all)."""
    test = screening == screening.max()
    t_len = values.shape[1]
    keep, held = holdout_cells(mask[~test], 0.10, np.random.default_rng(seed + 11))
    firsts = {"first 5%": max(1, int(round(0.05 * t_len))), "first 10 min": min(600, t_len - 1)}
    print(f"{int((~test).sum())} training viewers, {int(test.sum())} forecast viewers (screening "
          f"{int(screening.max())}), {t_len} s, {values.shape[2]} metrics, {1 - mask.mean():.1%} unseen; "
          f"imputation on {int(held.sum())} held-out viewer-seconds; forecasts from the first "
          + " and ".join(f"{v} s" for v in firsts.values()))
    head = f"{'model':24s} {'fit s':>6s} {'impute':>7s}" + "".join(f" {k:>13s}" for k in firsts)
    if truth is not None:
        head += "  (vs truth: impute" + "".join(f", {k}" for k in firsts) + ")"
    print(head)
    results = {}
    for name, model in models(seed).items():
        start = time.perf_counter()
        model.fit(values[~test], keep, groups=None if groups is None else groups[~test])
        fit_s = time.perf_counter() - start
        predicted = model.predict()
        row = {"impute": rmse(values[~test], predicted, held)}
        row_truth = [rmse(truth[~test], predicted, held)] if truth is not None else []
        for label, first in firsts.items():
            prefix, rest = mask[test].copy(), mask[test].copy()
            prefix[:, first:], rest[:, :first] = False, False
            mean, _ = model.forecast(values[test], prefix, groups=None if groups is None else groups[test])
            row[label] = rmse(values[test], mean, rest)
            if span is not None and label == "first 5%":
                inside = np.zeros(t_len, bool)
                inside[span[0]:span[1]] = True
                row["span"] = tuple(rmse(values[test], mean, rest & part[None]) for part in (inside, ~inside))
            if truth is not None:
                row_truth.append(rmse(truth[test], mean, rest))
        results[name] = row
        line = f"{name:24s} {fit_s:6.1f} {row['impute']:7.4f}" + "".join(f" {row[k]:13.4f}" for k in firsts)
        if hasattr(model, "epochs_"):
            line += f"  [{model.epochs_} epochs]"
        if hasattr(model, "likelihood_weight_"):
            line += (f"  [prior of {model.components_} component(s), forecast weight {model.likelihood_weight_:g}; "
                     "validation " + ", ".join(f"{k}x{w:g}: {e:.4f}"
                                               for (k, w), e in model.forecast_validation_.items())
                     + "]")
        if "span" in row:
            line += "  {first 5%%, inside the cuts' middle fifth %.4f, outside %.4f}" % row["span"]
        if truth is not None:
            line += "  (" + ", ".join(f"{v:.4f}" for v in row_truth) + ")"
        print(line, flush=True)
    vae, lin, mean = results["factorised VAE"], results["linear (CP, rank 8)"], results["content mean"]
    for label in ("impute", *firsts):
        print(f"VAE vs linear, {label}: {1 - vae[label] / lin[label]:+.1%} lower error; "
              f"vs content mean: {1 - vae[label] / mean[label]:+.1%} lower")


def bench_fit(seed: int) -> None:
    season = simulate(screenings=1, duration_s=7200, viewers=(100, 100), seed=seed)
    print(f"fit time, {season.values.shape[0]} viewers x {season.values.shape[1]} s x {season.values.shape[2]} "
          f"metrics ({season.mask.sum():,} observed viewer-seconds); load before: {os.getloadavg()[0]:.1f}")
    for name in ("linear (CP, rank 8)", "factorised VAE"):
        model = models(seed)[name]
        start = time.perf_counter()
        model.fit(season.values, season.mask)
        extra = f", {model.epochs_} epochs" if hasattr(model, "epochs_") else ""  # noqa: E501
        print(f"  {name}: {time.perf_counter() - start:.1f} s{extra}; load now {os.getloadavg()[0]:.1f}", flush=True)


def from_database(url: str, content_id: int):
    from sqlmodel import Session

    from service.db import make_engine
    from service.reaction_store import load_tensor

    with Session(make_engine(url)) as session:
        tensor = load_tensor(session, content_id)
    return tensor.values, tensor.mask, tensor.screening_index


def from_pipeline(folders: list[Path], url: str | None, work: Path) -> tuple[str, int]:
    """Each folder's audience.avi analysed by `audience analyze` into one screening of one content "pipeline
    audiences" (made once, as long as the longest video); a folder whose screening already holds statistics
    is not analysed again. -> (database URL, content id)."""
    import subprocess

    from sqlmodel import Session, select

    from service.db import make_engine, migrate
    from service.models import Content, Screening
    from service.reaction_store import load_tensor

    work.mkdir(parents=True, exist_ok=True)
    url = url or f"sqlite:///{work / 'pipeline.db'}"
    engine = make_engine(url)
    migrate(engine)
    todo = []
    with Session(engine) as session:
        content = session.exec(select(Content).where(Content.title == "pipeline audiences")).first()
        if content is None:
            content = Content(title="pipeline audiences",
                              duration_s=max(_video_seconds(f / "audience.avi") for f in folders))
            session.add(content)
            session.commit()
        content_id = content.id
        for f in folders:
            screening = session.exec(select(Screening).where(Screening.content_id == content_id,
                                                             Screening.venue == str(f))).first()
            if screening is None:
                screening = Screening(content_id=content_id, venue=str(f), labels={"source": f.name})
                session.add(screening)
                session.commit()
            done = load_tensor(session, content_id, [screening.id]).mask.any()
            todo.append((f, screening.id, done))
    engine.dispose()
    for f, screening_id, done in todo:
        if done:
            print(f"{f}: screening {screening_id} already analysed", flush=True)
            continue
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", "service.cli", "analyze", str(f / "audience.avi"), "--out",
                                str(work / f"analysed-{f.name}"), "--db", url, "--screening", str(screening_id),
                                "--quiet"])
        print(f"{f}: analysed into screening {screening_id} in {time.perf_counter() - start:.0f} s (exit {code})",
              flush=True)
        if code != 0:
            raise SystemExit(f"error: audience analyze exited {code} on {f}")
    return url, content_id


def _video_seconds(path: Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise SystemExit(f"error: cannot read {path}")
        return cap.get(cv2.CAP_PROP_FRAME_COUNT) / max(cap.get(cv2.CAP_PROP_FPS), 1e-6)
    finally:
        cap.release()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--screenings", type=int, default=4)
    p.add_argument("--duration", type=int, default=3600, help="content seconds (default 3600)")
    p.add_argument("--viewers", type=int, nargs=2, default=(40, 60), help="viewers per screening, min max")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--db", help="evaluate on a database's per-track statistics instead of the simulator")
    p.add_argument("--content", type=int, help="the content id (with --db)")
    p.add_argument("--pipeline", type=Path, nargs="+", metavar="FOLDER",
                   help="synthetic audience folders (scripts/make_audience.py) to analyse end to end and evaluate")
    p.add_argument("--pipeline-db", help="database for --pipeline (default sqlite:///WORK/pipeline.db)")
    p.add_argument("--work", type=Path, default=Path("eval-model-work"),
                   help="--pipeline's outputs (default ./eval-model-work)")
    p.add_argument("--bench-fit", action="store_true", help="also time a fit of 100 viewers x 7,200 s x 12")
    p.add_argument("--latent", type=int, default=20, help="VAE latent size (default 20)")
    p.add_argument("--epochs", type=int, default=60, help="VAE epochs at most (default 60)")
    p.add_argument("--prior-components", type=int, default=1,
                   help="most Gaussians in the prior of new viewers' latents, the number chosen on held-out forecasts, "
                        "VAE and linear alike (default 1)")
    p.add_argument("--one-time-structure", action="store_true",
                   help="simulator: one time factor per second for both cuts (default: per cut, every model alike)")
    args = p.parse_args()
    VAE.update(latent=args.latent, max_epochs=args.epochs, prior_components=args.prior_components)
    print(f"cpu cores: {os.cpu_count()}, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.pipeline:
        url, content_id = from_pipeline(args.pipeline, args.pipeline_db, args.work)
        values, mask, screening = from_database(url, content_id)
        evaluate(values, mask, screening, seed=args.seed)
    elif args.db:
        values, mask, screening = from_database(args.db, args.content)
        evaluate(values, mask, screening, seed=args.seed)
    else:
        season = simulate(args.screenings, args.duration, tuple(args.viewers), seed=args.seed)
        t_len = season.values.shape[1]
        groups = None if args.one_time_structure else np.array(season.cuts)[season.screening]
        evaluate(season.values, season.mask, season.screening, season.truth, seed=args.seed,
                 span=(int(0.4 * t_len), int(0.6 * t_len)), groups=groups)
    if args.bench_fit:
        bench_fit(args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
