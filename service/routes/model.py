"""The audience model (issue 15): start a fit (admin, a background job), follow it, and read what it
gives: the imputed curve, a screening's forecast, reaction types and where they diverge. Every aggregate
suppresses what rests on fewer than the minimum audience; per-viewer latents are admin only (`/tracks`)."""
from __future__ import annotations

import importlib.util
from datetime import datetime

import numpy as np
from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request
from sqlmodel import Field, Session, SQLModel

from vision.stats import find_moments

from .. import reaction_store as rs
from ..deps import MinAudienceDep, SessionDep
from .contents import get_content

router = APIRouter(tags=["model"])
MODEL_METRICS = rs.MODEL_METRICS
METRICS_QUERY = Query("p_happiness,smile", description="comma-separated, among: " + ", ".join(MODEL_METRICS))


class FitSettings(SQLModel):
    latent: int = Field(20, ge=1, le=64, description="size of the viewer and time latents")
    hidden: int = Field(64, ge=4, le=512, description="width of the decoder's hidden layers")
    max_epochs: int = Field(60, ge=1, le=500, description="at most this many passes (early stopping)")
    rank: int = Field(8, ge=1, le=64, description="rank of the linear baseline")
    seed: int = Field(0, ge=0, le=2**31 - 1)


class FitJob(SQLModel):
    job_id: int
    content_id: int
    status: str = Field(description="queued, running, done or failed")
    error: str = ""
    settings: dict
    summary: dict = Field(description="viewers, screenings, epochs, types, held-out RMSE of each model")
    created_at: datetime
    finished_at: datetime | None
    seconds: float


class Imputed(SQLModel):
    """Per second: viewers present (between their first and last seen second) and seen; the observed
    curve (mean over seen faces) and the imputed one (over present viewers, model values where unseen)."""

    content_id: int
    job_id: int
    metrics: list[str]
    t: list[float]
    n_present: list[int]
    n_seen: list[int]
    observed: dict[str, list[float | None]]
    imputed: dict[str, list[float | None]]
    suppressed: list[bool]
    min_audience: int


class Forecast(SQLModel):
    """From the first `first_s` seconds of a screening's viewers: their predicted curve for the rest of the
    content with a 95% interval, beside what they did (`actual`, mean over seen faces)."""

    content_id: int
    job_id: int
    screening_id: int
    first_s: int
    viewers: int
    metrics: list[str]
    t: list[float]
    n_seen: list[int]
    predicted: dict[str, list[float | None]]
    lower: dict[str, list[float | None]]
    upper: dict[str, list[float | None]]
    actual: dict[str, list[float | None]]
    rmse: dict[str, float | None] = Field(description="predicted vs actual over the shown seconds")
    min_audience: int


class ReactionType(SQLModel):
    index: int
    size: int
    curve: dict[str, list[float | None]]


class ReactionTypes(SQLModel):
    """Kinds of reaction: clusters of the viewers' latent vectors. Types with fewer viewers than the
    minimum audience are not shown (`hidden_types` counts them), nor a shown type's seconds with fewer of
    its viewers present. `divergence`: per second, the spread of the shown types' curves (in SDs of each
    metric; null where any of them is); `moments`: where it peaks."""

    content_id: int
    job_id: int
    metrics: list[str]
    t: list[float]
    types: list[ReactionType]
    hidden_types: int
    divergence: list[float | None]
    moments: list[dict]
    min_audience: int


def _metrics(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODEL_METRICS]
    if not names or unknown:
        raise HTTPException(422, f"unknown model metric(s) {', '.join(unknown) or '(none given)'}; "
                                 f"known: {', '.join(MODEL_METRICS)}")
    return names


def _nulls(a) -> list:
    a = np.asarray(a, np.float64)
    return [None if not np.isfinite(x) else round(float(x), 6) for x in a]


def _columns(matrix: np.ndarray, names: list[str], hide: np.ndarray) -> dict[str, list]:
    return {m: _nulls(np.where(hide, np.nan, matrix[:, MODEL_METRICS.index(m)])) for m in names}


def _latest(session: Session, content_id: int) -> dict:
    get_content(session, content_id)
    found = rs.latest_fit(session, content_id)
    if found is None:
        raise HTTPException(404, f"content {content_id} has no fitted model: POST /api/v1/contents/{content_id}/model/fit")
    return found


