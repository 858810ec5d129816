"""The input checks every public function shares: each message names the argument, what was
expected and what was given."""

import numpy as np
import pytest
import torch

from companion._validation import (
    as_tensor,
    check_callable,
    check_distribution,
    check_finite,
    check_positive_int,
    check_probability,
    check_samples,
    describe,
)


def test_describe_gives_type_and_shape():
    assert describe(torch.zeros(2, 3)) == "a tensor of shape (2, 3) and dtype torch.float32"
    assert describe(np.zeros(4)) == "an array of shape (4,) and dtype float64"
    assert describe("x" * 100).startswith("str 'xxx") and describe("x" * 100).endswith("...")


def test_as_tensor_converts_and_detaches():
    t = torch.ones(2, requires_grad=True)
    assert not as_tensor("v", t).requires_grad
    assert as_tensor("v", [1, 2]).dtype == torch.get_default_dtype()
    assert as_tensor("v", 3, dtype=torch.float64).dtype == torch.float64
    for bad in ("1.0", None, [1, "a"], 1 + 2j):
        with pytest.raises(TypeError, match="v must be"):
            as_tensor("v", bad)


def test_check_finite_points_at_the_first_bad_entry():
    with pytest.raises(ValueError, match=r"v must be finite, got 2 non-finite value\(s\) \(first at index \(1,\): nan\)"):
        check_finite("v", torch.tensor([0.0, float("nan"), float("inf")]))


def test_check_samples_wants_samples_along_dimension_zero():
    assert check_samples("v", [1.0, 2.0]).shape == (2,)
    with pytest.raises(ValueError, match="got a scalar"):
        check_samples("v", 1.0)
    with pytest.raises(ValueError, match="at least 3 samples along dimension 0, got 2"):
        check_samples("v", [[1.0], [2.0]], min_samples=3)


@pytest.mark.parametrize("value, error", [(0, ValueError), (2.0, TypeError), (True, TypeError),
                                          ("3", TypeError)])
def test_check_positive_int(value, error):
    assert check_positive_int("n", 5) == 5
    with pytest.raises(error, match="n must be an integer >= 1"):
        check_positive_int("n", value)


def test_check_probability():
    assert check_probability("p", 0.5) == 0.5
    assert check_probability("p", 1, open_interval=False) == 1.0
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\), got 1.0"):
        check_probability("p", 1.0)
    with pytest.raises(TypeError, match="p must be a number"):
        check_probability("p", "0.5")


def test_check_distribution_and_callable():
    normal = torch.distributions.Normal(0.0, 1.0)
    assert check_distribution("dist", normal) is normal
    with pytest.raises(TypeError, match="dist must be a torch.distributions.Distribution, got tuple"):
        check_distribution("dist", (0.0, 1.0))
    assert check_callable("f", len) is len
    with pytest.raises(TypeError, match="f must be callable, got float 3.0"):
        check_callable("f", 3.0)
