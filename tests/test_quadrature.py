"""Tests of companion.quadrature against closed forms (deterministic, float64).

Each comparison's tolerance (1e-12 relative) is far below any error a wrong rule would make:
dropping the 1/√(2π) normalization, a node count off by one in the exactness degree, or a
wrong Rayleigh density each change the results by more than 1e-3 (checked below).
"""

import math

import pytest
import torch

from companion.quadrature import (
    MAX_NODES,
    gauss_hermite,
    gaussian_expectation,
    rayleigh_expectation,
)


def test_gauss_hermite_is_exact_for_polynomials_below_degree_2k():
    nodes, weights = gauss_hermite(5)
    moments = [float((weights * nodes**j).sum()) for j in range(10)]
    exact = [1, 0, 1, 0, 3, 0, 15, 0, 105, 0]  # E ε^j = (j - 1)!! for even j
    assert moments == pytest.approx(exact, rel=1e-12, abs=1e-12)
    # Degree 10 = 2K is beyond the rule: E ε^10 = 945 is missed, so the test can fail.
    assert abs(float((weights * nodes**10).sum()) - 945) > 1.0


def test_gaussian_expectation_matches_closed_forms_on_a_grid():
    loc, scale = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 0.5, 2.0])
    got = gaussian_expectation(lambda x: torch.cos(3 * x), loc, scale)  # (3,)
    exact = torch.cos(3 * loc.double()) * torch.exp(-9 * scale.double() ** 2 / 2)
    torch.testing.assert_close(got, exact, rtol=1e-12, atol=1e-14)
    mgf = gaussian_expectation(lambda x: torch.exp(0.7 * x), 0.3, 1.2)
    assert float(mgf) == pytest.approx(math.exp(0.7 * 0.3 + 0.49 * 1.44 / 2), rel=1e-12)


def test_rayleigh_expectation_matches_its_moments():
    # E w^j = 2^{j/2} Γ(1 + j/2) for w ~ Rayleigh(1)
    for j in range(1, 6):
        exact = 2 ** (j / 2) * math.gamma(1 + j / 2)
        assert float(rayleigh_expectation(lambda w, j=j: w**j)) == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: gauss_hermite(1), ValueError, "num_nodes must be an integer >= 2"),
        (lambda: gauss_hermite(MAX_NODES + 1), ValueError, "num_nodes must be at most"),
        (lambda: gauss_hermite(3.0), TypeError, "num_nodes must be an integer"),
        (lambda: gaussian_expectation("cos"), TypeError, "g must be callable"),
        (lambda: gaussian_expectation(lambda x: x, scale=-1.0), ValueError, "scale must be > 0"),
        (
            lambda: gaussian_expectation(lambda x: x, loc=float("nan")),
            ValueError,
            "loc must be finite",
        ),
        (
            lambda: gaussian_expectation(lambda x: x.sum()),
            ValueError,
            "g must return one row per node",
        ),
        (lambda: gaussian_expectation(lambda x: 1 / (x - x)), ValueError, r"g\(x\) must be finite"),
        (
            lambda: gaussian_expectation(lambda x: x.to(torch.complex128)),
            TypeError,
            "g must return real values",
        ),
        (
            lambda: rayleigh_expectation(lambda w: w, upper=True),
            ValueError,
            "upper must be a number",
        ),
        (
            lambda: rayleigh_expectation(lambda w: w, upper=-1.0),
            ValueError,
            "upper must be a number",
        ),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_largest_rule_allowed_is_accurate():
    """MAX_NODES is below the size where NumPy's weights underflow (about 370 nodes)."""
    nodes, weights = gauss_hermite(MAX_NODES)
    assert torch.isfinite(nodes).all() and torch.isfinite(weights).all()
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float((weights * nodes**2).sum()) == pytest.approx(1.0, abs=1e-10)


def test_gauss_hermite_returns_fresh_tensors_from_its_cache():
    """The rule is cached; modifying the returned tensors must not change the next call's."""
    nodes, weights = gauss_hermite(7)
    nodes.zero_()
    weights.mul_(2.0)
    again_nodes, again_weights = gauss_hermite(7)
    assert again_nodes.abs().sum() > 0
    assert abs(float(again_weights.sum()) - 1.0) < 1e-12
