"""The audience model's math on tiny simulated data: deterministic, masks respected, better than the
content mean where the structure is clear."""
import numpy as np
import pytest

from vision.reaction_model import ContentMean, CPFactorisation, ViewerMeanPlusContent, holdout_cells, rmse
from vision.reaction_model.simulate import bursts, screening_batches, simulate
from vision.reaction_model.tensor import LIKELIHOOD_WEIGHTS, ForecastHoldout, Standardiser, curve, presence
from vision.reaction_model.types import divergence, reaction_types, type_curves

pytest.importorskip("jax")
from vision.reaction_model.vae import FactorisedVAE  # noqa: E402

TINY = {"latent": 4, "hidden": 16, "batch": 128, "max_epochs": 25, "learning_rate": 1e-2, "infer_steps": 60, "samples": 2}


@pytest.fixture(scope="module")
def season():
    return simulate(screenings=2, duration_s=90, viewers=(14, 14), seed=3)


def scrambled(values, mask, seed=9):
    """The same observed cells, garbage everywhere else."""
    noise = np.random.default_rng(seed).normal(50, 20, values.shape).astype(np.float32)
    return np.where(mask[:, :, None], values, noise)


def test_simulator_is_deterministic_and_misses_seconds_in_bursts(season):
    again = simulate(screenings=2, duration_s=90, viewers=(14, 14), seed=3)
    assert np.array_equal(season.values, again.values) and np.array_equal(season.mask, again.mask)
    assert season.values.shape == (28, 90, 12) and season.cuts == ("A", "B")
    big = bursts((200, 2000), 0.13, 8.0, np.random.default_rng(0))
    assert abs((1 - big.mean()) - 0.13) < 0.02
    runs = np.diff(np.flatnonzero(np.diff(np.r_[1, big[0].astype(int), 1]) != 0))[::2]  # lengths of unseen runs
    assert runs.mean() > 4  # bursts, not scattered seconds
    assert np.allclose(season.truth[:, :, :7].sum(-1), 1, atol=1e-5)


def test_screening_batches_hold_every_seen_second_once(season):
    batches = list(screening_batches(season, 0, rows=500))
    assert len(batches) > 1
    total = sum(len(b["n"]) for b in batches)
    assert total == season.mask[season.screening == 0].sum()
    first = batches[0]
    assert first["q_smile"][0] == pytest.approx(first["s_smile"][0] ** 2)
    spans = [(min(b["second"]), max(b["second"])) for b in batches]  # whole seconds, in time order
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
    assert all(len(b["n"]) <= 500 for b in batches)


def test_helpers():
    mask = np.array([[False, True, False, True, False], [False] * 5])
    assert presence(mask).tolist() == [[False, True, True, True, False], [False] * 5]
    values = np.ones((2, 5, 3), np.float32)
    k, mean = curve(values, mask)
    assert k.tolist() == [0, 1, 0, 1, 0] and np.isnan(mean[0]).all() and (mean[1] == 1).all()
    scale = Standardiser.fit(np.arange(30, dtype=np.float32).reshape(2, 5, 3), mask)
    assert scale.sd.shape == (3,)
    with pytest.raises(ValueError):
        Standardiser.fit(values, np.zeros((2, 5), bool))
    with pytest.raises(ValueError):
        ContentMean().fit(values, mask[:, :4])


def test_forecast_holdout_keeps_the_prefix_and_holds_out_the_rest(season):
    split = ForecastHoldout.split(season.mask, 0.25, 0.1, np.random.default_rng(0))
    assert len(split.viewers) == 7 and len(set(split.viewers.tolist())) == 7  # a quarter of 28
    cut = 9  # 10% of 90 s
    others = np.setdiff1d(np.arange(28), split.viewers)
    assert np.array_equal(split.train[others], season.mask[others])
    assert np.array_equal(split.train[split.viewers], split.prefix) and not split.prefix[:, cut:].any()
    assert np.array_equal(split.prefix | split.rest, season.mask[split.viewers])
    assert not (split.prefix & split.rest).any()
    few = ForecastHoldout.split(season.mask[:9], 0.25, 0.1, np.random.default_rng(0))  # under 10 viewers: none
    assert len(few.viewers) == 0 and np.array_equal(few.train, season.mask[:9]) and few.choose(None, (0.5,)) == 1.0
    assert split.choose(lambda w: (w - 0.5) ** 2, LIKELIHOOD_WEIGHTS) == 0.5


