"""The factorised variational autoencoder of Deng et al. (CVPR 2017): a latent u_i per viewer
(variational Gaussian, prior N(0, I)), a latent v_t per second of content (point estimate, prior N(0, I)),
and a neural decoder of their elementwise product, x[i,t,:] ~ N(f(u_i * v_t), diag(sigma^2)), trained on
the observed cells only (Gaussian likelihood + KL of u; minibatches of cells, Adam), with a fixed seed and
early stopping on held-out observed cells.

A new viewer's u is inferred from the cells of theirs that were observed (the decoder and the time factors
stay fixed; 1,000 Adam steps, cosine-decayed: 300 at a fixed rate stopped short of the optimum and cost
the forecasts ~15%), under the training viewers' distribution as prior, the likelihood counted with a
weight chosen in `fit` on held-out forecasts: a tenth of the training viewers have their cells after the
first 5% of the content held out, are forecast from that prefix under each weight, and the weight with the
lowest error is kept (below 1: new viewers move less far from the prior for the seconds they were seen).
With a mixture prior (`prior_components` > 1: the number chosen on the same held-out forecasts, together
with the weight) a new viewer gets one posterior per component, weighted by its evidence (ELBO), and the
forecast mixes them. The forecast is the mean over samples of u, its variance that spread plus the noise.

With `groups` in `fit` (a label per viewer, e.g. the screening's cut) and `group_sd` set, each group g has
its own time factors V_t + D[g, t], the offsets D with prior N(0, group_sd^2) (shrunk toward the shared V):
a cut's own scenes get their own factors, the scenes the cuts share stay shared. A new viewer of a fitted
group is forecast with that group's factors, any other with the shared V (as the linear baseline).

Tried and left out (simulator, README): a full-covariance posterior instead of the mean-field one (meant
to keep the prior's spread in the directions the first seconds do not see) forecast worse on validation
(0.102 vs 0.083 RMSE), even at its posterior mean.

Needs JAX and optax (`pip install audience-reactions[model]`); imported only when a VAE is used."""
from __future__ import annotations

import numpy as np

from .prior import MixturePrior
from .tensor import (LIKELIHOOD_WEIGHTS, ForecastHoldout, Standardiser, check, choose_prior_and_weight,
                     fitted_groups, group_index, holdout_cells, rmse)


def require_jax():
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError as exc:  # one line for the user: the optional extra is missing
        raise ImportError("the factorised VAE needs JAX and optax: pip install 'audience-reactions[model]'") from exc
    return jax, jnp, optax


def _decode(dec, z, jnp):
    """The MLP of z = u * v_t (the models add u @ style: the viewer's offsets whatever the moment)."""
    h = z
    for k, (w, b) in enumerate(dec):
        h = h @ w + b
        if k < len(dec) - 1:
            h = jnp.tanh(h)
    return h


