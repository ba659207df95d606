"""`audience model fit`: the audience model of a content, fitted on its per-track statistics and stored."""
from __future__ import annotations

import sys

from vision.errors import ModelExtraError, PublishError

from . import options
from .common import open_db
from .options import Parser, positive


def add_parser(sub, name: str) -> None:
    mo = options.add_command(sub, name, help="the audience model: fit it on a content's per-track statistics",
                             description="Fit the audience model of a content (a factorised VAE of viewers x "
                                         "seconds x metrics, beside a linear factorisation baseline) and store its "
                                         "aggregate products: imputed curve, reaction types, time factors; "
                                         "per-viewer latents for admin keys only. Needs the optional extra "
                                         ".[model] (JAX, optax).")
    ms = mo.add_subparsers(dest="action", required=True, parser_class=Parser)
    mf = ms.add_parser("fit", help="fit a content's model and store its products")
    mf.add_argument("--db", default="sqlite:///audience.db", help="database URL (default: sqlite:///audience.db)")
    mf.add_argument("--content", type=positive(int), required=True, help="the content id")
    mf.add_argument("--epochs", type=positive(int), default=60, help="at most this many passes (default 60)")
    mf.add_argument("--latent", type=positive(int), default=20, help="latent size (default 20)")
    mf.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from sqlmodel import Session

    from service import reaction_store as rs
    from service.models import Content

    engine = open_db(args.db)
    with Session(engine) as session:
        if session.get(Content, args.content) is None:
            raise PublishError(f"content {args.content} not found in {args.db}") from None
        try:
            from vision.reaction_model.vae import require_jax

            require_jax()
        except ImportError as exc:
            raise ModelExtraError(str(exc)) from None
        fit_id = rs.create_fit(session, args.content, {"max_epochs": args.epochs, "latent": args.latent,
                                                       "seed": args.seed})
        summary = rs.run_fit(session, fit_id)  # NoData: exit 9, like a missing extra
        seconds = rs.fit(session, fit_id)["seconds"]
    errors = ", ".join(f"{k} {v:.4f}" for k, v in summary["validation_rmse"].items())
    print(f"model {fit_id} of content {args.content}: {summary['viewers']} viewers x {summary['seconds']} s x "
          f"{len(summary['metrics'])} metrics ({summary['seen_fraction']:.0%} seen), {summary['epochs']} epochs, "
          f"{summary['types']} reaction type(s), {seconds:.1f} s; held-out RMSE: {errors}", file=sys.stderr)
    return 0
