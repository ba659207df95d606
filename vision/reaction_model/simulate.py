"""Simulated screenings of one content with known latents (evaluation, tests, the demo).

Each second of content time has a latent v_t (4 channels: moments that land early, late, surprises, a slow
mood); a cut changes the middle fifth. Each viewer belongs to a reaction type (early laughers, late warmers,
stone faces) whose centre, plus the viewer's own deviation, is u_i. The metrics are a fixed nonlinear map of
u_i * v_t (a random two-layer network, then a softmax over the 7 expression probabilities and sigmoids for
the 5 blendshape metrics) plus a per-viewer style offset, with noise; 13% of seconds are missing in bursts
(a face turned away or occluded for a while). The noise-free values are kept as ground truth."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tensor import MODEL_METRICS

TYPES = ("early laughers", "late warmers", "stone faces")
CENTRES = np.array([[2.0, 0.3, 1.0, 0.3], [0.3, 2.0, 1.0, 0.8], [0.15, 0.15, 0.3, 0.1]], np.float32)


@dataclass(frozen=True)
class Season:
    values: np.ndarray  # [viewers, seconds, metrics], observed values (noise added; anything where unseen)
    mask: np.ndarray  # [viewers, seconds] seen
    truth: np.ndarray  # [viewers, seconds, metrics] without noise
    screening: np.ndarray  # [viewers] index of the screening
    reaction_type: np.ndarray  # [viewers] index into TYPES
    cuts: tuple[str, ...]  # per screening
    metrics: tuple[str, ...] = MODEL_METRICS


def _bumps(t_len, n, width, rng):
    t = np.arange(t_len)
    out = np.zeros(t_len, np.float32)
    for centre, w, h in zip(rng.uniform(0, t_len, n), rng.uniform(*width, n), rng.uniform(0.5, 1.5, n)):
        out += h * np.exp(-0.5 * ((t - centre) / w) ** 2)
    return out


def _channels(t_len: int, rng: np.random.Generator) -> np.ndarray:
    per_minute = max(1, t_len // 60)
    half = np.arange(t_len) < t_len // 2
    return np.stack([_bumps(t_len, per_minute, (2, 6), rng) * half,
                     _bumps(t_len, per_minute, (2, 6), rng) * ~half,
                     _bumps(t_len, max(1, per_minute // 3), (1, 3), rng),
                     0.5 + 0.5 * np.sin(np.arange(t_len) / max(t_len / 6.0, 1.0) + rng.uniform(0, 6))], 1)


def time_latents(duration_s: int, cut: str, seed: int) -> np.ndarray:
    """[seconds, 4]: the content's latent per second for one cut. Cut "A" is the reference; any other cut
    has other moments in the middle fifth and the same elsewhere."""
    t_len = int(duration_s)
    V = _channels(t_len, np.random.default_rng(seed)).astype(np.float32)
    if cut != "A":
        lo, hi = int(0.4 * t_len), int(0.6 * t_len)
        V[lo:hi] = _channels(t_len, np.random.default_rng(seed + 1000 + sum(map(ord, cut))))[lo:hi]
    return V


def _decoder(m: int, seed: int):
    rng = np.random.default_rng(seed + 7)
    A, a = rng.normal(0, 1.2, (4, 16)).astype(np.float32), rng.normal(0, 0.3, 16).astype(np.float32)
    B, b = rng.normal(0, 1.0, (16, m)).astype(np.float32), np.zeros(m, np.float32)
    b[MODEL_METRICS.index("p_neutral")] = 2.0  # most of the time most faces are neutral
    return lambda z: np.tanh(z @ A + a) @ B + b


def bursts(shape: tuple[int, int], missing: float, burst_s: float, rng: np.random.Generator) -> np.ndarray:
    """[viewers, seconds] seen, with a `missing` fraction unseen in bursts of mean length `burst_s`."""
    back = 1.0 / burst_s
    away = missing * back / (1 - missing)
    seen = np.ones(shape, bool)
    state = rng.random(shape[0]) >= missing
    draws = rng.random(shape)
    for t in range(shape[1]):
        state = np.where(state, draws[:, t] >= away, draws[:, t] < back)
        seen[:, t] = state
    return seen


def simulate(screenings: int = 3, duration_s: int = 600, viewers: tuple[int, int] = (60, 120),
             cuts: tuple[str, ...] = ("A", "B"), missing: float = 0.13, burst_s: float = 8.0, noise: float = 0.05,
             seed: int = 0) -> Season:
    """A season: `screenings` screenings of a `duration_s` content, each with a number of viewers drawn
    from `viewers` (inclusive) and a cut taken in turn from `cuts`."""
    rng = np.random.default_rng(seed)
    m = len(MODEL_METRICS)
    decode = _decoder(m, seed)
    n_probs = sum(1 for x in MODEL_METRICS if x.startswith("p_"))
    values, truth, screening, kinds, used = [], [], [], [], []
    for s in range(screenings):
        cut = cuts[s % len(cuts)]
        used.append(cut)
        V = time_latents(duration_s, cut, seed)
        n = int(rng.integers(viewers[0], viewers[1] + 1))
        kind = rng.choice(len(TYPES), n, p=[0.4, 0.35, 0.25])
        U = CENTRES[kind] + rng.normal(0, 0.25, (n, 4)).astype(np.float32)
        style = rng.normal(0, 0.4, (n, m)).astype(np.float32)
        logits = decode(U[:, None, :] * V[None]) + style[:, None, :]
        p = np.exp(logits[..., :n_probs] - logits[..., :n_probs].max(-1, keepdims=True))
        clean = np.concatenate([p / p.sum(-1, keepdims=True), 1 / (1 + np.exp(-logits[..., n_probs:]))], -1)
        truth.append(clean.astype(np.float32))
        values.append(np.clip(clean + rng.normal(0, noise, clean.shape), 0, 1).astype(np.float32))
        screening.append(np.full(n, s))
        kinds.append(kind)
    values, truth = np.concatenate(values), np.concatenate(truth)
    mask = bursts(values.shape[:2], missing, burst_s, rng)
    return Season(values, mask, truth, np.concatenate(screening), np.concatenate(kinds), tuple(used))


def screening_batches(season: Season, screening: int, rows: int = 20_000):
    """The seen viewer-seconds of one simulated screening as ingest batches (the columnar form of the
    per-track-second statistics, one sample per second, `rows` at most per batch unless one second holds
    more), in time order and cut at whole seconds: the service stores a camera's second once, whole;
    viewers are tracks 1..n of one camera. Values the simulator does not model: valence = happiness minus the mean of the
    negative expressions, pose 0, attention 1."""
    from ..labels import VALUE_COLUMNS

    who = np.flatnonzero(season.screening == screening)
    viewer, second = np.nonzero(season.mask[who])
    order = np.lexsort((viewer, second))
    viewer, second = viewer[order], second[order]
    x = season.values[who][viewer, second]
    value = {m: x[:, j] for j, m in enumerate(season.metrics)}
    negative = np.mean([value[f"p_{e}"] for e in ("anger", "disgust", "fear", "sadness")], 0)
    value["valence"] = value["p_happiness"] - negative
    for name in VALUE_COLUMNS:
        value.setdefault(name, np.ones(len(x)) if name == "attention" else np.zeros(len(x)))
    starts = np.flatnonzero(np.r_[True, second[1:] != second[:-1]])  # where each second begins
    cuts, lo = [], 0
    while lo < len(x):
        hi = min(lo + rows, len(x))
        if hi < len(x):  # end where a second begins: the last such place within `rows`, else after lo's second
            inside = starts[(starts > lo) & (starts <= hi)]
            hi = int(inside[-1]) if len(inside) else int(starts[starts > lo][0])
        cuts.append((lo, hi))
        lo = hi
    for lo, hi in cuts:
        part = slice(lo, hi)
        batch = {"track_id": (viewer[part] + 1).tolist(), "second": second[part].tolist(), "n": [1] * len(x[part])}
        for name in VALUE_COLUMNS:
            v = np.asarray(value[name][part], np.float64)
            batch[f"s_{name}"], batch[f"q_{name}"] = v.tolist(), (v * v).tolist()
        yield batch
