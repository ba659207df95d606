"""Two baselines: the content's mean curve, and each viewer's own mean + the content curve.

With `groups` (a label per viewer, e.g. the screening's cut) the content curve is the mean over the
viewer's group (the shared curve where no one of the group was seen that second, and for a group not
seen in the fit): the same time structure the factor models get."""
from __future__ import annotations

import numpy as np

from .tensor import check, curve


class ContentMean:
    """Every viewer predicted as the content's mean curve (the grand mean where no one was seen)."""

    def fit(self, values: np.ndarray, mask: np.ndarray, groups=None) -> "ContentMean":
        values, mask = check(values, mask)
        k, mean = curve(values, mask)
        grand = values[mask].mean(0)
        self.curve_ = np.where(k[:, None] > 0, mean, grand).astype(np.float32)
        self.group_curves_ = {}
        if groups is not None:
            groups = np.asarray(groups)
            for g in np.unique(groups):
                kg, mg = curve(values[groups == g], mask[groups == g])
                self.group_curves_[g] = np.where(kg[:, None] > 0, mg, self.curve_).astype(np.float32)
        self.fit_groups_ = groups
        self.n_viewers_ = len(mask)
        self.var_ = values[mask].var(0)
        return self

    def _curves(self, n: int, groups=None) -> np.ndarray:
        """[n, seconds, metrics]: each viewer's content curve (their group's, else the shared one)."""
        out = np.broadcast_to(self.curve_, (n, *self.curve_.shape)).copy()
        if groups is not None and self.group_curves_:
            groups = np.broadcast_to(np.asarray(groups), (n,))
            for g, c in self.group_curves_.items():
                out[groups == g] = c
        return out

    def predict(self) -> np.ndarray:
        return self._curves(self.n_viewers_, self.fit_groups_)

    def forecast(self, values: np.ndarray, mask: np.ndarray, groups=None) -> tuple[np.ndarray, np.ndarray]:
        shape = (len(mask), *self.curve_.shape)
        return self._curves(len(mask), groups), np.broadcast_to(self.var_, shape).copy()


class ViewerMeanPlusContent(ContentMean):
    """The content curve shifted by how far the viewer's own mean lies from the content mean over the
    seconds the viewer was seen."""

    def _offsets(self, values, mask, curves):
        seen = mask.sum(1)
        own = np.einsum("it,itm->im", mask, values) / np.maximum(seen, 1)[:, None]
        base = np.einsum("it,itm->im", mask, curves) / np.maximum(seen, 1)[:, None]
        return np.where(seen[:, None] > 0, own - base, 0.0)

    def fit(self, values, mask, groups=None):
        super().fit(values, mask, groups)
        values, mask = check(values, mask)
        curves = self._curves(len(mask), groups)
        self.offsets_ = self._offsets(values, mask, curves)
        resid = values - (curves + self.offsets_[:, None])
        self.var_ = resid[mask].var(0)
        return self

    def predict(self):
        return (self._curves(self.n_viewers_, self.fit_groups_) + self.offsets_[:, None]).astype(np.float32)

    def forecast(self, values, mask, groups=None):
        values, mask = check(values, mask)
        curves = self._curves(len(mask), groups)
        mean = (curves + self._offsets(values, mask, curves)[:, None]).astype(np.float32)
        return mean, np.broadcast_to(self.var_, mean.shape).copy()
