"""Tests of companion.reparam: the VAE helper against Normal.rsample, and the rsample census.

Exact layer: fixed noise (re-seeding) and hand-derived derivatives, float64, tight
tolerances. Statistical layer: companion.checks at a false-alarm rate of 1e-3 per check.
"""

import pytest
import torch
from torch import distributions as D

from companion.checks import check_close
from companion.reparam import (
    KINDS,
    RsampleInfo,
    distribution_classes,
    format_rsample_table,
    reparameterization_kind,
    reparameterize,
    rsample_table,
)
from companion.seeding import seed_everything

DT = torch.float64


def _leaf(*values):
    return torch.tensor(values, dtype=DT, requires_grad=True)


# ---------------------------------------------------------------- reparameterize


def test_reparameterize_equals_rsample_on_the_same_noise():
    """Same samples and the same gradients as Normal(mu, exp(log_var / 2)).rsample()."""
    mu, log_var = _leaf(0.5, -1.0, 2.0), _leaf(0.0, -2.0, 1.5)
    torch.manual_seed(3)
    z_hand = reparameterize(mu, log_var)
    torch.manual_seed(3)
    z_torch = D.Normal(mu, torch.exp(0.5 * log_var)).rsample()
    torch.testing.assert_close(z_hand, z_torch, rtol=1e-14, atol=0)
    weights = torch.tensor([1.0, -2.0, 0.5], dtype=DT)
    grads_hand = torch.autograd.grad((weights * torch.sin(z_hand)).sum(), (mu, log_var))
    grads_torch = torch.autograd.grad((weights * torch.sin(z_torch)).sum(), (mu, log_var))
    for hand, ref in zip(grads_hand, grads_torch):
        torch.testing.assert_close(hand, ref, rtol=1e-14, atol=0)


def test_reparameterize_with_given_noise_has_the_derived_gradients():
    # z = mu + eps exp(log_var / 2): dz/dmu = 1, dz/dlog_var = eps std / 2
    mu, log_var = _leaf(1.0, -3.0), _leaf(0.4, -1.2)
    eps = torch.tensor([0.7, -1.9], dtype=DT)
    z = reparameterize(mu, log_var, eps=eps)
    std = torch.exp(0.5 * log_var.detach())
    torch.testing.assert_close(z, mu.detach() + eps * std, rtol=1e-15, atol=0)
    d_mu, d_log_var = torch.autograd.grad(z.sum(), (mu, log_var))
    torch.testing.assert_close(d_mu, torch.ones(2, dtype=DT))
    torch.testing.assert_close(d_log_var, 0.5 * eps * std, rtol=1e-15, atol=0)


def test_reparameterize_draws_from_the_right_normal():
    """Mean mu and variance exp(log_var), 10^5 draws; detects a bias of 3.5 stderr
    (0.011 in the mean, 0.015 in the variance at variance 1)."""
    seed_everything(0)
    n = 100_000
    mu = torch.full((n,), 0.5, dtype=DT)
    log_var = torch.zeros(n, dtype=DT)
    z = reparameterize(mu, log_var)
    mean, var = z.mean(), z.var()
    check_close("mean of reparameterize", mean, 0.5, stderr=z.std() / n**0.5)
    fourth = ((z - mean) ** 4).mean()
    check_close("variance of reparameterize", var, 1.0, stderr=((fourth - var**2) / n).sqrt())


def test_reparameterize_rejects_bad_input():
    x = torch.zeros(3, dtype=DT)
    with pytest.raises(TypeError, match="mu must be a floating-point tensor"):
        reparameterize([0.0], x)
    with pytest.raises(TypeError, match="log_var must be a floating-point tensor"):
        reparameterize(x, torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="same shape"):
        reparameterize(x, torch.zeros(2, dtype=DT))
    with pytest.raises(ValueError, match="eps must have the shape"):
        reparameterize(x, x, eps=torch.zeros(4, dtype=DT))
    with pytest.raises(ValueError, match="log_var must be finite"):
        reparameterize(x, torch.tensor([0.0, float("nan"), 0.0], dtype=DT))


# ---------------------------------------------------------------- which distributions


