"""The audience model in the database: the viewer x second x metric tensor built from the stored
per-track statistics, the fit (run by `audience model fit` or as a background job of the API), and the
fitted model's products.

Tables (new; no per-viewer number leaves them except through the admin-only `model_viewer` route):

- `model_fit`: one fit of a content: status, settings, summary (held-out errors of each model), the
  aggregate products (`products`, an npz of numbers: per second the viewers present and seen, the observed
  and the imputed curve, each reaction type's size and curve) and the shared model state (`state`, an npz:
  decoder weights, time factors, scales; no per-viewer latent), used by forecasts.
- `model_viewer`: per viewer (screening, camera, track) of a fit: its latent vector and reaction type.

A viewer is one track of one camera of a screening; seconds its face was not seen stay missing."""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import (JSON, Column, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Table, delete,
                        insert, select, update)
from sqlmodel import Session, SQLModel

from vision.errors import NoData
from vision.reaction_model.tensor import MODEL_METRICS

from .models import Content, Screening, track_second

model_fit = Table(
    "model_fit", SQLModel.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("content_id", Integer, ForeignKey("content.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("status", String(20), nullable=False),  # queued, running, done, failed
    Column("error", String(500), nullable=False, default=""),
    Column("settings", JSON, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("revision", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("seconds", Float, nullable=False, default=0.0),
    Column("products", LargeBinary, nullable=True),
    Column("state", LargeBinary, nullable=True),
    sqlite_autoincrement=True,
)

model_viewer = Table(
    "model_viewer", SQLModel.metadata,
    Column("fit_id", Integer, ForeignKey("model_fit.id", ondelete="CASCADE"), primary_key=True),
    Column("screening_id", Integer, ForeignKey("screening.id", ondelete="CASCADE"), primary_key=True),
    Column("camera", String(300), primary_key=True),
    Column("track_id", Integer, primary_key=True),
    Column("reaction_type", Integer, nullable=False),
    Column("seconds_seen", Integer, nullable=False),
    Column("latent", JSON, nullable=False),
)


@dataclass(frozen=True)
class Tensor:
    values: np.ndarray  # [viewers, seconds, metrics]
    mask: np.ndarray  # [viewers, seconds]
    viewers: list[tuple[int, str, int]]  # (screening_id, camera, track_id) per viewer
    screening_index: np.ndarray  # [viewers] position of the viewer's screening in `screenings`
    screenings: list[int]


def load_tensor(session: Session, content_id: int, screening_ids: list[int] | None = None,
                before_s: float | None = None) -> Tensor:
    """The content's viewer x second x metric tensor (MODEL_METRICS, per-second means of each track);
    `before_s`: only seconds before it."""
    content = session.get(Content, content_id)
    if content is None:
        raise NoData(f"content {content_id} not found")
    t_len = int(np.ceil(content.duration_s))
    if screening_ids is None:
        screening_ids = sorted(s.id for (s,) in session.execute(select(Screening).where(Screening.content_id == content_id)))
    ts = track_second.c
    query = (select(ts.screening_id, ts.camera, ts.track_id, ts.second, *[ts[f"s_{m}"] / ts.n for m in MODEL_METRICS])
             .where(ts.screening_id.in_(screening_ids), ts.n > 0, ts.second >= 0, ts.second < t_len))
    if before_s is not None:
        query = query.where(ts.second < before_s)
    rows = session.execute(query.order_by(ts.screening_id, ts.camera, ts.track_id, ts.second)).all()
    keys = sorted({(int(r[0]), str(r[1]), int(r[2])) for r in rows})
    index = {k: i for i, k in enumerate(keys)}
    values = np.zeros((len(keys), t_len, len(MODEL_METRICS)), np.float32)
    mask = np.zeros((len(keys), t_len), bool)
    if rows:
        who = np.array([index[(int(r[0]), str(r[1]), int(r[2]))] for r in rows])
        second = np.array([int(r[3]) for r in rows])
        values[who, second] = np.array([r[4:] for r in rows], np.float32)
        mask[who, second] = True
    position = {s: i for i, s in enumerate(screening_ids)}
    return Tensor(values, mask, keys, np.array([position[k[0]] for k in keys], np.int64), list(screening_ids))


def screening_cut(session: Session, screening_id: int) -> str | None:
    """The screening's `cut` label (None without one): the models' time factors are per cut."""
    screening = session.get(Screening, screening_id)
    cut = (screening.labels or {}).get("cut") if screening is not None else None
    return None if cut is None else str(cut)


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    sink = io.BytesIO()
    np.savez_compressed(sink, **arrays)
    return sink.getvalue()


def _unnpz(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


DEFAULT_SETTINGS = {"latent": 20, "hidden": 64, "max_epochs": 60, "rank": 8, "seed": 0}


def create_fit(session: Session, content_id: int, settings: dict | None = None) -> int:
    chosen = {**DEFAULT_SETTINGS, **(settings or {})}
    result = session.execute(insert(model_fit).values(
        content_id=content_id, status="queued", error="", settings=chosen, summary={}, revision=0,
        created_at=datetime.now(timezone.utc), seconds=0.0))
    session.commit()
    return int(result.inserted_primary_key[0])


def _set(session: Session, fit_id: int, **values) -> None:
    session.execute(update(model_fit).where(model_fit.c.id == fit_id).values(**values))
    session.commit()


def run_fit(session: Session, fit_id: int) -> dict:
    """Fit the content's model and store its products; the fit's row says how it went. Returns the
    summary; raises NoData or ImportError (also recorded in the row as a failure)."""
    from . import store

    row = session.execute(select(model_fit).where(model_fit.c.id == fit_id)).one()
    _set(session, fit_id, status="running")
    start = time.perf_counter()
    try:
        summary, products, state, viewers = _fit(session, row.content_id, row.settings)
    except Exception as exc:  # noqa: BLE001 - recorded as one line, then raised for the caller
        session.rollback()
        _set(session, fit_id, status="failed", error=f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500],
             finished_at=datetime.now(timezone.utc), seconds=time.perf_counter() - start)
        raise
    if viewers:
        session.execute(insert(model_viewer), [{"fit_id": fit_id, **v} for v in viewers])
    session.execute(update(model_fit).where(model_fit.c.id == fit_id).values(
        status="done", summary=summary, products=_npz(products), state=_npz(state),
        revision=store.revision(session, row.content_id), finished_at=datetime.now(timezone.utc),
        seconds=time.perf_counter() - start))
    session.commit()
    return summary


def _fit(session: Session, content_id: int, settings: dict):
    from vision.reaction_model import ContentMean, CPFactorisation, holdout_cells, rmse
    from vision.reaction_model.tensor import curve, presence
    from vision.reaction_model.types import reaction_types, type_curves
    from vision.reaction_model.vae import FactorisedVAE, require_jax

    require_jax()  # the optional extra, before any work
    tensor = load_tensor(session, content_id)
    seen = tensor.mask.sum(1)
    if len(tensor.viewers) < 2 or tensor.mask.sum() < 10:
        raise NoData(f"content {content_id} has too little per-track data to fit a model "
                     f"({len(tensor.viewers)} viewer(s), {int(tensor.mask.sum())} seen viewer-second(s))")
    seed = int(settings["seed"])
    cuts = [screening_cut(session, s) for s in tensor.screenings]  # per-cut time factors where every screening has one
    groups = np.array(cuts)[tensor.screening_index] if cuts and None not in cuts else None
    vae = FactorisedVAE(latent=int(settings["latent"]), hidden=int(settings["hidden"]),
                        max_epochs=int(settings["max_epochs"]), seed=seed).fit(tensor.values, tensor.mask, groups)
    linear = CPFactorisation(rank=int(settings["rank"]), seed=seed).fit(tensor.values, tensor.mask, groups)
    _, held = holdout_cells(tensor.mask, 0.05, np.random.default_rng(seed))  # the models' own validation cells
    base = ContentMean().fit(tensor.values, tensor.mask & ~held)
    predicted = vae.predict()
    filled = np.where(tensor.mask[:, :, None], tensor.values, predicted)
    present = presence(tensor.mask)
    n_seen, observed = curve(tensor.values, tensor.mask)
    n_present, imputed = curve(filled, present)
    labels = reaction_types(vae.viewer_latents, seed=seed) if len(tensor.viewers) >= 4 else np.zeros(len(seen), int)
    sizes, curves, counts = type_curves(filled, present, labels, return_counts=True)
    summary = {
        "viewers": len(tensor.viewers), "screenings": tensor.screenings, "seconds": int(tensor.mask.shape[1]),
        "metrics": list(MODEL_METRICS), "seen_fraction": float(tensor.mask.mean()), "epochs": vae.epochs_,
        "types": int(len(sizes)),
        "validation_rmse": {"content mean": rmse(tensor.values, base.predict(), held),
                            "linear": rmse(tensor.values, linear.predict(), held),
                            "vae": rmse(tensor.values, predicted, held)}}
    products = {"n_seen": n_seen, "n_present": n_present, "observed": observed, "imputed": imputed,
                "type_sizes": sizes, "type_curves": curves, "type_present": counts, "sd": vae.scale_.sd}
    viewers = [{"screening_id": s, "camera": c, "track_id": t, "reaction_type": int(labels[i]),
                "seconds_seen": int(seen[i]), "latent": [round(float(x), 5) for x in vae.viewer_latents[i]]}
               for i, (s, c, t) in enumerate(tensor.viewers)]
    return summary, products, vae.shared_state(), viewers


def fit(session: Session, fit_id: int) -> dict | None:
    row = session.execute(select(model_fit).where(model_fit.c.id == fit_id)).first()
    return None if row is None else dict(row._mapping)


def latest_fit(session: Session, content_id: int) -> dict | None:
    """The newest finished fit of a content, with its products and state unpacked."""
    row = session.execute(select(model_fit).where(model_fit.c.content_id == content_id, model_fit.c.status == "done")
                          .order_by(model_fit.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    out = dict(row._mapping)
    out["products"], out["state"] = _unnpz(out["products"]), _unnpz(out["state"])
    return out


def viewers(session: Session, fit_id: int) -> list[dict]:
    mv = model_viewer.c
    rows = session.execute(select(model_viewer).where(mv.fit_id == fit_id)
                           .order_by(mv.screening_id, mv.camera, mv.track_id)).all()
    return [dict(r._mapping) for r in rows]


def forget(session: Session, content_id: int, screening_ids: list[int] | None = None) -> None:
    """Delete the content's fits (all, or those built on any of `screening_ids`) with their viewers: a
    deleted or purged screening leaves nothing derived from it. Does not commit."""
    rows = session.execute(select(model_fit.c.id, model_fit.c.summary).where(model_fit.c.content_id == content_id)).all()
    ids = [r.id for r in rows if screening_ids is None or set((r.summary or {}).get("screenings", [])) & set(screening_ids)
           or (r.summary or {}).get("screenings") is None]
    if ids:
        session.execute(delete(model_viewer).where(model_viewer.c.fit_id.in_(ids)))
        session.execute(delete(model_fit).where(model_fit.c.id.in_(ids)))


def load_simulated_season(session: Session, screenings: int = 3, duration_s: int = 600,
                          viewers: tuple[int, int] = (60, 120), seed: int = 0) -> int:
    """A simulated season (vision.reaction_model.simulate) stored as a content with its screenings, cuts
    A and B taken in turn (label `cut`): for the demo. Returns the content id."""
    from vision.reaction_model.simulate import screening_batches, simulate

    from . import store

    season = simulate(screenings, duration_s, viewers, seed=seed)
    content = Content(title=f"Demo: simulated season ({screenings} screenings, two cuts)", duration_s=float(duration_s))
    session.add(content)
    session.commit()
    for s, cut in enumerate(season.cuts):
        screening = Screening(content_id=content.id, venue=f"simulated venue {s + 1}", labels={"cut": cut, "demo": "simulated"})
        session.add(screening)
        session.commit()
        batches, start = list(screening_batches(season, s)), 0
        for i, batch in enumerate(batches):  # each batch covers its own span of whole seconds, the last to the end
            end = duration_s if i == len(batches) - 1 else int(max(batch["second"])) + 1
            store.ingest(session, screening.id, "cam1", batch, covered=list(range(start, end)))
            start = end
    return int(content.id)
