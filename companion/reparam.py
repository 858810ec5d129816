"""The reparameterization trick: the VAE helper, and which distributions support it.

Writing a draw as x = x(θ, ε), with noise ε ~ p(ε) that does not depend on θ, turns the
gradient of an expectation into the expectation of a gradient (Kingma & Welling 2014;
Rezende et al. 2014; Mohamed et al. 2020, "Monte Carlo Gradient Estimation in Machine
Learning", JMLR, §5):

    ∇θ E_{x~p(x;θ)}[f(x)] = E_{ε~p(ε)}[∇θ f(x(θ, ε))].

- :func:`reparameterize`: z = μ + exp(½ log σ²) ε, the helper found in most VAE code
  (Chapters 4 and 5); it equals ``Normal(mu, exp(log_var / 2)).rsample()`` on the same noise.
- :func:`reparameterization_kind` and :func:`rsample_table`: which ``torch.distributions``
  have ``rsample`` in the installed torch, and what kind of path it is: location-scale,
  inverse CDF / transform, implicit (Figurnov et al. 2018), or none. Chapter 4.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import distributions as D

from ._validation import check_finite, describe

__all__ = [
    "KINDS",
    "RsampleInfo",
    "reparameterize",
    "reparameterization_kind",
    "distribution_classes",
    "rsample_table",
    "format_rsample_table",
]

# ---------------------------------------------------------------- the VAE helper


def _check_tensor(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {describe(value)}")
    return value


def reparameterize(mu, log_var, eps=None) -> torch.Tensor:
    """A reparameterized draw z ~ N(mu, exp(log_var)), as written in most VAE code.

    Implements std = exp(½ log_var) and z = mu + eps * std with eps ~ N(0, I) (Kingma &
    Welling 2014, §2.4), so that z is a differentiable function of (mu, log_var):
    ∂z/∂mu = 1 and ∂z/∂log_var = ½ eps std. With the same noise it is the same number as
    ``torch.distributions.Normal(mu, std).rsample()``, with the same gradients.

    Args:
        mu: the mean, a floating tensor of any shape ``(*shape)``, finite.
        log_var: the log-variance log σ², same shape and device as ``mu``, finite, with
            exp(½ log_var) finite (a log-variance, not a standard deviation: the network
            output of a VAE encoder is unconstrained).
        eps: optional standard-normal noise of shape ``(*shape)`` on the device of ``mu``,
            finite, to fix the noise; when None it is drawn with ``torch.randn_like`` from
            the global generator.

    Returns:
        z, shape ``(*shape)``, carrying the graph to ``mu`` and ``log_var``.

    Raises:
        TypeError: an argument is not a floating-point tensor.
        ValueError: NaN or inf in an argument, shapes or devices that differ, or a log_var
            so large that σ overflows.

    Example:
        >>> mu = torch.tensor([0.0, 1.0])
        >>> log_var = torch.tensor([0.0, 2.0 * torch.log(torch.tensor(3.0))])  # σ = (1, 3)
        >>> reparameterize(mu, log_var, eps=torch.tensor([1.0, -1.0]))  # (0 + 1, 1 - 3)
        tensor([ 1., -2.])
    """
    mu = _check_tensor("mu", mu)
    log_var = _check_tensor("log_var", log_var)
    if mu.shape != log_var.shape:
        raise ValueError(
            f"mu and log_var must have the same shape, got {tuple(mu.shape)} "
            f"and {tuple(log_var.shape)}"
        )
    if log_var.device != mu.device:
        raise ValueError(f"log_var must be on the device of mu ({mu.device}), got {log_var.device}")
    if eps is not None:
        eps = _check_tensor("eps", eps)
        if eps.shape != mu.shape:
            raise ValueError(
                f"eps must have the shape of mu {tuple(mu.shape)}, got {tuple(eps.shape)}"
            )
        if eps.device != mu.device:
            raise ValueError(f"eps must be on the device of mu ({mu.device}), got {eps.device}")
    for name, tensor in (("mu", mu), ("log_var", log_var), ("eps", eps)):
        if tensor is not None:
            check_finite(name, tensor.detach())
    std = torch.exp(0.5 * log_var)  # σ = exp(½ log σ²)
    if not torch.isfinite(std.detach()).all():
        largest = log_var.detach().max().item()
        raise ValueError(
            f"log_var must be small enough that exp(log_var / 2) is finite in "
            f"{log_var.dtype}, got a maximum of {largest}"
        )
    if eps is None:
        eps = torch.randn_like(std)  # the noise: independent of mu and log_var
    return mu + eps * std  # the same operations, in the same order, as Normal.rsample


# ---------------------------------------------------------------- which distributions


KINDS = (
    "location-scale",
    "inverse CDF / transform",
    "implicit",
    "straight-through (biased)",
    "none",
    "not instantiated",
)
"""The kinds of reparameterization :func:`reparameterization_kind` reports."""

# Backward nodes of torch's implicit-gradient kernels: ∂x/∂α = -(∂F/∂α) / p(x; α).
_IMPLICIT_NODES = {"StandardGammaBackward0", "_DirichletBackward"}
# Arithmetic, shape and matrix-product nodes: a graph made of these (and of functions of
# the parameters alone, such as a square root of a variance) is affine in the noise.
_AFFINE_NODES = {
    "AccumulateGrad",
    "AddBackward0",
    "SubBackward0",
    "MulBackward0",
    "DivBackward0",
    "NegBackward0",
    "ExpandBackward0",
    "MmBackward0",
    "BmmBackward0",
    "MvBackward0",
    "TBackward0",
    "TransposeBackward0",
    "SqueezeBackward0",
    "SqueezeBackward1",
    "UnsqueezeBackward0",
    "ViewBackward0",
    "UnsafeViewBackward0",
    "SelectBackward0",
    "SqrtBackward0",
}


def _graph_nodes(tensor: torch.Tensor) -> set[str]:
    """Names of every backward node reachable from ``tensor.grad_fn``."""
    names, seen, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(child for child, _ in node.next_functions)
    return names


def _transform_name(transform) -> str:
    """``ExpTransform`` → "Exp", its inverse → "Exp⁻¹"."""
    if isinstance(transform, D.transforms._InverseTransform):
        return _transform_name(transform.inv) + "⁻¹"
    return type(transform).__name__.removesuffix("Transform")


def reparameterization_kind(dist) -> tuple[str, str]:
    """How ``dist.rsample()`` makes a draw differentiable, read from the installed torch.

    The rules, in order:

    1. ``has_rsample`` is False: ``"none"``; the detail says whether the support is discrete.
    2. the support is discrete but there is an ``rsample``: its gradient is a surrogate,
       ``"straight-through (biased)"`` (OneHotCategoricalStraightThrough).
    3. the graph of one draw contains an implicit-gradient kernel (Gamma's
       ``StandardGammaBackward0`` or ``_DirichletBackward``): ``"implicit"``,
       ∂x/∂θ = -(∂F(x;θ)/∂θ) / p(x;θ) (Figurnov et al. 2018).
    4. a ``TransformedDistribution``: ``"inverse CDF / transform"``; the detail lists the
       base distribution and the transforms applied to it, e.g. "Normal → Exp".
    5. a graph made only of arithmetic, shape and matrix-product nodes: ``"location-scale"``,
       x = a(θ) + B(θ) ε; anything else: ``"inverse CDF / transform"``.

    Rule 5 reads the operations that ``rsample`` records, a heuristic that tests check for
    every distribution of the installed torch.

    Args:
        dist: a ``torch.distributions.Distribution`` built from parameters that require
            grad (otherwise ``rsample`` records no graph to read).

    Returns:
        ``(kind, detail)``: ``kind`` one of :data:`KINDS`, ``detail`` a short explanation.

    Raises:
        ValueError: ``dist`` has an ``rsample`` but its draw carries no graph.
    """
    if not isinstance(dist, D.Distribution):
        raise TypeError(f"dist must be a torch.distributions.Distribution, got {describe(dist)}")
    try:
        discrete = bool(getattr(dist.support, "is_discrete", False))
        support = "discrete support" if discrete else "continuous support, no rsample"
    except NotImplementedError:  # a Distribution subclass that does not define its support
        discrete, support = False, "support not defined, no rsample"
    if not dist.has_rsample:
        return "none", support
    if discrete:
        return "straight-through (biased)", "discrete draw, surrogate gradient"
    with torch.enable_grad(), torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. Wishart's note on singular draws
        x = dist.rsample()
    if x.grad_fn is None:
        raise ValueError(
            f"dist.rsample() returned a tensor without a graph: build the "
            f"{type(dist).__name__} from parameters that require grad"
        )
    nodes = _graph_nodes(x)
    if nodes & _IMPLICIT_NODES:
        return "implicit", ", ".join(sorted(nodes & _IMPLICIT_NODES))
    if isinstance(dist, D.TransformedDistribution):
        steps = [type(dist.base_dist).__name__] + [_transform_name(t) for t in dist.transforms]
        return "inverse CDF / transform", " → ".join(steps)
    if nodes <= _AFFINE_NODES:
        return "location-scale", "affine in the noise"
    return "inverse CDF / transform", "nonlinear in the noise"


def _p(value) -> torch.Tensor:
    """A float64 leaf parameter that requires grad."""
    return torch.tensor(value, dtype=torch.float64, requires_grad=True)


def _eye(n: int = 2) -> torch.Tensor:
    return torch.eye(n, dtype=torch.float64).requires_grad_(True)


# One instance with simple valid parameters per class exported by torch.distributions.
_EXAMPLES = {
    "Bernoulli": lambda: D.Bernoulli(probs=_p(0.3)),
    "Beta": lambda: D.Beta(_p(2.0), _p(3.0)),
    "Binomial": lambda: D.Binomial(5, probs=_p(0.3)),
    "Categorical": lambda: D.Categorical(probs=_p([0.2, 0.3, 0.5])),
    "Cauchy": lambda: D.Cauchy(_p(0.0), _p(1.0)),
    "Chi2": lambda: D.Chi2(_p(3.0)),
    "ContinuousBernoulli": lambda: D.ContinuousBernoulli(probs=_p(0.3)),
    "Dirichlet": lambda: D.Dirichlet(_p([1.0, 2.0, 3.0])),
    "Exponential": lambda: D.Exponential(_p(2.0)),
    "FisherSnedecor": lambda: D.FisherSnedecor(_p(3.0), _p(5.0)),
    "Gamma": lambda: D.Gamma(_p(2.0), _p(1.0)),
    "GeneralizedPareto": lambda: D.GeneralizedPareto(_p(0.0), _p(1.0), _p(0.1)),
    "Geometric": lambda: D.Geometric(probs=_p(0.3)),
    "Gumbel": lambda: D.Gumbel(_p(0.0), _p(1.0)),
    "HalfCauchy": lambda: D.HalfCauchy(_p(1.0)),
    "HalfNormal": lambda: D.HalfNormal(_p(1.0)),
    "Independent": lambda: D.Independent(D.Normal(_p([0.0, 1.0]), _p([1.0, 2.0])), 1),
    "InverseGamma": lambda: D.InverseGamma(_p(3.0), _p(1.0)),
    "Kumaraswamy": lambda: D.Kumaraswamy(_p(2.0), _p(3.0)),
    "LKJCholesky": lambda: D.LKJCholesky(3, _p(1.0)),
    "Laplace": lambda: D.Laplace(_p(0.0), _p(1.0)),
    "LogNormal": lambda: D.LogNormal(_p(0.0), _p(1.0)),
    "LogisticNormal": lambda: D.LogisticNormal(_p([0.0, 0.5]), _p([1.0, 1.0])),
    "LowRankMultivariateNormal": lambda: D.LowRankMultivariateNormal(
        _p([0.0, 0.0]), _p([[1.0], [0.5]]), _p([1.0, 1.0])
    ),
    "MixtureSameFamily": lambda: D.MixtureSameFamily(
        D.Categorical(probs=_p([0.4, 0.6])), D.Normal(_p([-1.0, 1.0]), _p([1.0, 0.5]))
    ),
    "Multinomial": lambda: D.Multinomial(5, probs=_p([0.2, 0.3, 0.5])),
    "MultivariateNormal": lambda: D.MultivariateNormal(_p([0.0, 0.0]), scale_tril=_eye()),
    "NegativeBinomial": lambda: D.NegativeBinomial(5, probs=_p(0.3)),
    "Normal": lambda: D.Normal(_p(0.0), _p(1.0)),
    "OneHotCategorical": lambda: D.OneHotCategorical(probs=_p([0.2, 0.3, 0.5])),
    "OneHotCategoricalStraightThrough": lambda: D.OneHotCategoricalStraightThrough(
        probs=_p([0.2, 0.3, 0.5])
    ),
    "Pareto": lambda: D.Pareto(_p(1.0), _p(3.0)),
    "Poisson": lambda: D.Poisson(_p(2.0)),
    "RelaxedBernoulli": lambda: D.RelaxedBernoulli(_p(0.5), probs=_p(0.3)),
    "RelaxedOneHotCategorical": lambda: D.RelaxedOneHotCategorical(
        _p(0.5), probs=_p([0.2, 0.3, 0.5])
    ),
    "StudentT": lambda: D.StudentT(_p(4.0), _p(0.0), _p(1.0)),
    "TransformedDistribution": lambda: D.TransformedDistribution(
        D.Normal(_p(0.0), _p(1.0)), [D.ExpTransform()]
    ),
    "Uniform": lambda: D.Uniform(_p(0.0), _p(1.0)),
    "VonMises": lambda: D.VonMises(_p(0.0), _p(1.0)),
    "Weibull": lambda: D.Weibull(_p(1.0), _p(2.0)),
    "Wishart": lambda: D.Wishart(_p(4.0), covariance_matrix=_eye()),
}
_ABSTRACT = {"Distribution", "ExponentialFamily"}


@dataclass(frozen=True)
class RsampleInfo:
    """One row of :func:`rsample_table`; the fields are checked when a row is built.

    Attributes:
        name: the class name in ``torch.distributions``, a string.
        has_rsample: ``has_rsample`` of an instance (True or False), or None when none was
            built.
        kind: one of :data:`KINDS`.
        detail: why (see :func:`reparameterization_kind`), a string.
    """

    name: str
    has_rsample: bool | None
    kind: str
    detail: str

    def __post_init__(self):
        for field in ("name", "kind", "detail"):
            if not isinstance(getattr(self, field), str):
                raise TypeError(f"{field} must be a string, got {describe(getattr(self, field))}")
        if self.has_rsample is not None and not isinstance(self.has_rsample, bool):
            raise TypeError(
                f"has_rsample must be True, False or None, got {describe(self.has_rsample)}"
            )
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


def distribution_classes() -> list[str]:
    """Names of the concrete distribution classes exported by the installed torch.distributions."""
    return sorted(
        name
        for name in D.__all__
        if isinstance(getattr(D, name), type)
        and issubclass(getattr(D, name), D.Distribution)
        and name not in _ABSTRACT
    )


def rsample_table() -> list[RsampleInfo]:
    """``has_rsample`` and the kind of reparameterization of every distribution in torch.

    Iterates over :func:`distribution_classes`, builds each one with simple valid float64
    parameters that require grad, and classifies it with :func:`reparameterization_kind`.
    A class this module has no example for (one added by a newer torch) is listed with
    ``has_rsample=None`` and kind ``"not instantiated"``, rather than guessed. The global
    random generator is left where it was.

    Returns:
        One :class:`RsampleInfo` per class, sorted by name.
    """
    rows = []
    for name in distribution_classes():
        if name not in _EXAMPLES:
            rows.append(RsampleInfo(name, None, "not instantiated", "no example parameters"))
            continue
        dist = _EXAMPLES[name]()
        kind, detail = reparameterization_kind(dist)
        rows.append(RsampleInfo(name, bool(dist.has_rsample), kind, detail))
    return rows


def format_rsample_table(rows) -> str:
    """A plain-text table of :class:`RsampleInfo` rows, one line per distribution.

    Args:
        rows: an iterable of :class:`RsampleInfo` (a list, a tuple, a generator: it is read
            once, into a list), as returned by :func:`rsample_table`. An empty iterable
            gives the header and its rule alone.

    Returns:
        The table: a header line, a rule of dashes, then one line per row with the columns
        distribution, rsample (yes / no / ?), kind and detail.
    """
    if isinstance(rows, (str, bytes, RsampleInfo, torch.Tensor, np.ndarray)) or not isinstance(
        rows, Iterable
    ):
        raise TypeError(
            f"rows must be an iterable of RsampleInfo, as returned by "
            f"rsample_table(), got {describe(rows)}"
        )
    rows = list(rows)  # a generator is consumed once, here, and every row is printed
    for i, row in enumerate(rows):
        if not isinstance(row, RsampleInfo):
            raise TypeError(
                f"rows must be RsampleInfo objects, as returned by rsample_table(); "
                f"rows[{i}] is {describe(row)}"
            )
    header = ("distribution", "rsample", "kind", "detail")
    cells = [header] + [
        (r.name, {True: "yes", False: "no", None: "?"}[r.has_rsample], r.kind, r.detail)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(3)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3] for row in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