def _job(row: dict) -> FitJob:
    return FitJob(job_id=row["id"], **{k: row[k] for k in ("content_id", "status", "error", "settings", "summary",
                                                             "created_at", "finished_at", "seconds")})


def _run_job(engine, fit_id: int) -> None:
    with Session(engine) as session:
        try:
            rs.run_fit(session, fit_id)
        except Exception:  # noqa: BLE001 - recorded in the fit's row (status failed, one-line error)
            pass


@router.post("/contents/{content_id}/model/fit", response_model=FitJob, status_code=202)
def start_fit(content_id: int, session: SessionDep, request: Request, tasks: BackgroundTasks,
              settings: FitSettings | None = None):
    """Start fitting the content's audience model (admin). Answers at once with the job; follow it at
    `/contents/{content_id}/model/jobs/{job_id}`."""
    get_content(session, content_id)
    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("optax") is None:
        raise HTTPException(503, "the audience model needs the optional extra: pip install 'audience-reactions[model]'")
    fit_id = rs.create_fit(session, content_id, (settings or FitSettings()).model_dump())
    tasks.add_task(_run_job, request.app.state.engine, fit_id)
    return _job(rs.fit(session, fit_id))


@router.get("/contents/{content_id}/model/jobs/{job_id}", response_model=FitJob)
def read_fit(content_id: int, job_id: int, session: SessionDep):
    get_content(session, content_id)
    row = rs.fit(session, job_id)
    if row is None or row["content_id"] != content_id:
        raise HTTPException(404, f"model job {job_id} of content {content_id} not found")
    return _job(row)


@router.get("/contents/{content_id}/imputed", response_model=Imputed)
def imputed(content_id: int, session: SessionDep, k: MinAudienceDep, metrics: str = METRICS_QUERY):
    """The content's curve with each present-but-unseen viewer-second imputed by the model, beside the
    observed curve: how much missing faces biased it. Seconds with fewer than the minimum audience
    present (or seen) are suppressed."""
    names = _metrics(metrics)
    found = _latest(session, content_id)
    p = found["products"]
    hide_seen, hide_present = p["n_seen"] < k, p["n_present"] < k
    return Imputed(content_id=content_id, job_id=found["id"], metrics=names, t=[float(t) for t in range(len(p["n_seen"]))],
                   n_present=p["n_present"].astype(int).tolist(), n_seen=p["n_seen"].astype(int).tolist(),
                   observed=_columns(p["observed"], names, hide_seen), imputed=_columns(p["imputed"], names, hide_present),
                   suppressed=(hide_present & (p["n_present"] > 0)).tolist(), min_audience=k)