def test_linear_forecast_weight_is_chosen_on_validation_and_shrinks_toward_the_prior(season):
    model = CPFactorisation(rank=3, max_iter=10, forecast_viewers=0.25).fit(season.values, season.mask)
    assert model.likelihood_weight_ in LIKELIHOOD_WEIGHTS
    prefix = season.mask.copy()
    prefix[:, 20:] = False
    centre, _ = model.forecast(season.values, np.zeros_like(prefix))  # no second seen: the prior's mean
    moved = [np.abs(model.forecast(season.values, prefix, weight=w)[0] - centre).mean() for w in (0.05, 1.0, 20.0)]
    assert moved[0] < moved[1] < moved[2]


@pytest.mark.parametrize("make", [ContentMean, ViewerMeanPlusContent, lambda: CPFactorisation(rank=3, max_iter=10)])
def test_linear_and_baselines_ignore_unseen_cells(season, make):
    a = make().fit(season.values, season.mask).predict()
    b = make().fit(scrambled(season.values, season.mask), season.mask).predict()
    assert np.allclose(a, b, atol=1e-5)
    prefix = season.mask.copy()
    prefix[:, 30:] = False
    model = make().fit(season.values, season.mask)
    fa, va = model.forecast(season.values, prefix)
    fb, _ = model.forecast(scrambled(season.values, prefix), prefix)
    assert np.allclose(fa, fb, atol=1e-5) and (va > 0).all()


def test_vae_is_deterministic_ignores_unseen_cells_and_beats_the_content_mean(season):
    keep, held = holdout_cells(season.mask, 0.1, np.random.default_rng(1))
    a = FactorisedVAE(seed=5, **TINY).fit(season.values, keep)
    b = FactorisedVAE(seed=5, **TINY).fit(scrambled(season.values, keep), keep)
    assert a.epochs_ == b.epochs_
    assert np.allclose(a.predict(), b.predict(), atol=1e-4)
    base = ContentMean().fit(season.values, keep)
    assert rmse(season.values, a.predict(), held) < 0.9 * rmse(season.values, base.predict(), held)
    # forecasts read only the observed prefix; the shared state round-trips
    prefix = season.mask.copy()
    prefix[:, 20:] = False
    assert a.likelihood_weight_ in LIKELIHOOD_WEIGHTS  # 28 viewers: 3 of them validate the forecasts
    restored = FactorisedVAE.from_shared_state(a.shared_state())
    assert restored.likelihood_weight_ == a.likelihood_weight_
    mean, var = restored.forecast(season.values[:5], prefix[:5])
    again, _ = restored.forecast(scrambled(season.values[:5], prefix[:5]), prefix[:5])
    assert mean.shape == (5, 90, 12) and (var > 0).all() and np.allclose(mean, again, atol=1e-4)
    assert not np.isnan(mean).any()


def test_reaction_types_find_clear_clusters_and_divergence():
    rng = np.random.default_rng(0)
    latents = np.concatenate([rng.normal(0, 0.1, (20, 3)), rng.normal(3, 0.1, (12, 3))])
    labels = reaction_types(latents)
    assert sorted(np.bincount(labels).tolist()) == [12, 20] and labels[0] == 0  # largest type first
    assert (reaction_types(rng.normal(0, 1, (3, 3))) == 0).all()  # too few viewers: one type
    predicted = np.zeros((32, 4, 2), np.float32)
    predicted[20:, 2] = 1.0
    sizes, curves = type_curves(predicted, np.ones((32, 4), bool), labels)
    assert sizes.tolist() == [20, 12] and curves[1, 2, 0] == 1 and curves[0, 2, 0] == 0
    spread = divergence(curves, sizes)
    assert spread.argmax() == 2 and spread[0] == 0
    assert np.isnan(divergence(curves[:1], sizes[:1])).all()


def test_a_long_title_does_not_collapse_the_plot_layout(tmp_path):
    import warnings

    from vision.labels import VALUE_COLUMNS
    from vision.plot import plot_curves, short_title

    curves = {"t": np.array([0.0]), "n_faces": np.array([3])}
    for v in VALUE_COLUMNS:
        curves[v], curves[f"{v}_ci95"] = np.array([0.5]), np.array([np.nan])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "constrained_layout not applied" is a UserWarning
        plot_curves(curves, tmp_path / "c.png", ", ".join(f"image_{i}.jpg" for i in range(60)))
    assert len(short_title("x" * 500)) == 110


