"""The viewer x second x metric tensor: `values` [viewers, seconds, metrics] (float32, anything where
unseen) and `mask` [viewers, seconds] (bool: the viewer's face was seen that second; then every metric
is observed). Helpers shared by the models."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..labels import METRICS, PROB_COLUMNS
from .prior import MIN_COMPONENT_VIEWERS

#: The metrics the model reads: the expression probabilities and the blendshape metrics (12).
MODEL_METRICS: tuple[str, ...] = PROB_COLUMNS + METRICS


def check(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, mask = np.asarray(values, np.float32), np.asarray(mask, bool)
    if values.ndim != 3 or mask.shape != values.shape[:2]:
        raise ValueError(f"values must be [viewers, seconds, metrics] and mask [viewers, seconds]; "
                         f"got {values.shape} and {mask.shape}")
    if not np.isfinite(values[mask]).all():
        raise ValueError("observed values must be finite")
    return np.where(mask[:, :, None], values, 0.0).astype(np.float32), mask


@dataclass(frozen=True)
class Standardiser:
    """Per-metric mean and SD over the observed cells: models work in z units."""

    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, mask: np.ndarray) -> "Standardiser":
        seen = values[mask]
        if len(seen) == 0:
            raise ValueError("no observed cell")
        sd = seen.std(0)
        return cls(seen.mean(0).astype(np.float32), np.where(sd > 1e-6, sd, 1.0).astype(np.float32))

    def forward(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.where(mask[:, :, None], (values - self.mean) / self.sd, 0.0).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * self.sd + self.mean

    def inverse_var(self, var: np.ndarray) -> np.ndarray:
        return var * self.sd ** 2


def holdout_cells(mask: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split the observed cells: (kept, held out), `fraction` of them held out at random."""
    held = mask & (rng.random(mask.shape) < fraction)
    return mask & ~held, held


@dataclass(frozen=True)
class ForecastHoldout:
    """Validation of forecasts inside the training data: a few viewers whose cells after their first
    seconds are held out of the fit; their prefix is what a forecast reads, the rest what it is scored on."""

    train: np.ndarray  # [viewers, seconds] the cells left to fit on
    viewers: np.ndarray  # [J] indices of the validation viewers
    prefix: np.ndarray  # [J, seconds] their cells a forecast reads
    rest: np.ndarray  # [J, seconds] their held-out cells
    errors: dict = field(default_factory=dict)  # weight -> validation error, filled by `choose`

    @classmethod
    def split(cls, mask: np.ndarray, fraction: float, first: float, rng: np.random.Generator,
              min_viewers: int = 10) -> "ForecastHoldout":
        """`fraction` of the viewers seen after their first `first` fraction of the seconds (none with fewer
        than `min_viewers` viewers in all)."""
        t_cut = max(1, int(round(first * mask.shape[1])))
        prefix = mask.copy()
        prefix[:, t_cut:] = False
        candidates = np.flatnonzero((mask & ~prefix).any(1) & prefix.any(1))
        n = int(round(fraction * len(mask))) if len(mask) >= min_viewers else 0
        who = np.sort(rng.choice(candidates, min(n, len(candidates)), replace=False))
        train = mask.copy()
        train[who] = prefix[who]
        return cls(train, who, prefix[who], mask[who] & ~prefix[who])

    def choose(self, error, weights: tuple[float, ...]) -> float:
        """The weight in `weights` whose forecast error `error(weight, self)` is lowest (1 without viewers)."""
        if len(self.viewers) == 0 or not self.rest.any():
            return 1.0
        self.errors.clear()
        self.errors.update({w: error(w) for w in weights})
        return float(min(self.errors, key=self.errors.get))


def choose_prior_and_weight(held_out: "ForecastHoldout", priors: dict, use, error,
                            weights: tuple[float, ...]) -> tuple[int, float, dict]:
    """The prior (of `priors`, {components: prior}) and likelihood weight with the lowest held-out
    forecast error. `use(prior)` installs a prior in the model, `error(weight)` scores its forecasts. One
    Gaussian is tried at every weight; a mixture at the Gaussian's best weight and its two neighbours in
    the grid (the same rule for every model). -> (components, weight, {(components, weight): error})."""
    errors: dict = {}
    first = min(priors)
    use(priors[first])
    w1 = held_out.choose(error, weights)
    errors.update({(first, w): e for w, e in held_out.errors.items()})
    if len(held_out.viewers) and held_out.rest.any():
        at = weights.index(w1)
        near = weights[max(at - 1, 0): at + 2]
        for k in sorted(priors)[1:]:
            use(priors[k])
            errors.update({(k, w): error(w) for w in near})
    k, w = min(errors, key=errors.get) if errors else (first, w1)
    use(priors[k])
    return k, w, errors


#: Likelihood weights tried for a new viewer's latent (shrinkage toward the prior; chosen on validation).
LIKELIHOOD_WEIGHTS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


def fitted_groups(groups, enabled: bool) -> list:
    """The groups (e.g. cuts) that get time factors of their own: those of at least MIN_COMPONENT_VIEWERS viewers
    (their factors are stored with the fit: an aggregate, so the minimum audience size), where at least two such
    groups exist and per-group factors are `enabled`; the viewers of any other group use the shared ones."""
    labels, counts = np.unique(np.asarray(groups), return_counts=True) if groups is not None else ([], [])
    labels = [g for g, c in zip(labels, counts) if c >= MIN_COMPONENT_VIEWERS]
    return np.array(labels).tolist() if len(labels) >= 2 and enabled else []


def group_index(known: list, groups, n: int) -> np.ndarray:
    """[n] index of each viewer's group among the fitted ones `known` (-1: none, or a group not fitted)."""
    if groups is None or not known:
        return np.full(n, -1)
    groups = np.broadcast_to(np.asarray(groups), (n,))
    return np.array([known.index(g) if g in known else -1 for g in groups.tolist()])


def rmse(values: np.ndarray, predicted: np.ndarray, cells: np.ndarray) -> float:
    """Root mean squared error over the metrics of the given cells."""
    if not cells.any():
        return float("nan")
    return float(np.sqrt(np.mean((values[cells] - predicted[cells]) ** 2)))


def curve(values: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per second: how many viewers count (cells), and the mean of each metric over them (NaN with none)."""
    k = cells.sum(0)
    total = np.einsum("it,itm->tm", cells.astype(np.float64), values.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return k, np.where(k[:, None] > 0, total / k[:, None], np.nan)


def presence(mask: np.ndarray) -> np.ndarray:
    """[viewers, seconds]: the viewer was there (between their first and last seen second)."""
    t = np.arange(mask.shape[1])
    seen = mask.any(1)
    first = np.where(seen, mask.argmax(1), mask.shape[1])
    last = np.where(seen, mask.shape[1] - 1 - mask[:, ::-1].argmax(1), -1)
    return (t[None, :] >= first[:, None]) & (t[None, :] <= last[:, None])