@pytest.mark.parametrize(
    "build, kind",
    [
        (lambda: D.Normal(_leaf(0.0), _leaf(1.0)), "location-scale"),
        (lambda: D.Laplace(_leaf(0.0), _leaf(1.0)), "location-scale"),
        (lambda: D.Exponential(_leaf(2.0)), "location-scale"),
        (
            lambda: D.MultivariateNormal(
                _leaf(0.0, 0.0), scale_tril=torch.eye(2, dtype=DT).requires_grad_(True)
            ),
            "location-scale",
        ),
        (
            lambda: D.LowRankMultivariateNormal(
                _leaf(0.0, 0.0), _leaf(1.0, 0.5)[:, None], _leaf(1.0, 1.0)
            ),
            "location-scale",
        ),
        (lambda: D.LogNormal(_leaf(0.0), _leaf(1.0)), "inverse CDF / transform"),
        (lambda: D.Gumbel(_leaf(0.0), _leaf(1.0)), "inverse CDF / transform"),
        (lambda: D.ContinuousBernoulli(probs=_leaf(0.3)), "inverse CDF / transform"),
        (lambda: D.Gamma(_leaf(2.0), _leaf(1.0)), "implicit"),
        (lambda: D.Beta(_leaf(2.0), _leaf(3.0)), "implicit"),
        (lambda: D.Dirichlet(_leaf(1.0, 2.0, 3.0)), "implicit"),
        (lambda: D.StudentT(_leaf(4.0), _leaf(0.0), _leaf(1.0)), "implicit"),
        (lambda: D.Bernoulli(probs=_leaf(0.3)), "none"),
        (lambda: D.VonMises(_leaf(0.0), _leaf(1.0)), "none"),
        (
            lambda: D.OneHotCategoricalStraightThrough(probs=_leaf(0.2, 0.8)),
            "straight-through (biased)",
        ),
    ],
)
def test_reparameterization_kind(build, kind):
    assert reparameterization_kind(build())[0] == kind


@pytest.mark.parametrize(
    "build, affine",
    [
        (lambda: D.Normal(_leaf(0.5), _leaf(1.5)), True),
        (lambda: D.Cauchy(_leaf(0.5), _leaf(1.5)), True),
        (lambda: D.Laplace(_leaf(0.5), _leaf(1.5)), True),
        (lambda: D.Uniform(_leaf(0.5), _leaf(1.5)), True),
        (lambda: D.Exponential(_leaf(2.0)), True),
        # Location-scale (resp. scale) families in the mathematics that torch records as a
        # chain of transforms: the kinds describe how rsample is built, and they overlap.
        (lambda: D.Gumbel(_leaf(0.5), _leaf(1.5)), True),
        (lambda: D.HalfNormal(_leaf(1.5)), True),
        (lambda: D.LogNormal(_leaf(0.5), _leaf(1.5)), False),
        (lambda: D.Gamma(_leaf(2.0), _leaf(1.0)), False),
    ],
)
def test_location_scale_means_derivatives_affine_in_the_draw(build, affine):
    """The heuristic's claim, checked numerically: for x = a(θ) + b(θ) ε every per-sample
    derivative ∂x/∂θ_j = a_j' + b_j' (x - a) / b is an affine function of x, exactly; for the
    non-affine families (LogNormal, Gamma) it is not. The converse of the heuristic does not
    hold: Gumbel and HalfNormal are (location-)scale families that torch builds as transforms.
    """
    dist = build()
    if reparameterization_kind(dist)[0] == "location-scale":
        assert affine
    params = [p for p in (getattr(dist, n) for n in dist.arg_constraints) if p.requires_grad]
    seed_everything(1)
    x = dist.rsample((12,)).reshape(12)  # parameters of shape (1,): one value per draw
    rows = [
        torch.cat([g.reshape(-1) for g in torch.autograd.grad(x[n], params, retain_graph=True)])
        for n in range(12)
    ]
    jac = torch.stack(rows).detach()  # (12, P)
    design = torch.stack([torch.ones_like(x), x.detach()], dim=1)  # (12, 2): [1, x]
    fit = design @ torch.linalg.lstsq(design, jac).solution
    residual = (jac - fit).abs().max() / jac.abs().max()
    assert (residual < 1e-10) == affine, residual


def test_reparameterization_kind_needs_a_graph():
    with pytest.raises(ValueError, match="require grad"):
        reparameterization_kind(D.Normal(torch.tensor(0.0, dtype=DT), torch.tensor(1.0, dtype=DT)))
    with pytest.raises(TypeError, match=r"torch\.distributions\.Distribution"):
        reparameterization_kind("Normal")