def test_prior_candidates_keep_every_component_above_the_minimum_size():
    from vision.reaction_model.prior import MIN_COMPONENT_VIEWERS, MixturePrior

    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(0, 0.1, (30, 2)), rng.normal(3, 0.1, (30, 2))])
    found = MixturePrior.candidates(two, 3)
    assert 1 in found and 2 in found and len(found[2].weights) == 2
    assert sorted(np.round(found[2].means[:, 0]).tolist()) == [0.0, 3.0]
    small = np.concatenate([rng.normal(0, 0.1, (30, 2)), rng.normal(3, 0.1, (MIN_COMPONENT_VIEWERS - 5, 2))])
    for k, prior in MixturePrior.candidates(small, 3).items():  # a component of 5 viewers is never offered
        assert k == 1 or (prior.weights * len(small)).min() >= MIN_COMPONENT_VIEWERS - 1
    assert list(MixturePrior.candidates(two[:15], 3)) == [1]  # too few viewers for two components


def test_prior_and_weight_are_chosen_together_on_held_out_forecasts(season):
    from vision.reaction_model.tensor import choose_prior_and_weight

    split = ForecastHoldout.split(season.mask, 0.25, 0.1, np.random.default_rng(0))
    current = {}
    best = {"one": 0.25, "two": 0.5}  # the error's minimum per prior
    k, w, errors = choose_prior_and_weight(split, {1: "one", 2: "two"}, lambda p: current.update(p=p),
                                           lambda w: (w - best[current["p"]]) ** 2 + (current["p"] == "one"),
                                           LIKELIHOOD_WEIGHTS)
    assert (k, w) == (2, 0.5) and current["p"] == "two"  # the winner is left installed
    assert {w for kk, w in errors if kk == 1} == set(LIKELIHOOD_WEIGHTS)  # one Gaussian: every weight
    assert {w for kk, w in errors if kk == 2} == {0.1, 0.25, 0.5}  # a mixture: the Gaussian's best and its neighbours
    none = ForecastHoldout.split(season.mask[:9], 0.25, 0.1, np.random.default_rng(0))
    assert choose_prior_and_weight(none, {1: "one", 2: "two"}, lambda p: None, None, LIKELIHOOD_WEIGHTS)[:2] == (1, 1.0)


def test_vae_forecasts_mix_the_components_of_a_mixture_prior(season):
    from vision.reaction_model.prior import MixturePrior

    model = FactorisedVAE(seed=2, **TINY).fit(season.values, season.mask)
    assert model.components_ == 1 and all(k == 1 for k, _ in model.forecast_validation_)  # the default
    lat = model.viewer_latents
    side = lat[:, 0] > np.median(lat[:, 0])
    cov = np.stack([np.cov(lat[s], rowvar=False) + 0.01 * np.eye(lat.shape[1]) for s in (side, ~side)])
    prior = MixturePrior(np.array([0.5, 0.5]), np.stack([lat[side].mean(0), lat[~side].mean(0)]), cov)
    prefix = season.mask[:6].copy()
    prefix[:, 15:] = False
    mu, ls, resp = model.infer(season.values[:6], prefix, weight=1.0, prior=prior)
    assert mu.shape == ls.shape == (6, 2, 4) and np.allclose(resp.sum(1), 1)
    mean, var = model._moments(mu, ls, resp)
    assert (var > 0).all() and not np.isnan(mean).any()
    ls = np.full_like(ls, -30.0)  # no spread within a component: the mixture's mean is the mix of its means
    mean, _ = model._moments(mu, ls, resp)
    first, _ = model._moments(mu[:, :1], ls[:, :1], np.ones((6, 1)))
    second, _ = model._moments(mu[:, 1:], ls[:, 1:], np.ones((6, 1)))
    mixed = resp[:, 0, None, None] * first + resp[:, 1, None, None] * second
    assert np.allclose(mean, mixed, atol=1e-4)
    one = MixturePrior.from_arrays(model.params_)  # one component: the same as the default inference
    explicit, default = (model.infer(season.values[:6], prefix, prior=p)[0][:, 0] for p in (one, None))
    assert np.allclose(explicit, default)


