"""Reaction types: viewers grouped by their latent vectors (k-means, k chosen by silhouette), and the
moments where the types' curves diverge."""
from __future__ import annotations

import numpy as np


def reaction_types(latents: np.ndarray, k_range: tuple[int, int] = (2, 6), seed: int = 0) -> np.ndarray:
    """Cluster label per viewer. k is the one in `k_range` with the best silhouette (at most a third of
    the viewers); a single type when there are too few viewers to split or no split is convincing (best
    silhouette below 0.1)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    x = np.asarray(latents, np.float64)
    x = (x - x.mean(0)) / np.where(x.std(0) > 1e-9, x.std(0), 1.0)
    best, labels = 0.1, np.zeros(len(x), np.int64)
    for k in range(k_range[0], min(k_range[1], len(x) // 3) + 1):
        found = KMeans(k, n_init=10, random_state=seed).fit_predict(x)
        if len(set(found)) < 2:
            continue
        score = silhouette_score(x, found, sample_size=min(len(x), 2000), random_state=seed)
        if score > best:
            best, labels = score, found
    # number types by size, largest first, so that type 0 is the commonest
    order = np.argsort(-np.bincount(labels), kind="stable")
    return np.argsort(order)[labels]


def type_curves(predicted: np.ndarray, present: np.ndarray, labels: np.ndarray,
                return_counts: bool = False):
    """Per type: its size (viewers) and its curve [types, seconds, metrics], the mean of the model's
    values over the type's viewers present each second (NaN where none); with `return_counts` also how
    many of them were present each second [types, seconds]."""
    n_types = int(labels.max()) + 1 if len(labels) else 0
    sizes = np.bincount(labels, minlength=n_types)
    curves = np.full((n_types, *predicted.shape[1:]), np.nan, np.float32)
    counts = np.zeros((n_types, predicted.shape[1]), np.int64)
    for k in range(n_types):
        cells = present[labels == k].astype(np.float64)
        counts[k] = cells.sum(0)
        total = np.einsum("it,itm->tm", cells, predicted[labels == k])
        with np.errstate(invalid="ignore", divide="ignore"):
            curves[k] = np.where(counts[k][:, None] > 0, total / counts[k][:, None], np.nan)
    return (sizes, curves, counts) if return_counts else (sizes, curves)


def divergence(curves: np.ndarray, sizes: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Per second: the size-weighted spread of the types' curves around their mean, averaged over metrics
    (in units of `scale`, e.g. each metric's SD). NaN with fewer than two types."""
    if len(sizes) < 2:
        return np.full(curves.shape[1], np.nan)
    z = curves / (scale if scale is not None else 1.0)
    w = (sizes / sizes.sum())[:, None, None]
    with np.errstate(invalid="ignore"):
        centre = np.nansum(w * z, 0)
        return np.sqrt(np.nanmean(np.nansum(w * (z - centre) ** 2, 0), -1))