def test_rsample_table_covers_every_class_of_the_installed_torch():
    names = distribution_classes()
    assert "Normal" in names and "Distribution" not in names and "ExponentialFamily" not in names
    state = torch.random.get_rng_state()
    rows = rsample_table()
    assert torch.equal(torch.random.get_rng_state(), state), "the global generator moved"
    assert [r.name for r in rows] == names
    assert all(r.kind in KINDS for r in rows)
    missing = [r.name for r in rows if r.kind == "not instantiated"]
    assert missing == [], f"add example parameters for {missing}"
    by_name = {r.name: r for r in rows}
    assert by_name["Normal"].has_rsample and not by_name["Bernoulli"].has_rsample
    assert by_name["Gamma"].kind == "implicit" and by_name["VonMises"].kind == "none"
    assert by_name["LogNormal"].detail == "Normal → Exp"


def test_format_rsample_table():
    rows = [
        RsampleInfo("Normal", True, "location-scale", "affine in the noise"),
        RsampleInfo("Poisson", False, "none", "discrete support"),
    ]
    lines = format_rsample_table(rows).splitlines()
    assert len(lines) == 4 and lines[0].startswith("distribution")
    assert set(lines[1]) == {"-"}
    assert lines[2].split()[:3] == ["Normal", "yes", "location-scale"]
    with pytest.raises(TypeError, match="RsampleInfo"):
        format_rsample_table([("Normal", True)])


# ---------------------------------------------------------------- adversarial input


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("name", ["mu", "log_var", "eps"])
def test_reparameterize_refuses_nan_and_inf_in_every_argument(name, bad):
    args = {
        "mu": _leaf(0.0, 1.0, 2.0),
        "log_var": _leaf(0.0, 0.5, -1.0),
        "eps": torch.tensor([0.3, -0.2, 1.0], dtype=DT),
    }
    args[name] = args[name].detach().clone()
    args[name][1] = bad
    before = {k: v.detach().clone() for k, v in args.items()}
    with pytest.raises(ValueError, match=rf"{name} must be finite, got 1 non-finite value"):
        reparameterize(args["mu"], args["log_var"], eps=args["eps"])
    for key, value in args.items():  # the caller's tensors are as they were
        assert torch.equal(value.detach(), before[key]) or key == name
        assert value.grad is None


def test_reparameterize_refuses_a_log_var_whose_std_overflows():
    with pytest.raises(ValueError, match="log_var must be small enough that exp"):
        reparameterize(torch.zeros(2, dtype=DT), torch.tensor([0.0, 2000.0], dtype=DT))
    with pytest.raises(ValueError, match=r"log_var must be small enough .* torch\.float32"):
        reparameterize(torch.zeros(1), torch.tensor([200.0]))


def test_reparameterize_refuses_other_devices_and_types():
    x = torch.zeros(3, dtype=DT)
    with pytest.raises(ValueError, match="eps must be on the device of mu"):
        reparameterize(x, x, eps=torch.zeros(3, dtype=DT, device="meta"))
    with pytest.raises(ValueError, match="log_var must be on the device of mu"):
        reparameterize(x, torch.zeros(3, dtype=DT, device="meta"))
    with pytest.raises(TypeError, match="eps must be a floating-point tensor, got list"):
        reparameterize(x, x, eps=[0.0, 0.0, 0.0])
    with pytest.raises(TypeError, match="mu must be a floating-point tensor"):
        reparameterize(torch.zeros(3, dtype=torch.complex64), x)


def test_format_rsample_table_reads_any_iterable_once():
    rows = [
        RsampleInfo("Normal", True, "location-scale", "affine in the noise"),
        RsampleInfo("Poisson", False, "none", "discrete support"),
        RsampleInfo("Future", None, "not instantiated", "no example parameters"),
    ]
    text = format_rsample_table(rows)
    assert format_rsample_table(row for row in rows) == text  # a generator: every row
    assert format_rsample_table(tuple(rows)) == text
    assert text.splitlines()[4].split()[:2] == ["Future", "?"]
    empty = format_rsample_table([]).splitlines()  # an empty table: header and rule only
    assert len(empty) == 2 and empty[0].startswith("distribution") and set(empty[1]) == {"-"}


