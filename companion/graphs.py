"""Stochastic computation graphs: one surrogate loss for models with several random nodes.

A model is declared as a list of :class:`Node` (random variables, each with a function that
builds its distribution from the parameters and the values of its parents, and a flag saying
whether it is sampled by a path x(θ, ε), ``rsample()``, or by ``sample()``) and a list of
:class:`Cost` (deterministic functions of the parameters and of some nodes). The objective
is E[Σ_c c]. Schulman, Heess, Weber & Abbeel (2015, "Gradient estimation using stochastic
computation graphs", NeurIPS, Theorem 1 and eq. 4) give the surrogate whose autograd gradient
is an unbiased estimate of ∇θ of that objective:

    S = Σ_c c + Σ_{v not reparameterized} log p(v | parents(v)) · stop(Q̂_v - b_v),

with Q̂_v the sum of the costs downstream of v (``estimator="causal"``) or of all costs
(``estimator="naive"``, also unbiased but noisier), and b_v an optional baseline that may
depend only on what is not downstream of v (here: on the parameters and on v's parents).
Reparameterized nodes contribute through their paths: their values carry gradients into
everything downstream of them. ``estimator="dice"`` builds the DiCE objective of Foerster
et al. (2018, "DiCE: the infinitely differentiable Monte Carlo estimator", ICML, eq. 5),

    S = Σ_c ☐(Λ_c) · c,   ☐(Λ) = exp(Λ - stop(Λ)),   Λ_c = Σ_{v upstream of c} log p(v | ...),

whose value is the total cost and whose derivatives of every order, by repeated autograd,
are unbiased estimates of the derivatives of the objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._validation import (
    as_tensor,
    check_allocation,
    check_callable,
    check_finite,
    check_positive_int,
    describe,
)
from .montecarlo import Estimate, summarize

__all__ = ["Cost", "Node", "graph_gradient", "graph_hessian", "graph_surrogate", "magic_box"]

_ESTIMATORS = ("causal", "naive", "dice")


@dataclass(frozen=True)
class Node:
    """A random node of a stochastic computation graph.

    Attributes:
        name: a non-empty string, unique among the graph's nodes and costs.
        distribution: ``distribution(params, *parent_values)`` returns a
            ``torch.distributions.Distribution`` whose samples have the sample dimension N
            first; ``params`` is the dict of parameters, each with a leading dimension N
            (one copy per sample, see :func:`graph_gradient`).
        parents: names of the nodes whose values ``distribution`` takes, in order.
        reparameterize: True to draw by ``rsample()`` (a path), False by ``sample()`` (a
            score term in the surrogate).

    Example:
        >>> from torch.distributions import Bernoulli
        >>> z = Node("z", lambda p: Bernoulli(logits=p["a"]))
    """

    name: str
    distribution: object
    parents: tuple = ()
    reparameterize: bool = False

    def __post_init__(self):
        _check_name("name", self.name)
        if self.distribution is None:
            raise TypeError(f"distribution of node {self.name!r} must be a callable, got None")
        check_callable("distribution", self.distribution)
        object.__setattr__(self, "parents", _check_parents(self.parents))
        if not isinstance(self.reparameterize, bool):
            raise TypeError(f"reparameterize must be a bool, got {describe(self.reparameterize)}")


@dataclass(frozen=True)
class Cost:
    """A cost node: ``function(params, *parent_values)`` returns one cost per sample, (N,).

    Attributes:
        name: a non-empty string, unique among the graph's nodes and costs.
        function: the cost; it may depend on the parameters directly (that part is
            differentiated by autograd) and on the values of ``parents``.
        parents: names of the random nodes the cost reads, in order; at least one (a cost
            that depends on no random node is a deterministic term: add it outside).

    Example:
        >>> c = Cost("c", lambda p, z: (z - 0.5) ** 2, parents=("z",))
    """

    name: str
    function: object
    parents: tuple = ()

    def __post_init__(self):
        _check_name("name", self.name)
        check_callable("function", self.function)
        object.__setattr__(self, "parents", _check_parents(self.parents))
        if not self.parents:
            raise ValueError(
                f"parents of cost {self.name!r} must name at least one random node: a cost "
                "that depends on nothing random is a constant of the objective"
            )


def _check_name(name: str, value) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty string, got {describe(value)}")


def _check_parents(value) -> tuple:
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise TypeError(f"parents must be a tuple of node names, got {describe(value)}")
    for parent in value:
        _check_name("parents", parent)
    return tuple(value)


def magic_box(log_prob_sum: torch.Tensor) -> torch.Tensor:
    """DiCE's magic box ☐(Λ) = exp(Λ - stop(Λ)): equal to 1, with ∇☐(Λ) = ☐(Λ) ∇Λ.

    Args:
        log_prob_sum: a floating-point tensor of any shape, Λ, a sum of log-probabilities.

    Returns:
        A tensor of ones, shaped like ``log_prob_sum``, that carries Λ's gradient to every order.

    Example:
        >>> magic_box(torch.tensor([0.3, -2.0]))
        tensor([1., 1.])
    """
    if not isinstance(log_prob_sum, torch.Tensor) or not log_prob_sum.is_floating_point():
        raise TypeError(
            f"log_prob_sum must be a floating-point tensor, got {describe(log_prob_sum)}"
        )
    check_finite("log_prob_sum", log_prob_sum.detach())
    return torch.exp(log_prob_sum - log_prob_sum.detach())


def _check_params(params, *, allow_empty: bool) -> None:
    """A dict from names to finite floating-point tensors (non-empty unless ``allow_empty``)."""
    if (
        not isinstance(params, dict)
        or (not params and not allow_empty)
        or not all(isinstance(k, str) for k in params)
        or not all(isinstance(v, torch.Tensor) and v.is_floating_point() for v in params.values())
    ):
        what = "a dict" if allow_empty else "a non-empty dict"
        raise TypeError(
            f"params must be {what} from names to floating-point tensors, got {describe(params)}"
        )
    for key, value in params.items():
        check_finite(f"params[{key!r}]", value.detach())


def _call(what: str, name: str, function, params, *args):
    """``function(params, *args)``; a KeyError for a missing parameter names ``params``."""
    try:
        return function(params, *args)
    except KeyError as err:
        key = err.args[0] if err.args else None
        if isinstance(key, str) and key not in params:
            raise ValueError(
                f"params has no entry {key!r}, which the {what} {name!r} reads"
            ) from err
        raise


def _order(nodes, costs) -> list:
    """The nodes in an order where parents come first; ValueError on unknown names or a cycle."""
    if not isinstance(nodes, (list, tuple)) or not all(isinstance(n, Node) for n in nodes):
        raise TypeError(f"nodes must be a list of Node, got {describe(nodes)}")
    if not nodes:
        raise ValueError("nodes must hold at least one Node")
    if not isinstance(costs, (list, tuple)) or not all(isinstance(c, Cost) for c in costs):
        raise TypeError(f"costs must be a list of Cost, got {describe(costs)}")
    if not costs:
        raise ValueError("costs must hold at least one Cost")
    names = [n.name for n in nodes] + [c.name for c in costs]
    if len(set(names)) != len(names):
        raise ValueError(f"nodes and costs must have unique names, got {names}")
    by_name = {n.name: n for n in nodes}
    for item, what in [(n, "nodes") for n in nodes] + [(c, "costs") for c in costs]:
        for parent in item.parents:
            if parent not in by_name:
                raise ValueError(
                    f"{what}: {item.name!r} has parent {parent!r}, which is not a node"
                )
    order, state = [], {}

    def visit(node, path):
        if state.get(node.name) == "done":
            return
        if state.get(node.name) == "open":
            raise ValueError(f"nodes must form a graph without cycles: {' -> '.join(path)}")
        state[node.name] = "open"
        for parent in node.parents:
            visit(by_name[parent], [*path, parent])
        state[node.name] = "done"
        order.append(node)

    for node in nodes:
        visit(node, [node.name])
    return order


def _ancestors(order) -> dict:
    """For each node name, the set of names of the node and of every node upstream of it."""
    ancestors = {}
    for node in order:
        ancestors[node.name] = {node.name}.union(*(ancestors[p] for p in node.parents))
    return ancestors


def graph_surrogate(params, nodes, costs, num_samples, *, estimator="causal", baselines=None):
    """Sample the graph N times; return the per-sample surrogate S and total cost, each (N,).

    The gradient of ``S.mean()`` with respect to ``params`` is the estimator (see the module
    docstring for the three surrogates); ``S`` is differentiable as often as the
    distributions are (use ``estimator="dice"`` for unbiased higher derivatives).

    Args:
        params: a dict of name -> floating-point tensor, each with a leading dimension
            ``num_samples`` (one copy per sample) or broadcastable against it.
        nodes: a list of :class:`Node`, acyclic, unique names.
        costs: a list of :class:`Cost` whose parents are nodes.
        num_samples: N >= 1, the number of independent samples of the graph.
        estimator: "causal" (score of v times the costs downstream of v), "naive" (times
            the total cost) or "dice".
        baselines: None, or a dict from names of non-reparameterized nodes to callables
            ``b(params, *parent_values)`` -> (N,), subtracted from that node's Q̂ (causal or
            naive only); they are detached.

    Returns:
        ``(surrogate, total_cost)``, each shape (N,); ``total_cost`` is detached.

    Example:
        >>> from torch.distributions import Bernoulli
        >>> a = torch.zeros(4, requires_grad=True)
        >>> s, c = graph_surrogate({"a": a}, [Node("z", lambda p: Bernoulli(logits=p["a"]))],
        ...                        [Cost("c", lambda p, z: z, parents=("z",))], 4)
        >>> s.shape
        torch.Size([4])
    """
    _check_params(params, allow_empty=True)
    order = _order(nodes, costs)
    num_samples = check_positive_int("num_samples", num_samples)
    check_allocation("num_samples", num_samples, 8 * num_samples)  # one value per sample
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
    baselines = {} if baselines is None else baselines
    if not isinstance(baselines, dict):
        raise TypeError(f"baselines must be None or a dict, got {describe(baselines)}")
    scored = {n.name for n in order if not n.reparameterize}
    for key, value in baselines.items():
        if key not in scored:
            raise ValueError(f"baselines: {key!r} is not a node sampled without a path")
        check_callable("baselines", value)
    if estimator == "dice" and baselines:
        raise ValueError("baselines must be None with estimator='dice'")

    values, log_probs = {}, {}
    for node in order:
        dist = _call(
            "distribution of node",
            node.name,
            node.distribution,
            params,
            *(values[p] for p in node.parents),
        )
        if not isinstance(dist, torch.distributions.Distribution):
            raise TypeError(
                f"nodes: the distribution of node {node.name!r} must return a Distribution, got "
                f"{describe(dist)}"
            )
        if node.reparameterize:
            if not dist.has_rsample:
                raise ValueError(
                    f"nodes: reparameterize: node {node.name!r} has a {type(dist).__name__}, "
                    "which has no rsample()"
                )
            value = dist.rsample()
        else:
            value = dist.sample()
            log_probs[node.name] = _per_sample(dist.log_prob(value), num_samples, node.name)
        if value.shape[:1] != (num_samples,):
            raise ValueError(
                f"nodes: the distribution of node {node.name!r} must draw num_samples = "
                f"{num_samples} samples along dimension 0 (from params with that leading "
                f"dimension), got shape {tuple(value.shape)}"
            )
        values[node.name] = value

    ancestors = _ancestors(order)
    upstream = {  # the scored nodes upstream of each cost
        c.name: scored & set().union(*(ancestors[p] for p in c.parents)) for c in costs
    }
    cost_values = {}
    for cost in costs:
        value = _call(
            "function of cost", cost.name, cost.function, params, *(values[p] for p in cost.parents)
        )
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(
                f"costs: the function of cost {cost.name!r} must return a floating-point "
                f"tensor, got {describe(value)}"
            )
        if value.shape != (num_samples,):
            raise ValueError(
                f"costs: the function of cost {cost.name!r} must return shape "
                f"({num_samples},), got {tuple(value.shape)}"
            )
        check_finite(f"costs: the value of cost {cost.name!r}", value.detach())
        cost_values[cost.name] = value
    total = sum(cost_values.values())

    if estimator == "dice":
        surrogate = 0.0
        for cost in costs:
            lam = sum((log_probs[v] for v in upstream[cost.name]), torch.zeros(num_samples))
            surrogate = surrogate + magic_box(lam) * cost_values[cost.name]
        return surrogate, total.detach()

    surrogate = total
    by_name = {n.name: n for n in order}
    for v in scored:
        if estimator == "causal":
            q = sum(cost_values[c.name] for c in costs if v in upstream[c.name])
        else:
            q = total
        if isinstance(q, int):  # no cost downstream of v: its score term is 0
            continue
        q = q.detach()
        if v in baselines:
            b = _call(
                "baseline of node",
                v,
                baselines[v],
                params,
                *(values[p] for p in by_name[v].parents),
            )
            b = as_tensor(f"baselines[{v!r}]", b)
            if b.shape not in ((), (1,), (num_samples,)):
                raise ValueError(
                    f"baselines[{v!r}] must return one value or shape ({num_samples},), got "
                    f"shape {tuple(b.shape)}"
                )
            q = q - check_finite(f"baselines[{v!r}]", b)
        surrogate = surrogate + log_probs[v] * q
    return surrogate, total.detach()


def _per_sample(log_prob, num_samples, name):
    # Sum the event dimensions: one log-probability per sample.
    if log_prob.dim() == 0 or log_prob.shape[0] != num_samples:
        raise ValueError(
            f"nodes: the distribution of node {name!r} must have num_samples = {num_samples} "
            "samples along dimension 0 (from params with that leading dimension), got "
            f"log_prob of shape {tuple(log_prob.shape)}"
        )
    return log_prob.reshape(num_samples, -1).sum(dim=1)


def graph_gradient(params, nodes, costs, num_samples, *, estimator="causal", baselines=None):
    """Estimate ∇θ E[Σ_c c] from ``num_samples`` independent samples of the graph.

    Each parameter is copied once per sample, so one backward pass of the surrogate of
    :func:`graph_surrogate` gives the N per-sample gradients g_n and their standard error.

    Args:
        params: a dict of name -> floating-point tensor θ_k (not replicated).
        nodes, costs, estimator, baselines: as in :func:`graph_surrogate`.
        num_samples: N >= 2.

    Returns:
        An :class:`~companion.montecarlo.Estimate` whose ``mean``, ``stderr`` have shape
        (d,), d the total number of entries of the parameters, concatenated in the order
        of ``params`` (each flattened); ``samples`` has shape (N, d).

    Example:
        >>> from torch.distributions import Bernoulli
        >>> est = graph_gradient({"a": torch.tensor(0.0)},
        ...                      [Node("z", lambda p: Bernoulli(logits=p["a"]))],
        ...                      [Cost("c", lambda p, z: z, parents=("z",))], 1000)
        >>> est.mean.shape
        torch.Size([1])
    """
    copies, per_sample = _per_sample_gradients(
        params, nodes, costs, num_samples, estimator, baselines, create_graph=False
    )
    estimate = summarize(per_sample)
    return Estimate(estimate.mean, estimate.stderr, per_sample)


def _per_sample_gradients(params, nodes, costs, num_samples, estimator, baselines, create_graph):
    _check_params(params, allow_empty=False)
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    d = sum(v.numel() for v in params.values())
    if create_graph:  # one d × d Hessian per sample: refuse a d that cannot fit even once
        check_allocation("params", f"<a dict of {d} entries>", 8 * d * d)
    # the N copies of θ, their N gradients (and, for the Hessian, N rows of d gradients)
    per_sample = d * (d + 2) if create_graph else 2 * d
    check_allocation("num_samples", num_samples, num_samples * per_sample * 8)
    copies = {
        k: v.detach().unsqueeze(0).expand(num_samples, *v.shape).clone().requires_grad_()
        for k, v in params.items()
    }
    surrogate, _ = graph_surrogate(
        copies, nodes, costs, num_samples, estimator=estimator, baselines=baselines
    )
    grads = torch.autograd.grad(
        surrogate.sum(), list(copies.values()), allow_unused=True, create_graph=create_graph
    )
    per_sample = torch.cat(
        [
            (torch.zeros_like(c) if g is None else g).reshape(num_samples, -1)
            for g, c in zip(grads, copies.values())
        ],
        dim=1,
    )
    return copies, per_sample


def graph_hessian(params, nodes, costs, num_samples, *, estimator="dice"):
    """Estimate the Hessian ∇²θ E[Σ_c c] by differentiating a surrogate twice.

    With ``estimator="dice"`` (the default) the estimate is unbiased (Foerster et al. 2018);
    with "causal" or "naive" it is the second derivative of a first-order surrogate, which
    is biased: it misses E[Q̂ ∇log p ∇log p^T] and the cross terms (shown in the chapter).

    Args:
        params, nodes, costs: as in :func:`graph_gradient`.
        num_samples: N >= 2.
        estimator: "dice", "causal" or "naive".

    Returns:
        An :class:`~companion.montecarlo.Estimate` with ``mean`` and ``stderr`` of shape
        (d, d) and ``samples`` of shape (N, d, d), parameters ordered as in
        :func:`graph_gradient`.

    Example:
        >>> from torch.distributions import Bernoulli
        >>> est = graph_hessian({"a": torch.tensor(0.0)},
        ...                     [Node("z", lambda p: Bernoulli(logits=p["a"]))],
        ...                     [Cost("c", lambda p, z: z, parents=("z",))], 1000)
        >>> est.mean.shape
        torch.Size([1, 1])
    """
    copies, grads = _per_sample_gradients(
        params, nodes, costs, num_samples, estimator, None, create_graph=True
    )
    rows = []
    for i in range(grads.shape[1]):
        if grads.requires_grad:
            second = torch.autograd.grad(
                grads[:, i].sum(), list(copies.values()), allow_unused=True, retain_graph=True
            )
        else:
            second = [None] * len(copies)
        rows.append(
            torch.cat(
                [
                    (torch.zeros_like(c) if g is None else g).reshape(grads.shape[0], -1)
                    for g, c in zip(second, copies.values())
                ],
                dim=1,
            )
        )
    per_sample = torch.stack(rows, dim=1).detach()
    estimate = summarize(per_sample)
    return Estimate(estimate.mean, estimate.stderr, per_sample)
