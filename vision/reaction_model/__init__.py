"""The audience model: a viewer x second x metric tensor with a missing mask, and models of it.

Pure math, no database. Every model has the same surface: `fit(values, mask)` on the training viewers,
`predict()` -> their reconstruction (observed and unseen seconds), and `forecast(values, mask)` -> the
predicted mean and variance for new viewers from the cells of theirs that were observed (e.g. a
screening's first minutes), with the content's time factors learned from the other viewers.

- `baselines`: the content mean curve; each viewer's own mean + the content curve.
- `linear`: masked CP (PARAFAC) factorisation by alternating least squares (numpy).
- `vae`: the factorised VAE of Deng et al. (CVPR 2017) in JAX/optax (optional extra `.[model]`).
- `types`: reaction types (k-means of viewer latents) and the moments where they diverge.
- `simulate`: screenings with known latents, for evaluation, tests and the demo.
"""
from .baselines import ContentMean, ViewerMeanPlusContent
from .linear import CPFactorisation
from .tensor import MODEL_METRICS, Standardiser, holdout_cells, rmse

__all__ = ["MODEL_METRICS", "Standardiser", "holdout_cells", "rmse", "ContentMean", "ViewerMeanPlusContent",
           "CPFactorisation"]
