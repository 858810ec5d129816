"""Tests of the checkers of the chapter on choosing an estimator: references pass, mistakes."""

import contextlib
import io
import json
import math
import sys

import pytest
import torch
from torch.distributions import Weibull

from companion.exercises._core import ExerciseFailure
from companion.exercises.choosing import check_equal_cost_variance, check_measure_valued_mean
from companion.ledger import end_chapter
from hygiene import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from student_edition import stub_source

CHAPTER = ROOT / "book" / "07_choosing.ipynb"
CHECKERS = {"mvd_mean": check_measure_valued_mean, "equal_cost_variance": check_equal_cost_variance}

# -- the measure-valued gradient of a Gaussian mean ---------------------------------------------


def make_mvd(mistake=None):
    def mvd_mean(f, mu, sigma, num_samples):
        if mistake == "seeded":
            torch.manual_seed(0)
        if mistake == "numpy":
            import numpy as np

            u = torch.from_numpy(np.random.default_rng().random(num_samples))
        else:
            u = torch.rand(num_samples, dtype=torch.float64)
        w = torch.sqrt(-2 * torch.log1p(-u))  # Rayleigh(1)
        if mistake == "half_normal":
            w = torch.randn(num_samples, dtype=torch.float64).abs()
        if mistake == "half_scale":  # √(−log u): Rayleigh of scale 1/√2
            w = torch.sqrt(-torch.log1p(-u))
        if mistake == "weibull_scale_1":
            w = Weibull(torch.tensor(1.0), torch.tensor(2.0)).sample((num_samples,))
        w_minus = w
        if mistake == "uncoupled":
            w_minus = torch.sqrt(-2 * torch.log1p(-torch.rand(num_samples, dtype=torch.float64)))
        kappa = {
            "no_constant": 1.0,
            "no_sqrt_2pi": 1 / sigma,
            "no_sigma": 1 / math.sqrt(2 * math.pi),
            "sigma_squared": 1 / (sigma**2 * math.sqrt(2 * math.pi)),
        }.get(mistake, 1 / (sigma * math.sqrt(2 * math.pi)))
        s = 1.0 if mistake == "no_sigma_in_points" else sigma
        g = kappa * (f(mu + s * w) - f(mu - s * w_minus))
        if mistake == "sign":
            g = -g
        if mistake == "score_function":  # unbiased, but another estimator
            x = mu + sigma * torch.randn(num_samples, dtype=torch.float64)
            g = f(x) * (x - mu) / sigma**2
        if mistake == "mean":
            g = g.mean()
        return g

    return mvd_mean


def test_mvd_reference_passes():
    verdict = check_measure_valued_mean(make_mvd())
    assert verdict.passed and verdict.attempted and verdict.resolution <= 0.1


def test_mvd_with_weibull_draws_in_float32_passes():
    rayleigh = Weibull(torch.tensor(math.sqrt(2.0)), torch.tensor(2.0))

    def mvd_mean(f, mu, sigma, num_samples):
        w = rayleigh.sample((num_samples,))
        return (f(mu + sigma * w) - f(mu - sigma * w)) / (sigma * math.sqrt(2 * math.pi))

    assert check_measure_valued_mean(mvd_mean).passed


@pytest.mark.parametrize(
    "mistake, match",
    [
        ("sign", "a sign error between the two parts"),
        ("no_constant", "a missing constant κ"),
        ("no_sqrt_2pi", "a missing 1/√\\(2π\\)"),
        ("no_sigma", "a missing 1/σ"),
        ("sigma_squared", "a wrong power of σ"),
        ("no_sigma_in_points", "a wrong power of σ"),
        ("half_normal", "half-normal draws"),
        ("uncoupled", "share one Rayleigh draw"),
        ("half_scale", "Rayleigh draws of scale 1/√2"),
        ("weibull_scale_1", r"Weibull\(scale=1, concentration=2\)"),
        ("score_function", "is it another estimator of the same gradient"),
        ("seeded", "the same on every call"),
        ("numpy", "not reproducible under torch.manual_seed"),
        ("mean", "wrong shape"),
    ],
)
def test_mvd_mistakes_are_named(mistake, match):
    with pytest.raises(ExerciseFailure, match=match):
        check_measure_valued_mean(make_mvd(mistake))


def test_mvd_variance_hint_speaks_of_coupling_only_for_two_sides():
    """Another estimator (f at N points) is not told about coupling."""
    with pytest.raises(ExerciseFailure) as err:
        check_measure_valued_mean(make_mvd("score_function"))
    assert "share one Rayleigh draw" not in str(err.value)


def test_the_half_scale_means_are_the_closed_forms():
    """√2 μ on x² and κ e^{−z²} on the step, against 10⁶ draws of w = √(−log u)."""
    from companion.exercises.choosing import _HALF_SCALE, _square_means, _step_means

    torch.manual_seed(0)
    w = torch.sqrt(-torch.log(torch.rand(1_000_000, dtype=torch.float64)))
    for mu, sigma, f, means in (
        (1.0, 0.5, lambda x: x**2, _square_means(1.0, 0.5)),
        (0.5, 1.5, lambda x: (x > 1.0).double(), _step_means(0.5, 1.5, 1.0)),
    ):
        g = (f(mu + sigma * w) - f(mu - sigma * w)) / (sigma * math.sqrt(2 * math.pi))
        assert abs(g.mean().item() - means[_HALF_SCALE]) < 5 * g.std().item() / 1000


