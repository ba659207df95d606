"""The linear baseline: masked CP (PARAFAC) factorisation, x[i,t,m] ~ sum_r U[i,r] V[t,r] W[m,r] in
standardised units, fitted by ridge-regularised alternating least squares on the observed cells only.

A cell is a (viewer, second) whose metrics are all observed or all missing, so every normal matrix is a
Hadamard product of two small Gram matrices (no loop over cells)."""
from __future__ import annotations

import numpy as np

from .tensor import Standardiser, check, holdout_cells


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


class CPFactorisation:
    def __init__(self, rank: int = 8, ridge: float = 1.0, max_iter: int = 40, tol: float = 1e-4,
                 validation: float = 0.05, seed: int = 0):
        if rank < 1 or ridge < 0 or max_iter < 1 or not 0 <= validation < 1:
            raise ValueError("rank >= 1, ridge >= 0, max_iter >= 1 and 0 <= validation < 1 are required")
        self.rank, self.ridge, self.max_iter, self.tol = rank, ridge, max_iter, tol
        self.validation, self.seed = validation, seed

    def _viewer_factors(self, z: np.ndarray, mask: np.ndarray) -> np.ndarray:
        eye = self.ridge * np.eye(self.rank)
        gram = np.einsum("it,tr,ts->irs", mask.astype(np.float32), self.V_, self.V_) * (self.W_.T @ self.W_) + eye
        rhs = np.einsum("itr,tr->ir", z @ self.W_, self.V_)
        return _solve(gram, rhs)

    def fit(self, values: np.ndarray, mask: np.ndarray) -> "CPFactorisation":
        values, mask = check(values, mask)
        rng = np.random.default_rng(self.seed)
        train, val = holdout_cells(mask, self.validation, rng)
        self.scale_ = Standardiser.fit(values, mask)
        z = self.scale_.forward(values, train)
        n, t_len, m = z.shape
        r, eye = self.rank, self.ridge * np.eye(self.rank)
        self.U_ = rng.normal(0, 0.1, (n, r))
        self.V_ = rng.normal(0, 0.1, (t_len, r))
        self.W_ = rng.normal(0, 1.0, (m, r))
        f = train.astype(np.float64)
        zv = self.scale_.forward(values, val)
        best, best_state, previous = np.inf, None, np.inf
        for _ in range(self.max_iter):
            self.U_ = self._viewer_factors(z, train)
            gram = np.einsum("it,ir,is->trs", f, self.U_, self.U_) * (self.W_.T @ self.W_) + eye
            self.V_ = _solve(gram, np.einsum("itr,ir->tr", z @ self.W_, self.U_))
            per_viewer = np.einsum("it,tr,ts->irs", f, self.V_, self.V_)
            gram_w = np.einsum("irs,ir,is->rs", per_viewer, self.U_, self.U_) + eye
            rhs_w = np.einsum("itm,ir,tr->mr", z, self.U_, self.V_)
            self.W_ = np.linalg.solve(gram_w, rhs_w.T).T
            loss = self._error(zv, val) if val.any() else self._error(z, train)
            if loss < best:
                best, best_state = loss, (self.U_.copy(), self.V_.copy(), self.W_.copy())
            if previous - loss < self.tol * max(previous, 1e-12) and np.isfinite(previous):
                break
            previous = loss
        self.U_, self.V_, self.W_ = best_state
        resid = z - self._reconstruct(self.U_)
        self.noise_ = np.maximum(resid[train].var(0), 1e-6)
        return self

    def _reconstruct(self, U: np.ndarray) -> np.ndarray:
        return np.einsum("ir,tr,mr->itm", U, self.V_, self.W_).astype(np.float32)

    def _error(self, z, cells):
        return float(np.mean((z[cells] - self._reconstruct(self.U_)[cells]) ** 2))

    def predict(self) -> np.ndarray:
        return self.scale_.inverse(self._reconstruct(self.U_))

    def forecast(self, values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, mask = check(values, mask)
        U = self._viewer_factors(self.scale_.forward(values, mask), mask)
        mean = self.scale_.inverse(self._reconstruct(U))
        return mean, np.broadcast_to(self.scale_.inverse_var(self.noise_), mean.shape).copy()

    @property
    def viewer_latents(self) -> np.ndarray:
        return self.U_

    @property
    def time_factors(self) -> np.ndarray:
        return self.V_