def _cut_forecasts(model, season, prefix):
    """The forecasts of the first viewers as cut A, as cut B, as an unknown cut and with no cut."""
    return [model.forecast(season.values[:6], prefix, groups=g)[0] for g in ("A", "B", "C", None)]


@pytest.mark.parametrize("make", [ContentMean, ViewerMeanPlusContent, lambda: CPFactorisation(rank=3, max_iter=10)])
def test_per_cut_time_structure_of_the_baselines_and_linear_model(season, make):
    cuts = np.array(season.cuts)[season.screening]
    model = make().fit(season.values, season.mask, groups=cuts)
    prefix = season.mask[:6].copy()
    prefix[:, 5:] = False
    a, b, unknown, none = _cut_forecasts(model, season, prefix)
    assert np.allclose(unknown, none)  # a cut not fitted: the shared time structure
    middle = np.zeros(90, bool)
    middle[36:54] = True  # where the simulator's cuts differ
    gap = np.abs(a - b).mean((0, 2))
    assert gap[middle].mean() > 1.5 * gap[~middle].mean()  # (14 viewers a cut: noise outside)
    # unseen cells still ignored, and one cut for all is the model without cuts
    again = make().fit(scrambled(season.values, season.mask), season.mask, groups=cuts)
    assert np.allclose(model.predict(), again.predict(), atol=1e-5)
    one = make().fit(season.values, season.mask, groups=np.full(len(cuts), "A"))
    plain = make().fit(season.values, season.mask)
    assert np.allclose(one.predict(), plain.predict(), atol=1e-5)


def test_content_mean_per_cut_is_the_cuts_own_curve(season):
    cuts = np.array(season.cuts)[season.screening]
    model = ContentMean().fit(season.values, season.mask, groups=cuts)
    k, mean = curve(season.values[cuts == "B"], season.mask[cuts == "B"])
    forecast, _ = model.forecast(season.values[:2], season.mask[:2], groups="B")
    assert np.allclose(forecast[0][k > 0], mean[k > 0], atol=1e-5)


def test_linear_group_offsets_are_shrunk_toward_the_shared_time_factors(season):
    cuts = np.array(season.cuts)[season.screening]
    loose = CPFactorisation(rank=3, max_iter=10, group_ridge=0.1).fit(season.values, season.mask, groups=cuts)
    tight = CPFactorisation(rank=3, max_iter=10, group_ridge=1e6).fit(season.values, season.mask, groups=cuts)
    assert loose.D_.shape == (2, 90, 3)
    assert np.abs(tight.D_).max() < 0.01 * np.abs(loose.D_).max()
    off = CPFactorisation(rank=3, max_iter=10, group_ridge=None).fit(season.values, season.mask, groups=cuts)
    assert off.D_ is None and off.groups_ == []


def test_vae_per_cut_time_factors_round_trip_and_fall_back_to_the_shared_ones(season):
    cuts = np.array(season.cuts)[season.screening]
    model = FactorisedVAE(seed=4, **TINY).fit(season.values, season.mask, groups=cuts)
    assert model.groups_ == ["A", "B"] and model.params_["D"].shape == (2, 90, 4)
    restored = FactorisedVAE.from_shared_state(model.shared_state())
    assert restored.groups_ == ["A", "B"]
    prefix = season.mask[:6].copy()
    prefix[:, 15:] = False
    a, b, unknown, none = _cut_forecasts(restored, season, prefix)
    assert np.allclose(unknown, none) and not np.allclose(a, b)
    assert np.allclose(a, model.forecast(season.values[:6], prefix, groups="A")[0], atol=1e-5)
    assert model.predict().shape == (28, 90, 12)
    plain = FactorisedVAE(seed=4, **TINY).fit(season.values, season.mask)
    assert "D" not in plain.params_ and "groups" not in plain.shared_state()


def test_a_cut_of_fewer_viewers_than_the_minimum_gets_no_time_factors_of_its_own(season):
    cuts = np.array(season.cuts)[season.screening].astype(object)
    cuts[:3] = "C"  # 3 viewers: below MIN_COMPONENT_VIEWERS; they use the shared factors
    for model in (CPFactorisation(rank=3, max_iter=10), FactorisedVAE(seed=1, **{**TINY, "max_epochs": 3})):
        model.fit(season.values, season.mask, groups=cuts)
        assert model.groups_ == ["A", "B"] and (model.gidx_[:3] == -1).all()
        assert not np.isnan(model.predict()).any()
