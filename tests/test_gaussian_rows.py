"""The closed-form per-sample gradients of the two Gaussian families with matrix parameters.

For MultivariateNormal and LowRankMultivariateNormal, score_function and pathwise compute the
per-sample gradients in closed form with respect to the distribution's parameters ψ, then
apply ∂ψ/∂θ (companion._gaussian_rows), instead of giving each draw its own copy of θ. Each
test below replays one random stream through both routes in float64 and requires every row
to agree to rounding; the mutation tests show that the comparison catches a wrong term of
each closed form (an error of one term moves the rows by far more than the tolerance).
"""

import pytest
import torch
from torch.distributions import LowRankMultivariateNormal, MultivariateNormal

from companion import _gaussian_rows as gaussian_rows
from companion.estimators import pathwise, score_function
from companion.seeding import seed_everything

DT = torch.float64


def _tril(t, offset):
    """A 2 × 2 Cholesky factor from three entries of θ (positive diagonal by exp)."""
    zero = torch.zeros_like(t[..., offset])
    return torch.stack(
        [
            torch.stack([t[..., offset].exp(), zero], -1),
            torch.stack([t[..., offset + 1], t[..., offset + 2].exp()], -1),
        ],
        -2,
    )


def _tril_n(t, offset, size):
    """A size × size Cholesky factor from size(size + 1)/2 entries of θ, row by row."""
    rows, cols = torch.tril_indices(size, size)
    tril = t.new_zeros(*t.shape[:-1], size, size)
    tril[..., rows, cols] = t[..., offset : offset + rows.numel()]
    diagonal = tril.diagonal(dim1=-2, dim2=-1)
    return tril - torch.diag_embed(diagonal) + torch.diag_embed(diagonal.exp())


def _gram(m):
    return m @ m.mT


CASES = {
    "mvn scale_tril": (
        lambda t: MultivariateNormal(t[..., :2], scale_tril=_tril(t, 2)),
        [0.3, -0.2, 0.1, 0.4, -0.3],
    ),
    "mvn covariance": (
        lambda t: MultivariateNormal(t[..., :2], covariance_matrix=_gram(_tril(t, 2))),
        [0.3, -0.2, 0.1, 0.4, -0.3],
    ),
    "mvn precision": (
        lambda t: MultivariateNormal(t[..., :2], precision_matrix=_gram(_tril(t, 2))),
        [0.3, -0.2, 0.1, 0.4, -0.3],
    ),
    "mvn batch of 2, one factor": (
        lambda t: MultivariateNormal(
            t[..., :4].reshape(*t.shape[:-1], 2, 2),
            scale_tril=_tril(t, 4).unsqueeze(-3)
            * torch.tensor([1.0, 2.0], dtype=DT)[:, None, None],
        ),
        [0.3, -0.2, 0.5, 0.1, 0.1, 0.4, -0.3],
    ),
    "mvn 4-d": (
        lambda t: MultivariateNormal(t[..., :4], scale_tril=_tril_n(t, 4, 4)),
        torch.linspace(-0.4, 0.5, 14).tolist(),
    ),
    "mvn an upper entry at zero": (  # log_prob ignores it, rsample does not
        lambda t: MultivariateNormal(
            t[..., :2],
            scale_tril=torch.stack(
                [
                    torch.stack([t[..., 2].exp(), t[..., 5]], -1),
                    torch.stack([t[..., 3], t[..., 4].exp()], -1),
                ],
                -2,
            ),
        ),
        [0.3, -0.2, 0.1, 0.4, -0.3, 0.0],
    ),
    "mvn loc batched, one shared factor": (
        lambda t: MultivariateNormal(
            t[..., :6].reshape(*t.shape[:-1], 3, 2), scale_tril=_tril(t, 6).unsqueeze(-3)
        ),
        [0.3, -0.2, 0.5, 0.1, -0.4, 0.2, 0.1, 0.4, -0.3],
    ),
    "low rank 3 x 2": (
        lambda t: LowRankMultivariateNormal(
            t[..., :3], t[..., 3:9].reshape(*t.shape[:-1], 3, 2), t[..., 9:].exp()
        ),
        torch.linspace(-0.5, 0.7, 12).tolist(),
    ),
    "low rank batch of 2": (
        lambda t: LowRankMultivariateNormal(
            t[..., :4].reshape(*t.shape[:-1], 2, 2),
            t[..., 4:8].reshape(*t.shape[:-1], 2, 2, 1),
            t[..., 8:].reshape(*t.shape[:-1], 2, 2).exp(),
        ),
        torch.linspace(-0.6, 0.6, 12).tolist(),
    ),
    "low rank batch of 2, one shared diagonal": (
        lambda t: LowRankMultivariateNormal(
            t[..., :4].reshape(*t.shape[:-1], 2, 2),
            t[..., 4:8].reshape(*t.shape[:-1], 2, 2, 1),
            t[..., 8:].exp().unsqueeze(-2),
        ),
        torch.linspace(-0.6, 0.6, 10).tolist(),
    ),
}