# -- the variance per evaluation --------------------------------------------------------------


def make_cost(mistake=None):
    def equal_cost_variance(estimator, f, num_samples):
        counts = {"points": 0, "calls": 0}

        def counted(x):
            counts["points"] += x.shape[0]
            counts["calls"] += 1
            return f(x)

        samples = estimator(counted, num_samples)
        if mistake == "twice":
            samples = estimator(counted, num_samples)
        var = samples.var(dim=0)
        per_sample = counts["points"] / num_samples
        return {
            "samples": var,
            "std": samples.std(dim=0) * per_sample,
            "calls": var * counts["calls"] / num_samples,
            "total": var * counts["points"],
            "divide": var / per_sample,
            "of_mean": var * per_sample / num_samples,
            "axis": samples.var(dim=-1, correction=0) * per_sample,
            "population": samples.var(dim=0, correction=0) * per_sample,
        }.get(mistake, var * per_sample)

    return equal_cost_variance


@pytest.mark.parametrize("mistake", [None, "population"])
def test_cost_reference_passes(mistake):
    verdict = check_equal_cost_variance(make_cost(mistake))
    assert verdict.passed and verdict.attempted
    assert any("on x² at μ = σ = 1" in line for line in verdict.lines)


@pytest.mark.parametrize(
    "mistake, match",
    [
        ("samples", "counting samples, not evaluations"),
        ("std", "the standard deviation in place of the variance"),
        ("calls", "counting the calls of f instead of the points"),
        ("total", "the total number of evaluations"),
        ("divide", "dividing by the evaluations per sample"),
        ("of_mean", "the variance of the mean estimate"),
        ("twice", "ran the estimator 2 times"),
        ("axis", "wrong shape"),
    ],
)
def test_cost_mistakes_are_named(mistake, match):
    with pytest.raises(ExerciseFailure, match=match):
        check_equal_cost_variance(make_cost(mistake))


# -- every checker: stubs, bad arguments, messages -----------------------------------------------


@pytest.mark.parametrize("checker", list(CHECKERS.values()), ids=list(CHECKERS))
def test_a_stub_is_not_attempted(checker):
    def stub(*args):
        raise NotImplementedError("write this function")

    verdict = checker(stub)
    assert not verdict.attempted and not verdict.passed


@pytest.mark.parametrize("checker", list(CHECKERS.values()), ids=list(CHECKERS))
@pytest.mark.parametrize("bad", [None, 3, "f"])
def test_a_non_callable_is_refused_by_name(checker, bad):
    name = checker.__code__.co_varnames[0]
    with pytest.raises(TypeError, match=name):
        checker(bad)


def test_messages_do_not_show_the_reference():
    for checker, fn in (
        (check_measure_valued_mean, make_mvd("no_sigma")),
        (check_equal_cost_variance, make_cost("calls")),
    ):
        with pytest.raises(ExerciseFailure) as info:
            checker(fn)
        for code in ("torch.log1p", "math.sqrt", "nonlocal", "x.shape[0]", ".var(dim"):
            assert code not in str(info.value)


# -- the notebook's reference cells and its student stubs ---------------------------------------


@pytest.fixture(scope="module")
def chapter():
    """The chapter's import cell executed, and its reference-solution cells' sources."""
    nb = json.loads(CHAPTER.read_text())
    source = lambda cell: "".join(cell["source"])  # noqa: E731
    codes = [c for c in nb["cells"] if c["cell_type"] == "code"]
    references = [source(c) for c in codes if "reference-solution" in c["metadata"].get("tags", [])]
    dtype = torch.get_default_dtype()
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(source(codes[1]), namespace)
    end_chapter()
    yield namespace, references
    torch.set_default_dtype(dtype)


def _name(reference):
    return reference.split("def ", 1)[1].split("(", 1)[0]


def test_the_notebook_has_the_two_reference_cells(chapter):
    _, references = chapter
    assert set(CHECKERS) <= {_name(ref) for ref in references}


def test_the_notebooks_reference_solutions_pass_their_checkers(chapter):
    base, references = chapter
    for ref in references:
        if _name(ref) in CHECKERS:
            namespace = dict(base)
            exec(ref, namespace)
            verdict = CHECKERS[_name(ref)](namespace[_name(ref)])
            assert verdict.passed, _name(ref)
            assert verdict.resolution is None or verdict.resolution <= 0.1


def test_the_student_stubs_are_not_attempted(chapter):
    base, references = chapter
    for ref in references:
        if _name(ref) in CHECKERS:
            namespace = dict(base)
            exec(stub_source(ref), namespace)
            verdict = CHECKERS[_name(ref)](namespace[_name(ref)])
            assert not verdict.attempted and not verdict.passed, _name(ref)