class FactorisedVAE:
    def __init__(self, latent: int = 20, hidden: int = 64, batch: int = 2048, max_epochs: int = 60,
                 patience: int = 4, learning_rate: float = 3e-3, validation: float = 0.05, samples: int = 4,
                 infer_steps: int = 1000, prior_components: int = 1, forecast_viewers: float = 0.1,
                 forecast_first: float = 0.05, group_sd: float | None = 0.5, seed: int = 0):
        if latent < 1 or hidden < 1 or batch < 1 or max_epochs < 1 or not 0 <= validation < 1:
            raise ValueError("latent, hidden, batch and max_epochs must be >= 1 and 0 <= validation < 1")
        self.latent, self.hidden, self.batch, self.max_epochs = latent, hidden, batch, max_epochs
        self.patience, self.learning_rate, self.validation = patience, learning_rate, validation
        self.samples, self.infer_steps, self.seed = samples, infer_steps, seed
        self.prior_components = prior_components  # at most, in the new viewers' latent prior (chosen on validation)
        # the share of viewers whose cells after the first `forecast_first` of the content are held out of
        # the fit to choose the likelihood weight of forecasts (validation; none with under 10 viewers)
        self.forecast_viewers, self.forecast_first = forecast_viewers, forecast_first
        self.group_sd = group_sd  # prior SD of the groups' time offsets (None: one V for all)

    def _time_table(self) -> np.ndarray:
        """[G + 1, T, R]: each fitted group's time factors, then (index -1) the shared ones."""
        V = self.params_["V"]
        D = self.params_.get("D", np.zeros((0, *V.shape), np.float32))
        return np.concatenate([V[None] + D, V[None]]).astype(np.float32)

    # -- training -------------------------------------------------------------------------------------
    def _init(self, n, t_len, m, rng, n_groups=0):
        sizes = [self.latent, self.hidden, self.hidden, m]
        dec = [(rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32), np.zeros(b, np.float32))
               for a, b in zip(sizes[:-1], sizes[1:])]
        return {"dec": dec, "V": rng.normal(0, 1, (t_len, self.latent)).astype(np.float32),
                "log_noise": np.zeros(m, np.float32), "style": np.zeros((self.latent, m), np.float32),
                "mu": rng.normal(0, 0.3, (n, self.latent)).astype(np.float32),
                "ls": np.full((n, self.latent), -2.0, np.float32),
                **({"D": np.zeros((n_groups, t_len, self.latent), np.float32)} if n_groups else {})}

    def _functions(self, n_cells, gidx):
        jax, jnp, optax = require_jax()
        gidx = jnp.asarray(gidx)

        def time(params, i, t):
            if "D" not in params:
                return params["V"][t]
            g = gidx[i]  # -1: a viewer of no group of their own, the shared factors
            return params["V"][t] + jnp.where((g >= 0)[:, None], params["D"][jnp.maximum(g, 0), t], 0.0)

        def nll(params, u, i, t, z):
            out = _decode(params["dec"], u * time(params, i, t), jnp) + u @ params["style"]
            ln = params["log_noise"]
            return jnp.sum(0.5 * (z - out) ** 2 * jnp.exp(-2 * ln) + ln, -1)

        def kl(mu, ls):
            return 0.5 * jnp.sum(mu ** 2 + jnp.exp(2 * ls) - 1 - 2 * ls)

        def loss(params, key, i, t, Z):
            mu, ls = params["mu"][i], params["ls"][i]
            u = mu + jnp.exp(ls) * jax.random.normal(key, mu.shape)
            data = jnp.mean(nll(params, u, i, t, Z[i, t]))
            prior = kl(params["mu"], params["ls"]) + 0.5 * jnp.sum(params["V"] ** 2)
            if "D" in params:
                prior = prior + 0.5 * jnp.sum(params["D"] ** 2) / self.group_sd ** 2
            return data + prior / n_cells

        opt = optax.adam(self.learning_rate)

        @jax.jit
        def epoch(params, state, key, batches, Z):
            def step(carry, cells):
                params, state, key = carry
                key, sub = jax.random.split(key)
                grads = jax.grad(loss)(params, sub, cells[:, 0], cells[:, 1], Z)
                updates, state = opt.update(grads, state, params)
                return (optax.apply_updates(params, updates), state, key), None

            (params, state, key), _ = jax.lax.scan(step, (params, state, key), batches)
            return params, state, key

        @jax.jit
        def squared_error(params, i, t, Z):
            out = _decode(params["dec"], params["mu"][i] * time(params, i, t), jnp) + params["mu"][i] @ params["style"]
            return jnp.sum((Z[i, t] - out) ** 2)

        return opt, epoch, squared_error

    def fit(self, values: np.ndarray, mask: np.ndarray, groups=None) -> "FactorisedVAE":
        """`groups`: a label per viewer (e.g. the cut) for per-group time factors (with `group_sd`)."""
        jax, jnp, _ = require_jax()
        values, mask = check(values, mask)
        self.groups_ = fitted_groups(groups, self.group_sd is not None)
        self.gidx_ = group_index(self.groups_, groups, len(mask))
        rng = np.random.default_rng(self.seed)
        held_out = ForecastHoldout.split(mask, self.forecast_viewers, self.forecast_first, rng)
        train, val = holdout_cells(held_out.train, self.validation, rng)
        self.scale_ = Standardiser.fit(values, held_out.train)
        Z = jnp.asarray(self.scale_.forward(values, mask))
        cells = np.argwhere(train).astype(np.int32)
        val_cells = np.argwhere(val).astype(np.int32)
        if len(cells) == 0:
            raise ValueError("no observed cell to train on")
        batch = min(self.batch, len(cells))
        params = jax.tree_util.tree_map(jnp.asarray, self._init(*values.shape, rng, len(self.groups_)))
        opt, epoch, squared_error = self._functions(len(cells), self.gidx_)
        state = opt.init(params)
        key = jax.random.PRNGKey(self.seed)
        best, best_params, waited, self.epochs_ = np.inf, params, 0, 0
        check_cells = val_cells if len(val_cells) else cells
        for _ in range(self.max_epochs):
            order = rng.permutation(len(cells))[: len(cells) // batch * batch]
            params, state, key = epoch(params, state, key, jnp.asarray(cells[order].reshape(-1, batch, 2)), Z)
            self.epochs_ += 1
            err = float(squared_error(params, check_cells[:, 0], check_cells[:, 1], Z)) / len(check_cells)
            if err < best - 1e-5:
                best, best_params, waited = err, params, 0
            else:
                waited += 1
                if waited >= self.patience:
                    break
        self.params_ = jax.tree_util.tree_map(np.array, best_params)  # writable copies
        self.validation_mse_ = best
        # the prior of new viewers' latents: the training viewers' distribution (empirical Bayes), which
        # carries what the first minutes say about the rest (e.g. early laughers rarely warm up late)
        who = held_out.viewers
        others = np.setdiff1d(np.arange(len(mask)), who)
        priors = MixturePrior.candidates(self.params_["mu"][others], self.prior_components, self.seed)
        # which prior, and how far a new viewer's few seconds move them from it: chosen on the held-out
        # forecasts; then the validation viewers' own latents from all their cells, as every other viewer's
        self.components_, self.likelihood_weight_, self.forecast_validation_ = choose_prior_and_weight(
            held_out, priors, lambda prior: self.params_.update(prior.arrays()), lambda w: rmse(
                values[who], self._moments(*self.infer(values[who], held_out.prefix, weight=w, gidx=self.gidx_[who]),
                                           gidx=self.gidx_[who])[0], held_out.rest),
            LIKELIHOOD_WEIGHTS)
        if len(who):  # (from at most 600 of their seconds each: enough for a latent, and quick)
            full = (mask & ~val)[who] & (rng.random((len(who), mask.shape[1])).argsort(1).argsort(1) < 600)
            mu, ls, resp = self.infer(values[who], full, weight=1.0, gidx=self.gidx_[who])
            top = resp.argmax(1)  # the viewer's most likely component
            rows = np.arange(len(who))
            self.params_["mu"][who], self.params_["ls"][who] = mu[rows, top], ls[rows, top]
        return self

    # -- using a fitted model ---------------------------------------------------------------------------
    def _decode_viewers(self, u: np.ndarray, gidx: np.ndarray | None = None) -> np.ndarray:
        """[J, R] latents -> [J, T, M] decoder means (z units), a few viewers at a time; `gidx` [J] each
        viewer's group (-1 or None: the shared time factors)."""
        jax, jnp, _ = require_jax()
        if not hasattr(self, "_decode_jit"):
            self._decode_jit = jax.jit(lambda dec, u, V, style: _decode(dec, u[:, None, :] * V, jnp)
                                       + (u @ style)[:, None, :])
        table = self._time_table()
        gidx = np.full(len(u), -1) if gidx is None else np.asarray(gidx)
        out = [np.asarray(self._decode_jit(self.params_["dec"], u[k:k + 8], table[gidx[k:k + 8]], self.params_["style"]))
               for k in range(0, len(u), 8)]
        return np.concatenate(out) if out else np.zeros((0, *self.params_["V"].shape[:1], len(self.scale_.mean)))

    def _moments(self, mu: np.ndarray, ls: np.ndarray, resp: np.ndarray | None = None,
                 gidx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The forecast's mean and variance: draws of u from each component's posterior q_k (mean, log SD
        [J, K, R] or [J, R]), mixed by the responsibilities [J, K]."""
        if mu.ndim == 2:
            mu, ls, resp = mu[:, None], ls[:, None], np.ones((len(mu), 1))
        rng = np.random.default_rng(self.seed + 1)
        mean = np.zeros((len(mu), len(self.params_["V"]), len(self.scale_.mean)), np.float32)
        second = np.zeros_like(mean)
        for k in range(mu.shape[1]):
            w = resp[:, k, None, None].astype(np.float32)
            for _ in range(max(self.samples, 1)):
                noise = rng.normal(size=mu[:, k].shape).astype(np.float32)
                x = self._decode_viewers(mu[:, k] + np.exp(ls[:, k]) * noise, gidx)
                mean += w * x / max(self.samples, 1)
                second += w * x * x / max(self.samples, 1)
        var = np.maximum(second - mean * mean, 0) + np.exp(2 * self.params_["log_noise"])
        return self.scale_.inverse(mean), self.scale_.inverse_var(var)

    def predict(self) -> np.ndarray:
        return self.scale_.inverse(self._decode_viewers(self.params_["mu"], getattr(self, "gidx_", None)))

    def infer(self, values: np.ndarray, mask: np.ndarray, weight: float | None = None,
              prior: MixturePrior | None = None, groups=None,
              gidx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """q(u) of new viewers from their observed cells, one Gaussian per component of the prior (default:
        the fitted one): means and log SDs [J, K, R], and each component's responsibility [J, K] (its
        weight times the evidence, by the ELBO). With several components a viewer seen for a few seconds
        is not forced into one reaction type: the forecast mixes the types the seconds leave open. The
        likelihood counts `weight` times (default: the weight chosen in `fit`): below 1 a viewer's seconds
        move them less far from the prior. `groups`: the viewers' group (one label or one per viewer)."""
        weight = getattr(self, "likelihood_weight_", 1.0) if weight is None else weight
        jax, jnp, optax = require_jax()
        values, mask = check(values, mask)
        prior = MixturePrior.from_arrays(self.params_) if prior is None else prior
        n_k, j, r = len(prior.weights), len(mask), self.latent
        Z = jnp.asarray(self.scale_.forward(values, mask))
        cells = np.argwhere(mask).astype(np.int32)
        p = self.params_
        fixed = {"dec": p["dec"], "V": self._time_table(), "log_noise": p["log_noise"], "style": p["style"]}
        gidx = group_index(self.groups_, groups, j) if gidx is None else np.asarray(gidx)
        g_of = jnp.asarray(np.repeat(gidx[cells[:, 0]], n_k))  # each cell's row's group (-1: shared)
        # rows: viewer x component; each row's q starts at its component's centre
        q = {"mu": jnp.asarray(np.tile(prior.means, (j, 1)), jnp.float32), "ls": jnp.full((j * n_k, r), -1.0)}
        row_cells = (cells[:, :1] * n_k + np.arange(n_k)[None]).reshape(-1)  # each cell once per component
        i, t = jnp.asarray(np.repeat(cells[:, 0], n_k)), jnp.asarray(np.repeat(cells[:, 1], n_k))
        rows = jnp.asarray(row_cells)
        opt = optax.adam(optax.cosine_decay_schedule(0.1, self.infer_steps, 0.05))
        comp = np.tile(np.arange(n_k), j)
        precisions = np.linalg.inv(prior.covariances)
        centre, precision = jnp.asarray(prior.means[comp]), jnp.asarray(precisions[comp])
        log_norm = jnp.asarray((np.log(prior.weights) + 0.5 * np.linalg.slogdet(precisions)[1])[comp])

        def expected_log_prior(mu, ls):
            # [rows, R] -> [rows]: log pi_k + E_q[log N_k(u)] in closed form, up to a constant
            d = mu - centre
            quad = jnp.einsum("nr,nrs,ns->n", d, precision, d)
            trace = jnp.einsum("nr,nr->n", jnp.exp(2 * ls), jnp.diagonal(precision, axis1=1, axis2=2))
            return log_norm - 0.5 * (quad + trace)

        def data_terms(q, key):
            u = q["mu"][rows] + jnp.exp(q["ls"][rows]) * jax.random.normal(key, (len(row_cells), r))
            out = _decode(fixed["dec"], u * fixed["V"][g_of, t], jnp) + u @ fixed["style"]
            ln = fixed["log_noise"]
            return jnp.sum(0.5 * (Z[i, t] - out) ** 2 * jnp.exp(-2 * ln) + ln, -1)

        def loss(q, key):
            # the likelihood by sampling u per cell; KL(q || prior_k) = E_q[log q] - E_q[log prior_k], with
            # E_q[log q] the Gaussian's negative entropy (-sum of log SDs, up to a constant)
            return (weight * jnp.sum(data_terms(q, key)) - jnp.sum(expected_log_prior(q["mu"], q["ls"]))
                    - jnp.sum(q["ls"]))

        @jax.jit
        def run(q, key):
            def step(carry, _):
                q, state, key = carry
                key, sub = jax.random.split(key)
                grads = jax.grad(loss)(q, sub)
                updates, state = opt.update(grads, state, q)
                return (optax.apply_updates(q, updates), state, key), None

            (q, _, _), _ = jax.lax.scan(step, (q, opt.init(q), key), None, length=self.infer_steps)
            # each row's ELBO (the tempered likelihood, as fitted), its data term averaged over 8 draws
            data = jnp.mean(jnp.stack([jax.ops.segment_sum(data_terms(q, k), rows, j * n_k)
                                       for k in jax.random.split(key, 8)]), 0)
            return q, -weight * data + expected_log_prior(q["mu"], q["ls"]) + jnp.sum(q["ls"], -1)

        if len(cells):
            q, elbo = run(q, jax.random.PRNGKey(self.seed + 2))
            elbo = np.asarray(elbo, np.float64).reshape(j, n_k)
        else:
            elbo = np.tile(np.log(prior.weights), (j, 1))
        resp = np.exp(elbo - elbo.max(1, keepdims=True))
        resp /= resp.sum(1, keepdims=True)
        return (np.asarray(q["mu"]).reshape(j, n_k, r), np.asarray(q["ls"]).reshape(j, n_k, r), resp)

    def forecast(self, values: np.ndarray, mask: np.ndarray, groups=None) -> tuple[np.ndarray, np.ndarray]:
        """`groups`: the new viewers' group (one label or one per viewer); their group's time factors."""
        gidx = group_index(self.groups_, groups, len(mask))
        return self._moments(*self.infer(values, mask, gidx=gidx), gidx=gidx)

    @property
    def viewer_latents(self) -> np.ndarray:
        return self.params_["mu"]

    @property
    def time_factors(self) -> np.ndarray:
        return self.params_["V"]

    # -- the fitted model's shared parts (decoder, time factors, scales; no per-viewer latent) ---------
    def shared_state(self) -> dict[str, np.ndarray]:
        out = {"V": self.params_["V"], "log_noise": self.params_["log_noise"], "style": self.params_["style"],
               "mean": self.scale_.mean,
               **{k: self.params_[k] for k in ("prior_weights", "prior_means", "prior_covariances")},
               "sd": self.scale_.sd, "likelihood_weight": np.float32(self.likelihood_weight_),
               **({"D": self.params_["D"], "groups": np.array([str(g) for g in self.groups_])}
                  if "D" in self.params_ else {}),
               "settings": np.array([self.latent, self.hidden, self.samples, self.infer_steps, self.seed])}
        for k, (w, b) in enumerate(self.params_["dec"]):
            out[f"w{k}"], out[f"b{k}"] = w, b
        return out

    @classmethod
    def from_shared_state(cls, state: dict[str, np.ndarray]) -> "FactorisedVAE":
        latent, hidden, samples, infer_steps, seed = (int(x) for x in state["settings"])
        model = cls(latent=latent, hidden=hidden, samples=samples, infer_steps=infer_steps, seed=seed)
        layers = sorted(int(k[1:]) for k in state if k.startswith("w"))
        model.params_ = {"V": state["V"], "log_noise": state["log_noise"],
                         "style": state.get("style", np.zeros((latent, len(state["mean"])), np.float32)),
                         **{k: state[k] for k in ("prior_weights", "prior_means", "prior_covariances")},
                         "dec": [(state[f"w{k}"], state[f"b{k}"]) for k in layers],
                         **({"D": state["D"]} if "D" in state else {})}
        model.groups_ = [str(g) for g in state["groups"]] if "groups" in state else []
        model.scale_ = Standardiser(state["mean"], state["sd"])
        model.likelihood_weight_ = float(state.get("likelihood_weight", 1.0))  # fits stored before it: 1
        return model
