"""Two baselines: the content's mean curve, and each viewer's own mean + the content curve."""
from __future__ import annotations

import numpy as np

from .tensor import check, curve


class ContentMean:
    """Every viewer predicted as the content's mean curve (the grand mean where no one was seen)."""

    def fit(self, values: np.ndarray, mask: np.ndarray) -> "ContentMean":
        values, mask = check(values, mask)
        k, mean = curve(values, mask)
        grand = values[mask].mean(0)
        self.curve_ = np.where(k[:, None] > 0, mean, grand).astype(np.float32)
        self.n_viewers_ = len(mask)
        self.var_ = values[mask].var(0)
        return self

    def predict(self) -> np.ndarray:
        return np.broadcast_to(self.curve_, (self.n_viewers_, *self.curve_.shape)).copy()

    def forecast(self, values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shape = (len(mask), *self.curve_.shape)
        return np.broadcast_to(self.curve_, shape).copy(), np.broadcast_to(self.var_, shape).copy()


class ViewerMeanPlusContent(ContentMean):
    """The content curve shifted by how far the viewer's own mean lies from the content mean over the
    seconds the viewer was seen."""

    def _offsets(self, values, mask):
        seen = mask.sum(1)
        own = np.einsum("it,itm->im", mask, values) / np.maximum(seen, 1)[:, None]
        base = np.einsum("it,tm->im", mask, self.curve_) / np.maximum(seen, 1)[:, None]
        return np.where(seen[:, None] > 0, own - base, 0.0)

    def fit(self, values, mask):
        super().fit(values, mask)
        values, mask = check(values, mask)
        self.offsets_ = self._offsets(values, mask)
        resid = values - (self.curve_[None] + self.offsets_[:, None])
        self.var_ = resid[mask].var(0)
        return self

    def predict(self):
        return (self.curve_[None] + self.offsets_[:, None]).astype(np.float32)

    def forecast(self, values, mask):
        values, mask = check(values, mask)
        mean = (self.curve_[None] + self._offsets(values, mask)[:, None]).astype(np.float32)
        return mean, np.broadcast_to(self.var_, mean.shape).copy()
