"""The linear baseline: masked CP (PARAFAC) factorisation, x[i,t,m] ~ sum_r U[i,r] V[t,r] W[m,r] in
standardised units, fitted by ridge-regularised alternating least squares on the observed cells only.

A cell is a (viewer, second) whose metrics are all observed or all missing, so every normal matrix is a
Hadamard product of two small Gram matrices (no loop over cells).

With `groups` (a label per viewer, e.g. the screening's cut; `group_ridge` set) each group g has its own
time factors V_t + D[g, t], the offsets D ridge-shrunk toward the shared V (`group_ridge`): where the
groups' content is the same the offsets stay small, where it differs (another cut's scenes) each group
learns its own. A new viewer of a group seen in the fit is forecast with that group's factors, any other
with the shared ones."""
from __future__ import annotations

import numpy as np

from .prior import MixturePrior
from .tensor import (LIKELIHOOD_WEIGHTS, ForecastHoldout, Standardiser, check, choose_prior_and_weight,
                     fitted_groups, group_index, holdout_cells, rmse)


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


def _grams(weights: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """[A, B] weights, [B, R] factors -> [A, R, R]: sum_b weights[a, b] * outer(factors[b], factors[b])."""
    r = factors.shape[1]
    return (weights @ (factors[:, :, None] * factors[:, None, :]).reshape(len(factors), r * r)).reshape(-1, r, r)


class CPFactorisation:
    def __init__(self, rank: int = 8, ridge: float = 1.0, max_iter: int = 30, tol: float = 1e-3,
                 validation: float = 0.05, prior_components: int = 1, forecast_viewers: float = 0.1,
                 forecast_first: float = 0.05, group_ridge: float | None = 10.0, seed: int = 0):
        if rank < 1 or ridge < 0 or max_iter < 1 or not 0 <= validation < 1:
            raise ValueError("rank >= 1, ridge >= 0, max_iter >= 1 and 0 <= validation < 1 are required")
        self.rank, self.ridge, self.max_iter, self.tol = rank, ridge, max_iter, tol
        self.validation, self.seed, self.prior_components = validation, seed, prior_components
        # as the VAE: viewers whose cells after the first `forecast_first` choose the forecasts' weight
        self.forecast_viewers, self.forecast_first = forecast_viewers, forecast_first
        self.group_ridge = group_ridge  # shrinkage of the groups' time offsets (None: one V for all)

    def _times(self, gidx: np.ndarray) -> np.ndarray:
        """[n, T, R]: each viewer's time factors (their group's, the shared ones for -1)."""
        if self.D_ is None:
            return np.broadcast_to(self.V_, (len(gidx), *self.V_.shape))
        offsets = np.concatenate([self.D_, np.zeros((1, *self.V_.shape))])
        return self.V_[None] + offsets[gidx]

    def _per_viewer_grams(self, f: np.ndarray, times: np.ndarray) -> np.ndarray:
        """[J, R, R]: sum_t f[i, t] outer(times[i, t], times[i, t])."""
        if self.D_ is None:
            return _grams(f, self.V_)
        return np.einsum("it,itr,its->irs", f, times, times, optimize=True)

    def _normal(self, z: np.ndarray, mask: np.ndarray, gidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each viewer's normal equations for their factors: gram [J, R, R] and rhs [J, R]."""
        times = self._times(gidx)
        gram = self._per_viewer_grams(mask.astype(np.float64), times) * (self.W_.T @ self.W_)
        return gram, ((z @ self.W_) * times).sum(1)

    def _viewer_factors(self, z: np.ndarray, mask: np.ndarray, gidx: np.ndarray) -> np.ndarray:
        """Ridge regression of each viewer's factors on their observed cells."""
        gram, rhs = self._normal(z, mask, gidx)
        return _solve(gram + self.ridge * np.eye(self.rank), rhs)

    def _time_step(self, z: np.ndarray, f: np.ndarray, eye: np.ndarray) -> None:
        """The shared time factors V given the offsets, then each group's offsets given V (ridge
        `group_ridge` toward 0), one normal equation per second."""
        wtw = self.W_.T @ self.W_
        if self.D_ is None:
            gram = _grams(f.T, self.U_) * wtw + eye
            self.V_ = _solve(gram, ((z @ self.W_) * self.U_[:, None]).sum(0))
            return
        grams, rhss = [], []
        for g in range(-1, len(self.D_)):  # -1: viewers of no group of their own (no offsets)
            sel = self.gidx_ == g
            grams.append(_grams(f[sel].T, self.U_[sel]) * wtw)
            rhss.append(((z[sel] @ self.W_) * self.U_[sel][:, None]).sum(0))
        offsets = [np.zeros_like(self.V_), *self.D_]
        shift = sum(rhs - np.einsum("trs,ts->tr", gram, d) for gram, rhs, d in zip(grams, rhss, offsets))
        self.V_ = _solve(sum(grams) + eye, shift)
        ridge = self.group_ridge * np.eye(self.rank)
        self.D_ = np.stack([_solve(gram + ridge, rhs - np.einsum("trs,ts->tr", gram, self.V_))
                            for gram, rhs in zip(grams[1:], rhss[1:])])

    def fit(self, values: np.ndarray, mask: np.ndarray, groups=None) -> "CPFactorisation":
        """`groups`: a label per viewer (e.g. the cut) for per-group time factors (with `group_ridge`)."""
        values, mask = check(values, mask)
        self.groups_ = fitted_groups(groups, self.group_ridge is not None)
        self.D_ = None
        self.gidx_ = group_index(self.groups_, groups, len(mask))
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
        self.D_ = np.zeros((len(self.groups_), t_len, r)) if self.groups_ else None
        f = train.astype(np.float64)
        zv = self.scale_.forward(values, val)
        best, best_state, previous = np.inf, None, np.inf
        for _ in range(self.max_iter):
            self.U_ = self._viewer_factors(z, train, self.gidx_)
            self._time_step(z, f, eye)
            times = self._times(self.gidx_)
            per_viewer = self._per_viewer_grams(f, times)
            gram_w = np.einsum("irs,ir,is->rs", per_viewer, self.U_, self.U_) + eye
            uv = (self.U_[:, None, :] * times).reshape(-1, r)
            rhs_w = z.reshape(-1, m).T @ uv
            self.W_ = np.linalg.solve(gram_w, rhs_w.T).T
            loss = self._error(zv, val) if val.any() else self._error(z, train)
            if loss < best:
                best, best_state = loss, (self.U_.copy(), self.V_.copy(), self.W_.copy(),
                                          None if self.D_ is None else self.D_.copy())
            if previous - loss < self.tol * max(previous, 1e-12) and np.isfinite(previous):
                break
            previous = loss
        self.U_, self.V_, self.W_, self.D_ = best_state
        resid = z - self._reconstruct(self.U_, self.gidx_)
        self.noise_ = np.maximum(resid[train].var(0), 1e-6)
        # new viewers' factors: the posterior mean under the training viewers' distribution (empirical Bayes)
        others = np.setdiff1d(np.arange(n), held_out.viewers)
        priors = MixturePrior.candidates(self.U_[others], self.prior_components, self.seed)
        who = held_out.viewers  # the prior and the likelihood's weight (shrinkage), chosen on validation

        def use(prior):
            self.prior_ = prior

        self.components_, self.likelihood_weight_, self.forecast_validation_ = choose_prior_and_weight(
            held_out, priors, use,
            lambda w: rmse(values[who], self._forecast_index(values[who], held_out.prefix, self.gidx_[who], w)[0],
                           held_out.rest), LIKELIHOOD_WEIGHTS)
        # then the validation viewers' own factors from all their cells, as every other viewer's
        full = mask & ~val
        self.U_[who] = self._viewer_factors(self.scale_.forward(values, full)[who], full[who], self.gidx_[who])
        return self

    def _reconstruct(self, U: np.ndarray, gidx: np.ndarray) -> np.ndarray:
        return ((U[:, None, :] * self._times(gidx)) @ self.W_.T).astype(np.float32)

    def _error(self, z, cells):
        i, t = np.nonzero(cells)
        times = self.V_[t] if self.D_ is None else self.V_[t] + self.D_[self.gidx_[i], t]
        return float(np.mean((z[i, t] - (self.U_[i] * times) @ self.W_.T) ** 2))

    def predict(self) -> np.ndarray:
        return self.scale_.inverse(self._reconstruct(self.U_, self.gidx_))

    def _forecast_index(self, values, mask, gidx, weight):
        values, mask = check(values, mask)
        z = self.scale_.forward(values, mask)
        gram, rhs = self._normal(z, mask, gidx)
        U = self.prior_.linear_gaussian_posterior_mean(gram, rhs, float(self.noise_.mean()) / weight)
        mean = self.scale_.inverse(self._reconstruct(U, gidx))
        return mean, np.broadcast_to(self.scale_.inverse_var(self.noise_), mean.shape).copy()

    def forecast(self, values: np.ndarray, mask: np.ndarray, weight: float | None = None,
                 groups=None) -> tuple[np.ndarray, np.ndarray]:
        """`groups`: the new viewers' group (one label or one per viewer); their group's time factors."""
        weight = getattr(self, "likelihood_weight_", 1.0) if weight is None else weight
        return self._forecast_index(values, mask, group_index(self.groups_, groups, len(mask)), weight)

    @property
    def viewer_latents(self) -> np.ndarray:
        return self.U_

    @property
    def time_factors(self) -> np.ndarray:
        return self.V_