@router.get("/contents/{content_id}/forecast", response_model=Forecast)
def forecast(content_id: int, session: SessionDep, k: MinAudienceDep,
             screening: int = Query(..., ge=1, le=2**31 - 1, description="the screening whose viewers are forecast"),
             first_s: int = Query(300, ge=1, le=10**7, description="seconds of the screening the forecast starts from"),
             metrics: str = METRICS_QUERY):
    """The screening's viewers' latents inferred from their first `first_s` seconds; their predicted curve
    for the rest of the content (time factors learned from every screening of the fit, this one too when
    it was part of the fit: refit without it for a clean test) with a 95% interval, and what happened. A
    screening with fewer viewers seen in those seconds than the minimum audience is refused."""
    from vision.reaction_model.vae import FactorisedVAE

    names = _metrics(metrics)
    found = _latest(session, content_id)
    tensor = rs.load_tensor(session, content_id, [screening]) if _of_content(session, content_id, screening) else None
    if tensor is None:
        raise HTTPException(404, f"screening {screening} is not a screening of content {content_id}")
    t_len = tensor.mask.shape[1]
    if first_s >= t_len:
        raise HTTPException(422, f"first_s must be below the content's {t_len} s")
    prefix = tensor.mask.copy()
    prefix[:, first_s:] = False
    chosen = prefix.any(1)  # viewers seen in the first seconds: the ones there is something to go on
    if chosen.sum() < k:
        raise HTTPException(404, f"screening {screening} has {int(chosen.sum())} viewer(s) seen in its first "
                                 f"{first_s} s, fewer than the minimum audience {k}")
    try:
        model = FactorisedVAE.from_shared_state(found["state"])
        mean, var = model.forecast(tensor.values[chosen], prefix[chosen], groups=rs.screening_cut(session, screening))
    except ImportError as exc:
        raise HTTPException(503, str(exc)) from None
    from vision.reaction_model.tensor import curve, presence

    present = presence(tensor.mask[chosen])
    rest = np.arange(t_len) >= first_s
    n_present, predicted = curve(mean, present)
    spread = np.sqrt(np.einsum("it,itm->tm", present, var)) / np.maximum(n_present, 1)[:, None]
    n_seen, actual = curve(tensor.values[chosen], tensor.mask[chosen])
    hide_p = (n_present < k)[rest]
    hide_a = (n_seen < k)[rest]
    predicted, spread, actual = predicted[rest], spread[rest], actual[rest]
    err = {}
    for m in names:
        j = MODEL_METRICS.index(m)
        both = ~hide_p & ~hide_a & np.isfinite(actual[:, j]) & np.isfinite(predicted[:, j])
        err[m] = float(np.sqrt(np.mean((predicted[both, j] - actual[both, j]) ** 2))) if both.any() else None
    return Forecast(content_id=content_id, job_id=found["id"], screening_id=screening, first_s=first_s,
                    viewers=int(chosen.sum()), metrics=names, t=[float(t) for t in np.arange(t_len)[rest]],
                    n_seen=n_seen[rest].astype(int).tolist(), predicted=_columns(predicted, names, hide_p),
                    lower=_columns(predicted - 1.96 * spread, names, hide_p),
                    upper=_columns(predicted + 1.96 * spread, names, hide_p),
                    actual=_columns(actual, names, hide_a), rmse=err, min_audience=k)


def _of_content(session: Session, content_id: int, screening_id: int) -> bool:
    from ..models import Screening

    found = session.get(Screening, screening_id)
    return found is not None and found.content_id == content_id


@router.get("/contents/{content_id}/reaction-types", response_model=ReactionTypes)
def reaction_types(content_id: int, session: SessionDep, k: MinAudienceDep, metrics: str = METRICS_QUERY,
                   top: int = Query(5, ge=1, le=50, description="moments of divergence to list")):
    """The kinds of reaction in the audience, each with its size and curve; types smaller than the minimum
    audience are hidden, and the divergence between the shown types peaks at `moments`."""
    from vision.reaction_model.types import divergence

    names = _metrics(metrics)
    found = _latest(session, content_id)
    p = found["products"]
    sizes, curves = p["type_sizes"], p["type_curves"]
    shown = [i for i in range(len(sizes)) if sizes[i] >= k]
    t_len = curves.shape[1] if len(sizes) else len(p["n_seen"])
    # a shown type's second with fewer than K of its viewers present is null, in its curve and the divergence
    present = p.get("type_present", np.repeat(sizes[:, None], t_len, 1))  # fits stored before it: type sizes
    curves = np.where((present < k)[:, :, None], np.nan, curves) if len(sizes) else curves
    types = [ReactionType(index=i, size=int(sizes[i]), curve=_columns(curves[i], names, np.zeros(t_len, bool)))
             for i in shown]
    spread = divergence(curves[shown], sizes[shown], p["sd"]) if len(shown) >= 2 else np.full(t_len, np.nan)
    spread = np.where(np.isnan(curves[shown]).any(axis=(0, 2)), np.nan, spread) if len(shown) >= 2 else spread
    t = [float(x) for x in range(t_len)]
    return ReactionTypes(content_id=content_id, job_id=found["id"], metrics=names, t=t, types=types,
                         hidden_types=int(len(sizes) - len(shown)), divergence=_nulls(spread),
                         moments=find_moments(t, spread, top),
                         min_audience=k)


@router.get("/contents/{content_id}/model/tracks")
def viewer_latents(content_id: int, session: SessionDep):
    """Per viewer (screening, camera, track) of the latest fit: latent vector, reaction type and seconds
    seen. Per-track data: admin scope only."""
    found = _latest(session, content_id)
    rows = rs.viewers(session, found["id"])
    return {"content_id": content_id, "job_id": found["id"],
            "viewers": [{k: r[k] for k in ("screening_id", "camera", "track_id", "reaction_type", "seconds_seen", "latent")}
                        for r in rows]}