def f_smooth(x):
    flat = x.reshape(x.shape[0], -1)
    return torch.sin(flat).sum(1) + (flat**2).sum(1) / 4


ESTIMATORS = {
    "score": lambda dist_fn, theta, n: score_function(f_smooth, dist_fn, theta, n),
    "score loo": lambda dist_fn, theta, n: score_function(
        f_smooth, dist_fn, theta, n, baseline="loo"
    ),
    "score constant": lambda dist_fn, theta, n: score_function(
        f_smooth, dist_fn, theta, n, baseline=0.7
    ),
    "pathwise": lambda dist_fn, theta, n: pathwise(f_smooth, dist_fn, theta, n),
}


def _both_routes(monkeypatch, estimate, dist_fn, theta, n=300, seed=5):
    """The estimate by the closed form, then by the engine's copies, on one random stream."""
    calls = []
    for name in ("score_rows", "path_rows"):
        real = getattr(gaussian_rows, name)

        def spy(*args, _real=real, _name=name):
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(gaussian_rows, name, spy)
    seed_everything(seed)
    closed = estimate(dist_fn, theta, n)
    assert calls, "the closed form was not used"
    monkeypatch.setattr(gaussian_rows, "supports", lambda dist, num_theta: False)
    seed_everything(seed)
    engine = estimate(dist_fn, theta, n)
    monkeypatch.undo()
    return closed, engine


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_closed_form_rows_equal_the_engines_rows(monkeypatch, case, estimator):
    """Row by row, to rounding in float64: the draws are the same and so is every gradient."""
    dist_fn, values = CASES[case]
    theta = torch.tensor(values, dtype=DT)
    closed, engine = _both_routes(monkeypatch, ESTIMATORS[estimator], dist_fn, theta)
    assert closed.samples.shape == engine.samples.shape == (300, theta.numel())
    torch.testing.assert_close(closed.samples, engine.samples, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(closed.mean, engine.mean, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(closed.stderr, engine.stderr, rtol=1e-10, atol=1e-10)


def _drop_inverse_diagonal(loc, tril, residual):
    z = torch.linalg.solve_triangular(tril, residual, upper=False)
    w = torch.linalg.solve_triangular(tril.mT, z, upper=True)
    return [w, w.unsqueeze(-2) * z.unsqueeze(-3)]  # the −diag(1/Lᵢᵢ) of log det left out


def _every_entry_read(loc, tril):
    """The mask of L's entries that log p reads, wrong: the upper triangle too."""
    return torch.ones(loc.numel() + tril.numel(), dtype=torch.bool)


def _lowrank_score_without_half(loc, factor, diag, residual):
    blocks = REAL["_lowrank_score_blocks"](loc, factor, diag, residual)
    return [blocks[0], blocks[1], 2 * blocks[2]]  # ∂/∂d without the ½


def _transposed_outer(loc, tril, grad, noise):
    (eps,) = noise
    return [grad, eps.unsqueeze(-2) * grad.unsqueeze(-3)]  # ε ∇fᵀ for ∇f εᵀ


def _lowrank_path_without_half(loc, factor, diag, grad, noise):
    blocks = REAL["_lowrank_path_blocks"](loc, factor, diag, grad, noise)
    return [blocks[0], blocks[1], 2 * blocks[2]]  # ∇f ⊙ ε_d / √d for / (2√d)


REAL = {
    name: getattr(gaussian_rows, name)
    for name in (
        "_mvn_score_blocks",
        "_lowrank_score_blocks",
        "_mvn_path_blocks",
        "_lowrank_path_blocks",
        "_read_by_log_prob",
    )
}

MUTANTS = [
    ("_mvn_score_blocks", _drop_inverse_diagonal, "mvn scale_tril", "score"),
    ("_lowrank_score_blocks", _lowrank_score_without_half, "low rank 3 x 2", "score"),
    ("_mvn_path_blocks", _transposed_outer, "mvn scale_tril", "pathwise"),
    ("_lowrank_path_blocks", _lowrank_path_without_half, "low rank 3 x 2", "pathwise"),
    ("_read_by_log_prob", _every_entry_read, "mvn an upper entry at zero", "score"),
]


@pytest.mark.parametrize("target, mutant, case, estimator", MUTANTS)
def test_the_comparison_catches_a_wrong_term(monkeypatch, target, mutant, case, estimator):
    """Injected error: one term of a closed form wrong; the rows then differ by far more
    than the comparison's tolerance (1e-10), so the test above would fail."""
    dist_fn, values = CASES[case]
    theta = torch.tensor(values, dtype=DT)
    monkeypatch.setattr(gaussian_rows, target, mutant)
    closed, engine = _both_routes(monkeypatch, ESTIMATORS[estimator], dist_fn, theta)
    assert (closed.samples - engine.samples).abs().max() > 1e-3


@pytest.mark.parametrize("estimator", [pathwise, score_function])
def test_an_unbatched_dist_fn_is_refused_for_these_families_too(estimator):
    """What dist_fn must be does not depend on the family: it is checked on copies of θ."""
    theta = torch.tensor(CASES["mvn scale_tril"][1], dtype=DT)

    def unbatched(t):
        return MultivariateNormal(t[:2], scale_tril=torch.eye(2, dtype=DT))

    with pytest.raises(ValueError, match=r"dist_fn must be batched"):
        estimator(f_smooth, unbatched, theta, 10)


def test_a_dist_fn_that_detaches_theta_is_still_refused():
    """ψ without a graph to θ: the closed form steps aside and the engine names the problem."""
    detached = lambda t: MultivariateNormal(t.detach()[..., :2], scale_tril=_tril(t.detach(), 2))  # noqa: E731
    theta = torch.tensor(CASES["mvn scale_tril"][1], dtype=DT)
    with pytest.raises(ValueError, match="draws without a graph to theta"):
        pathwise(f_smooth, detached, theta, 10)
    with pytest.raises(ValueError, match="do not depend on theta"):
        score_function(f_smooth, detached, theta, 10)


def test_an_f_that_mixes_draws_is_still_refused():
    dist_fn, values = CASES["mvn scale_tril"]
    centred = lambda x: ((x - x.mean(0)) ** 2).sum(1)  # noqa: E731
    with pytest.raises(ValueError, match="must act on each sample separately"):
        pathwise(centred, dist_fn, torch.tensor(values, dtype=DT), 10)


def test_which_distributions_take_the_closed_form():
    theta = torch.tensor(CASES["mvn scale_tril"][1], dtype=DT)
    mvn = CASES["mvn scale_tril"][0](theta)
    assert gaussian_rows.supports(mvn, 5)

    class Tempered(MultivariateNormal):  # a subclass may change log_prob: the engine runs
        pass

    assert not gaussian_rows.supports(Tempered(mvn.loc, scale_tril=mvn.scale_tril), 5)
    full = torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=DT)  # not lower triangular
    assert not gaussian_rows.supports(
        MultivariateNormal(mvn.loc, scale_tril=full, validate_args=False), 5
    )
    # ψ of 20 + 400 entries for θ of 20 (the mean only): the (N, P) rows would not be
    # linear in θ's size, so the engine runs.
    big = MultivariateNormal(torch.zeros(20, dtype=DT), torch.eye(20, dtype=DT))
    assert not gaussian_rows.supports(big, 20)
    assert gaussian_rows.supports(big, 200)


def test_the_jacobian_without_batched_backward_is_the_same(monkeypatch):
    """When one backward cannot be batched, ∂ψ/∂θ is built row by row, with the same result."""
    dist_fn, values = CASES["mvn covariance"]
    leaf = torch.tensor(values, dtype=DT, requires_grad=True)
    params = gaussian_rows.parameters(dist_fn(leaf))
    batched = gaussian_rows.jacobian(params, leaf)
    real_grad = torch.autograd.grad

    def no_batching(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("no batching rule")
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_batching)
    looped = gaussian_rows.jacobian(params, leaf)
    assert batched.shape == (2 + 4, 5)
    torch.testing.assert_close(looped, batched, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("estimator", ["score", "pathwise"])
def test_float32_rows_match_the_engine_to_float32_rounding(monkeypatch, estimator):
    """The closed form in float32 (the chapters' dtype) against the engine, same draws."""
    dist_fn, values = CASES["low rank 3 x 2"]
    theta = torch.tensor(values, dtype=torch.float32)
    closed, engine = _both_routes(monkeypatch, ESTIMATORS[estimator], dist_fn, theta)
    scale = engine.samples.abs().max()
    torch.testing.assert_close(closed.samples, engine.samples, rtol=1e-4, atol=1e-5 * scale)


def test_the_random_stream_moves_as_under_the_engine(monkeypatch):
    """The same draws, and the caller's generator left where the engine leaves it."""
    dist_fn, values = CASES["low rank 3 x 2"]
    theta = torch.tensor(values, dtype=DT)
    after = []
    for closed in (True, False):
        if not closed:
            monkeypatch.setattr(gaussian_rows, "supports", lambda dist, num_theta: False)
        for estimator in (pathwise, score_function):
            seed_everything(4)
            estimator(f_smooth, dist_fn, theta, 50)
            after.append(torch.rand(3))
    torch.testing.assert_close(after[0], after[2], rtol=0, atol=0)
    torch.testing.assert_close(after[1], after[3], rtol=0, atol=0)


@pytest.mark.parametrize("estimator", [pathwise, score_function])
@pytest.mark.parametrize("theta_dtype, dist_dtype", [(torch.float32, DT), (DT, torch.float32)])
def test_a_distribution_in_another_dtype_than_theta(estimator, theta_dtype, dist_dtype):
    """dist_fn may build ψ in its own dtype; the rows come back in θ's, as the engine's do."""

    def dist_fn(t):
        return MultivariateNormal(t[..., :2].to(dist_dtype), scale_tril=_tril(t, 2).to(dist_dtype))

    theta = torch.tensor(CASES["mvn scale_tril"][1], dtype=theta_dtype)
    est = estimator(f_smooth, dist_fn, theta, 20)
    assert est.samples.dtype == theta_dtype and est.samples.shape == (20, 5)
    assert est.samples.is_contiguous()


def test_an_f_with_a_graph_but_no_path_from_x_is_refused():
    """f's values need a gradient (an outside parameter) but do not depend on x: the pathwise
    gradient would be a silent zero, refused as the engine refuses it."""
    dist_fn, values = CASES["mvn scale_tril"]
    weight = torch.tensor(2.0, dtype=DT, requires_grad=True)
    with pytest.raises(ValueError, match="do not depend on theta"):
        pathwise(
            lambda x: weight * torch.ones(x.shape[0], dtype=DT),
            dist_fn,
            torch.tensor(values, dtype=DT),
            10,
        )


def test_impossible_sizes_are_refused_before_allocating():
    dist_fn, values = CASES["low rank 3 x 2"]
    for estimator in (pathwise, score_function):
        with pytest.raises(ValueError, match="num_samples"):
            estimator(f_smooth, dist_fn, torch.tensor(values, dtype=DT), 10**12)


def test_an_invalid_factor_leaves_it_to_the_engine():
    """A negative diagonal (validation off) is not a Cholesky factor: no closed form."""
    loc = torch.zeros(2, dtype=DT)
    tril = torch.tensor([[-1.0, 0.0], [0.3, 1.0]], dtype=DT)
    assert not gaussian_rows.supports(
        MultivariateNormal(loc, scale_tril=tril, validate_args=False), 5
    )
    factor = torch.tensor([[0.1], [1.0]], dtype=DT)  # capacitance 1.48 > 0: torch builds it
    diag = torch.tensor([-0.5, 2.0], dtype=DT)
    assert not gaussian_rows.supports(
        LowRankMultivariateNormal(loc, factor, diag, validate_args=False), 6
    )


def test_the_low_rank_score_keeps_float32_digits_when_the_diagonal_is_small():
    """With d = 1e-4, Wᵀa as a difference of two large terms lost float32's digits (errors up
    to 6e-3 of a W column's largest entry here); as C⁻¹WᵀD⁻¹r the error stays under 1e-3 (the
    test allows 2e-3). The float32 rows are compared, column by column, with the float64 rows
    on the same draws."""

    def dist_fn(t):
        return LowRankMultivariateNormal(
            t[..., :3], t[..., 3:9].reshape(*t.shape[:-1], 3, 2), t[..., 9:]
        )

    values = [0.1, -0.2, 0.3, 1.0, 0.5, -0.7, 0.2, 0.9, 0.4, 1e-4, 1e-4, 1e-4]
    rows = []
    seed_everything(8)
    x = dist_fn(torch.tensor(values, dtype=DT)).sample((400,))
    for dtype in (torch.float32, DT):
        leaf = torch.tensor(values, dtype=dtype, requires_grad=True)
        dist = dist_fn(leaf)
        jac = gaussian_rows.jacobian(gaussian_rows.parameters(dist), leaf)
        rows.append(gaussian_rows.score_rows(dist, x.to(dtype), jac).double())
    scale = rows[1].abs().amax(dim=0)
    assert ((rows[0] - rows[1]).abs().amax(dim=0) / scale).max() < 2e-3
