"""The linear baseline: masked CP (PARAFAC) factorisation, x[i,t,m] ~ sum_r U[i,r] V[t,r] W[m,r] in
standardised units, fitted by ridge-regularised alternating least squares on the observed cells only.

A cell is a (viewer, second) whose metrics are all observed or all missing, so every normal matrix is a
Hadamard product of two small Gram matrices (no loop over cells)."""
from __future__ import annotations

import numpy as np

from .prior import MixturePrior
from .tensor import (LIKELIHOOD_WEIGHTS, ForecastHoldout, Standardiser, check, choose_prior_and_weight,
                     holdout_cells, rmse)


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


def _grams(weights: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """[A, B] weights, [B, R] factors -> [A, R, R]: sum_b weights[a, b] * outer(factors[b], factors[b])."""
    r = factors.shape[1]
    return (weights @ (factors[:, :, None] * factors[:, None, :]).reshape(len(factors), r * r)).reshape(-1, r, r)


class CPFactorisation:
    def __init__(self, rank: int = 8, ridge: float = 1.0, max_iter: int = 30, tol: float = 1e-3,
                 validation: float = 0.05, prior_components: int = 1, forecast_viewers: float = 0.1,
                 forecast_first: float = 0.05, seed: int = 0):
        if rank < 1 or ridge < 0 or max_iter < 1 or not 0 <= validation < 1:
            raise ValueError("rank >= 1, ridge >= 0, max_iter >= 1 and 0 <= validation < 1 are required")
        self.rank, self.ridge, self.max_iter, self.tol = rank, ridge, max_iter, tol
        self.validation, self.seed, self.prior_components = validation, seed, prior_components
        # as the VAE: viewers whose cells after the first `forecast_first` choose the forecasts' weight
        self.forecast_viewers, self.forecast_first = forecast_viewers, forecast_first

    def _viewer_factors(self, z: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Ridge regression of each viewer's factors on their observed cells."""
        gram = _grams(mask.astype(np.float64), self.V_) * (self.W_.T @ self.W_) + self.ridge * np.eye(self.rank)
        rhs = ((z @ self.W_) * self.V_[None]).sum(1)
        return _solve(gram, rhs)

    def fit(self, values: np.ndarray, mask: np.ndarray) -> "CPFactorisation":
        values, mask = check(values, mask)
        rng = np.random.default_rng(self.seed)
        held_out = ForecastHoldout.split(mask, self.forecast_viewers, self.forecast_first, rng)
        train, val = holdout_cells(held_out.train, self.validation, rng)
        self.scale_ = Standardiser.fit(values, held_out.train)
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
            gram = _grams(f.T, self.U_) * (self.W_.T @ self.W_) + eye
            self.V_ = _solve(gram, ((z @ self.W_) * self.U_[:, None]).sum(0))
            per_viewer = _grams(f, self.V_)
            gram_w = np.einsum("irs,ir,is->rs", per_viewer, self.U_, self.U_) + eye
            uv = (self.U_[:, None, :] * self.V_[None]).reshape(-1, r)
            rhs_w = z.reshape(-1, m).T @ uv
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
        # new viewers' factors: the posterior mean under the training viewers' distribution (empirical Bayes)
        others = np.setdiff1d(np.arange(n), held_out.viewers)
        priors = MixturePrior.candidates(self.U_[others], self.prior_components, self.seed)
        who = held_out.viewers  # the prior and the likelihood's weight (shrinkage), chosen on validation

        def use(prior):
            self.prior_ = prior

        self.components_, self.likelihood_weight_, self.forecast_validation_ = choose_prior_and_weight(
            held_out, priors, use, lambda w: rmse(values[who], self.forecast(values[who], held_out.prefix, weight=w)[0],
                                                  held_out.rest), LIKELIHOOD_WEIGHTS)
        # then the validation viewers' own factors from all their cells, as every other viewer's
        full = mask & ~val
        self.U_[who] = self._viewer_factors(self.scale_.forward(values, full)[who], full[who])
        return self

    def _reconstruct(self, U: np.ndarray) -> np.ndarray:
        return ((U[:, None, :] * self.V_[None]) @ self.W_.T).astype(np.float32)

    def _error(self, z, cells):
        i, t = np.nonzero(cells)
        return float(np.mean((z[i, t] - (self.U_[i] * self.V_[t]) @ self.W_.T) ** 2))

    def predict(self) -> np.ndarray:
        return self.scale_.inverse(self._reconstruct(self.U_))

    def forecast(self, values: np.ndarray, mask: np.ndarray,
                 weight: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        weight = getattr(self, "likelihood_weight_", 1.0) if weight is None else weight
        values, mask = check(values, mask)
        z = self.scale_.forward(values, mask)
        gram = _grams(mask.astype(np.float64), self.V_) * (self.W_.T @ self.W_)
        rhs = ((z @ self.W_) * self.V_[None]).sum(1)
        U = self.prior_.linear_gaussian_posterior_mean(gram, rhs, float(self.noise_.mean()) / weight)
        mean = self.scale_.inverse(self._reconstruct(U))
        return mean, np.broadcast_to(self.scale_.inverse_var(self.noise_), mean.shape).copy()

    @property
    def viewer_latents(self) -> np.ndarray:
        return self.U_

    @property
    def time_factors(self) -> np.ndarray:
        return self.V_