@pytest.mark.parametrize(
    "rows, match",
    [
        ("Normal", "rows must be an iterable of RsampleInfo, .* got str"),
        (RsampleInfo("Normal", True, "location-scale", "affine"), "rows must be an iterable"),
        (3, "rows must be an iterable of RsampleInfo, .* got int"),
        (None, "rows must be an iterable of RsampleInfo, .* got NoneType"),
        (torch.zeros(0), "rows must be an iterable of RsampleInfo, .* got a tensor"),
        (
            [RsampleInfo("Normal", True, "location-scale", "affine"), "Gamma"],
            r"rows\[1\] is str 'Gamma'",
        ),
    ],
)
def test_format_rsample_table_bad_rows(rows, match):
    with pytest.raises(TypeError, match=match):
        format_rsample_table(rows)


@pytest.mark.parametrize(
    "fields, error, match",
    [
        (
            ("Normal", 1, "location-scale", "d"),
            TypeError,
            "has_rsample must be True, False or None",
        ),
        (("Normal", "yes", "location-scale", "d"), TypeError, "has_rsample must be True"),
        ((3, True, "location-scale", "d"), TypeError, "name must be a string, got int"),
        (("Normal", True, "location-scale", None), TypeError, "detail must be a string"),
        (("Normal", True, "affine", "d"), ValueError, "kind must be one of"),
    ],
)
def test_rsample_info_checks_its_fields(fields, error, match):
    with pytest.raises(error, match=match):
        RsampleInfo(*fields)


def test_reparameterization_kind_of_a_distribution_without_a_support():
    class Bare(D.Distribution):  # support is not defined: torch raises NotImplementedError
        pass

    assert reparameterization_kind(Bare(validate_args=False)) == (
        "none",
        "support not defined, no rsample",
    )


# ---------------------------------------------------------------- the chapter's claims

# The kinds Chapter 4 names in its text ("Reading the table by kind"), class by class.
_CHAPTER_KINDS = {
    "location-scale": [
        "Normal",
        "MultivariateNormal",
        "LowRankMultivariateNormal",
        "Laplace",
        "Cauchy",
        "Uniform",
        "Exponential",
        "Independent",
    ],
    "inverse CDF / transform": [
        "LogNormal",
        "Gumbel",
        "Weibull",
        "Pareto",
        "Kumaraswamy",
        "HalfNormal",
        "HalfCauchy",
        "ContinuousBernoulli",
        "GeneralizedPareto",
        "RelaxedBernoulli",
        "RelaxedOneHotCategorical",
    ],
    "implicit": [
        "Gamma",
        "Chi2",
        "StudentT",
        "InverseGamma",
        "FisherSnedecor",
        "Wishart",
        "Beta",
        "Dirichlet",
    ],
    "none": [
        "Bernoulli",
        "Binomial",
        "Categorical",
        "Geometric",
        "Multinomial",
        "NegativeBinomial",
        "OneHotCategorical",
        "Poisson",
        "VonMises",
        "LKJCholesky",
        "MixtureSameFamily",
    ],
    "straight-through (biased)": ["OneHotCategoricalStraightThrough"],
}


def test_the_kinds_named_in_chapter_4_are_those_of_the_installed_torch():
    """Every class the chapter's text names has, in rsample_table(), the kind the text gives."""
    kinds = {row.name: row.kind for row in rsample_table()}
    wrong = [
        (name, kind, kinds.get(name))
        for kind, names in _CHAPTER_KINDS.items()
        for name in names
        if kinds.get(name) != kind
    ]
    assert not wrong, f"Chapter 4's text disagrees with the installed torch: {wrong}"


def test_chapter_4_von_mises_exercise_premise_holds():
    """ex-rp-von-mises rests on VonMises having no rsample, so that pathwise refuses it."""
    from companion.estimators import pathwise

    theta = torch.tensor([0.5, 2.0], dtype=DT)
    assert not D.VonMises(theta[0], theta[1]).has_rsample
    with pytest.raises(ValueError, match="no reparameterized sampler"):
        pathwise(torch.cos, lambda t: D.VonMises(t[..., 0], t[..., 1]), theta, 10)


def test_chapter_4_floor_gives_a_zero_estimate_and_one_warning():
    """The chapter's floor example: every per-sample gradient is 0, and pathwise warns once."""
    import warnings

    from companion.estimators import pathwise
    from companion.problems import normal_dist

    seed_everything(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = pathwise(torch.floor, normal_dist, torch.tensor([1.0, 1.0], dtype=DT), 1000)
    assert (est.samples == 0).all()
    assert len(caught) == 1
