"""Stochastic computation graphs: unbiasedness, DiCE, Pyro cross-check, bad inputs."""

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from companion.checks import critical_z
from companion.graphs import Cost, Node, graph_gradient, graph_hessian, graph_surrogate, magic_box
from companion.quadrature import gauss_hermite

Z = critical_z(1e-4, 8)  # every statistical assertion below: false alarm 1e-4 over 8 coordinates
S_FIXED = 0.7  # the guide's scale of x, fixed
Y_OBS = 0.5


def _pick(m, z):
    return torch.where(z > 0, m[..., 1], m[..., 0])


def elbo_graph():
    """Guide q(z) q(x | z) and model p(z) p(x | z) p(y | x) as a graph whose costs sum to -ELBO."""
    nodes = [
        Node("z", lambda p: Bernoulli(logits=p["a"])),
        Node("x", lambda p, z: Normal(_pick(p["m"], z), S_FIXED), ("z",), reparameterize=True),
    ]

    def cost_z(p, z):
        return Bernoulli(logits=p["a"]).log_prob(z) - Bernoulli(
            probs=0.5 * torch.ones_like(z)
        ).log_prob(z)

    def cost_x(p, z, x):
        log_q = Normal(_pick(p["m"], z), S_FIXED).log_prob(x)
        log_p = Normal(2 * z - 1, 1.0).log_prob(x) + Normal(x, 1.0).log_prob(torch.tensor(Y_OBS))
        return log_q - log_p

    costs = [Cost("cz", cost_z, ("z",)), Cost("cx", cost_x, ("z", "x"))]
    return nodes, costs


def exact_negative_elbo(a, m):
    total = 0.0
    t, w = gauss_hermite(40)
    for z in (0.0, 1.0):
        qz = torch.sigmoid(a) if z else 1 - torch.sigmoid(a)
        x = m[int(z)] + S_FIXED * t
        log_q = Normal(m[int(z)], S_FIXED).log_prob(x)
        log_p = Normal(2 * z - 1, 1.0).log_prob(x) + Normal(x, 1.0).log_prob(torch.tensor(Y_OBS))
        total = total + qz * (
            torch.log(qz) - torch.log(torch.tensor(0.5)) + (w * (log_q - log_p)).sum()
        )
    return total


PARAMS = {
    "a": torch.tensor(1.5, dtype=torch.float64),
    "m": torch.tensor([1.0, -1.2], dtype=torch.float64),
}


def exact_gradient():
    a, m = PARAMS["a"].clone().requires_grad_(), PARAMS["m"].clone().requires_grad_()
    ga, gm = torch.autograd.grad(exact_negative_elbo(a, m), (a, m))
    return torch.cat([ga.reshape(1), gm])


@pytest.fixture(autouse=True)
def _double():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("estimator", ["causal", "naive", "dice"])
def test_elbo_gradient_is_unbiased(estimator):
    torch.manual_seed(1)
    nodes, costs = elbo_graph()
    est = graph_gradient(PARAMS, nodes, costs, 40000, estimator=estimator)
    exact = exact_gradient()
    assert ((est.mean - exact).abs() <= Z * est.stderr).all(), (est.mean, est.stderr, exact)
    assert (Z * est.stderr < 0.1 * exact.norm()).all()  # resolves a 10% error


def chain_graph():
    nodes = [
        Node("z1", lambda p: Bernoulli(logits=p["a"])),
        Node("x", lambda p, z1: Normal(_pick(p["m"], z1), 1.0), ("z1",), reparameterize=True),
        Node("z2", lambda p, x: Bernoulli(logits=p["w"] * x), ("x",)),
    ]
    costs = [
        Cost("c1", lambda p, z1: 3.0 * z1, ("z1",)),
        Cost("c2", lambda p, x: (x - 1.0) ** 2, ("x",)),
        Cost("c3", lambda p, z2: 2.0 - 4.0 * z2, ("z2",)),
    ]
    params = {"a": torch.tensor(0.3), "m": torch.tensor([-1.0, 1.5]), "w": torch.tensor(0.8)}
    return params, nodes, costs


def chain_objective(a, m, w):
    t, wt = gauss_hermite(60)
    total = 0.0
    for z1 in (0, 1):
        pz = torch.sigmoid(a) if z1 else 1 - torch.sigmoid(a)
        x = m[z1] + t
        q = torch.sigmoid(w * x)
        total = total + pz * (3.0 * z1 + (wt * ((x - 1) ** 2 + 2 - 4 * q)).sum())
    return total


def test_causal_reduces_variance_and_dice_hessian_is_unbiased():
    torch.manual_seed(2)
    params, nodes, costs = chain_graph()
    causal = graph_gradient(params, nodes, costs, 20000, estimator="causal")
    naive = graph_gradient(params, nodes, costs, 20000, estimator="naive")
    # the score of z2 sees only c3 in the causal surrogate: the w-coordinate variance drops
    assert causal.samples[:, 3].var() < 0.5 * naive.samples[:, 3].var()
    hess = torch.autograd.functional.hessian(chain_objective, tuple(params.values()))
    exact = torch.zeros(4, 4)
    parts = [slice(0, 1), slice(1, 3), slice(3, 4)]
    for i, pi in enumerate(parts):
        for j, pj in enumerate(parts):
            exact[pi, pj] = hess[i][j].reshape(exact[pi, pj].shape)
    dice = graph_hessian(params, nodes, costs, 20000)
    z16 = critical_z(1e-4, 16)
    assert ((dice.mean - exact).abs() <= z16 * dice.stderr + 1e-12).all()
    first_order = graph_hessian(params, nodes, costs, 20000, estimator="causal")
    assert first_order.mean[0, 1] == 0.0 and exact[0, 1].abs() > 0.5  # the missing cross term


def test_magic_box_value_and_derivatives():
    x = torch.tensor(0.7, requires_grad=True)
    box = magic_box(2 * x)
    (g,) = torch.autograd.grad(box, x, create_graph=True)
    (h,) = torch.autograd.grad(g, x)
    assert box.item() == 1.0 and g.item() == pytest.approx(2.0) and h.item() == pytest.approx(4.0)


def chain_elbo_graph(like_pyro=True, track=True):
    """Guide z1 -> x -> z2 (z1, z2 sampled without a path) and the model's -ELBO as costs.

    Model: z1 ~ Bernoulli(1/2), x | z1 ~ N(2 z1 - 1, 1), z2 | x ~ Bernoulli(sigmoid(x)),
    y | x ~ N(x, 1) observed at Y_OBS (sampled after z2, but depending only on x). Guide:
    z1 ~ Bernoulli(sigmoid(a)), x | z1 ~ N(m_z1, S_FIXED) by a path, z2 | x ~
    Bernoulli(sigmoid(w x)). ``like_pyro``: drop the direct derivatives of log q at the sites
    sampled without a path (mean 0), as TraceGraph_ELBO does. ``track=False`` makes the
    likelihood of y read z2 too, so that the score of z2 is weighted by it: what an
    implementation that ordered sites instead of tracking dependencies would do.
    """
    nodes = [
        Node("z1", lambda p: Bernoulli(logits=p["a"])),
        Node("x", lambda p, z1: Normal(_pick(p["m"], z1), S_FIXED), ("z1",), reparameterize=True),
        Node("z2", lambda p, x: Bernoulli(logits=p["w"] * x), ("x",)),
    ]

    def cost_z1(p, z1):
        a = p["a"].detach() if like_pyro else p["a"]
        return Bernoulli(logits=a).log_prob(z1) - Bernoulli(
            probs=0.5 * torch.ones_like(z1)
        ).log_prob(z1)

    def cost_x(p, z1, x):
        return Normal(_pick(p["m"], z1), S_FIXED).log_prob(x) - Normal(2 * z1 - 1, 1.0).log_prob(x)

    def cost_z2(p, x, z2):
        xq, w = (x.detach(), p["w"].detach()) if like_pyro else (x, p["w"])
        return Bernoulli(logits=w * xq).log_prob(z2) - Bernoulli(logits=x).log_prob(z2)

    def cost_y(p, x, *z2):
        return -Normal(x, 1.0).log_prob(torch.tensor(Y_OBS))

    costs = [
        Cost("cz1", cost_z1, ("z1",)),
        Cost("cx", cost_x, ("z1", "x")),
        Cost("cz2", cost_z2, ("x", "z2")),
        Cost("cy", cost_y, ("x",) if track else ("x", "z2")),
    ]
    return nodes, costs


CHAIN_PARAMS = {
    "a": torch.tensor(1.5, dtype=torch.float64),
    "m": torch.tensor([1.0, -1.2], dtype=torch.float64),
    "w": torch.tensor(0.5, dtype=torch.float64),
}


def chain_negative_elbo(a, m, w):
    total = 0.0
    t, wt = gauss_hermite(40)
    for z1 in (0.0, 1.0):
        q1 = torch.sigmoid(a) if z1 else 1 - torch.sigmoid(a)
        x = m[int(z1)] + S_FIXED * t
        inner = Normal(m[int(z1)], S_FIXED).log_prob(x) - Normal(2 * z1 - 1, 1.0).log_prob(x)
        inner = inner - Normal(x, 1.0).log_prob(torch.tensor(Y_OBS))
        for z2 in (0.0, 1.0):
            q2 = Bernoulli(logits=w * x).log_prob(torch.tensor(z2))
            inner = inner + q2.exp() * (q2 - Bernoulli(logits=x).log_prob(torch.tensor(z2)))
        total = total + q1 * (torch.log(q1) - torch.log(torch.tensor(0.5)) + (wt * inner).sum())
    return total


def _kurtosis(samples):
    centred = samples - samples.mean(0)
    return (centred**4).mean(0) / (centred**2).mean(0) ** 2


@pytest.mark.slow
def test_agrees_with_pyro_trace_graph_elbo():
    """Pyro's TraceGraph_ELBO on a guide z1 -> x -> z2 with two sites sampled without a path.

    The score of z2 must be weighted by the costs downstream of z2 only (log p(z2|x) -
    log q(z2|x)), not by the likelihood of y, which the model samples after z2 but which reads
    only x. Means: both implementations and the exact gradient agree. Variances: the ratio of
    per-coordinate variances lies in a band derived from the measured kurtosis (sd of the log
    of a variance ratio, sqrt((k1 - 1)/n1 + (k2 - 1)/n2)); the same band rejects the
    surrogate that weights z2's score by the likelihood of y too, so a Pyro that ordered sites
    instead of tracking dependencies would fail it.
    """
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as dist
    from pyro.infer import TraceGraph_ELBO

    def model():
        z1 = pyro.sample("z1", dist.Bernoulli(0.5))
        x = pyro.sample("x", dist.Normal(2 * z1 - 1, 1.0))
        pyro.sample("z2", dist.Bernoulli(logits=x))
        pyro.sample("y", dist.Normal(x, 1.0), obs=torch.tensor(Y_OBS))

    def guide():
        a, m, w = (pyro.param(k, v.clone()) for k, v in CHAIN_PARAMS.items())
        z1 = pyro.sample("z1", dist.Bernoulli(logits=a))
        x = pyro.sample("x", dist.Normal(_pick(m, z1), S_FIXED))
        pyro.sample("z2", dist.Bernoulli(logits=w * x))

    n_pyro, n_ours = 2000, 4000
    pyro.set_rng_seed(3)
    elbo = TraceGraph_ELBO(num_particles=1)
    draws = []
    for _ in range(n_pyro):
        pyro.clear_param_store()
        elbo.loss_and_grads(model, guide)  # backward of Pyro's -ELBO surrogate, one particle
        grads = [pyro.param(k).unconstrained().grad.reshape(-1) for k in CHAIN_PARAMS]
        draws.append(torch.cat(grads))
    draws = torch.stack(draws)
    pyro_mean, pyro_se = draws.mean(0), draws.std(0) / n_pyro**0.5
    a, m, w = (v.clone().requires_grad_() for v in CHAIN_PARAMS.values())
    exact = torch.cat(
        [g.reshape(-1) for g in torch.autograd.grad(chain_negative_elbo(a, m, w), (a, m, w))]
    )
    torch.manual_seed(4)
    ours = graph_gradient(CHAIN_PARAMS, *chain_elbo_graph(), n_ours)
    z = critical_z(1e-4, 4 * 5)  # 4 coordinates, 5 two-sided comparisons below
    diff_se = (ours.stderr**2 + pyro_se**2).sqrt()
    print(f"companion {ours.mean.tolist()} ± {ours.stderr.tolist()}")
    print(f"pyro      {pyro_mean.tolist()} ± {pyro_se.tolist()}")
    print(f"exact     {exact.tolist()}")
    assert ((ours.mean - pyro_mean).abs() <= z * diff_se).all()
    assert ((pyro_mean - exact).abs() <= z * pyro_se).all()
    assert (z * pyro_se < 0.1 * exact.norm()).all()  # resolves a 10% error

    def log_ratio_band(samples):
        sd = ((_kurtosis(samples) - 1) / len(samples) + (_kurtosis(draws) - 1) / n_pyro).sqrt()
        return (samples.var(0) / draws.var(0)).log(), z * sd

    log_ratio, half_width = log_ratio_band(ours.samples)
    print(f"log variance ratio companion / pyro {log_ratio.tolist()} ± {half_width.tolist()}")
    assert (log_ratio.abs() <= half_width).all()
    torch.manual_seed(5)
    untracked = graph_gradient(CHAIN_PARAMS, *chain_elbo_graph(track=False), n_ours)
    log_ratio, half_width = log_ratio_band(untracked.samples)
    print(f"without tracking: {log_ratio.tolist()} ± {half_width.tolist()}")
    assert (log_ratio.abs() > half_width).any()  # the band resolves the missing tracking


def _z_node():
    return Node("z", lambda p: Bernoulli(logits=p["a"]))


def _c(parents=("z",)):
    return Cost("c", lambda p, z: z, parents)


def test_cycle_is_rejected():
    nodes = [
        Node("u", lambda p, v: Normal(v, 1.0), ("v",)),
        Node("v", lambda p, u: Normal(u, 1.0), ("u",)),
    ]
    with pytest.raises(ValueError, match="nodes must form a graph without cycles"):
        graph_gradient({"a": torch.tensor(0.0)}, nodes, [Cost("c", lambda p, u: u, ("u",))], 10)


def test_cost_on_nothing_is_rejected():
    with pytest.raises(ValueError, match="parents of cost"):
        Cost("c", lambda p: p["a"])


def test_node_without_distribution_is_rejected():
    with pytest.raises(TypeError, match="distribution"):
        Node("z", None)
    bad = Node("z", lambda p: 0.5)
    with pytest.raises(TypeError, match="distribution of node 'z' must return a Distribution"):
        graph_gradient({"a": torch.tensor(0.0)}, [bad], [_c()], 10)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"params": {"a": 1}}, TypeError, "params"),
        ({"params": {}}, TypeError, "params"),
        ({"nodes": []}, ValueError, "nodes"),
        ({"nodes": ["z"]}, TypeError, "nodes"),
        ({"costs": []}, ValueError, "costs"),
        ({"costs": [_c(("y",))]}, ValueError, "costs"),
        ({"num_samples": 1}, ValueError, "num_samples"),
        ({"num_samples": 2.5}, TypeError, "num_samples"),
        ({"estimator": "exact"}, ValueError, "estimator"),
        ({"baselines": {"q": lambda p: 0.0}}, ValueError, "baselines"),
        ({"baselines": [1]}, TypeError, "baselines"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    call = {
        "params": {"a": torch.tensor(0.0)},
        "nodes": [_z_node()],
        "costs": [_c()],
        "num_samples": 10,
    }
    call.update(kwargs)
    with pytest.raises(error, match=match):
        graph_gradient(
            call.pop("params"),
            call.pop("nodes"),
            call.pop("costs"),
            call.pop("num_samples"),
            **call,
        )


def test_bad_node_and_cost_fields():
    with pytest.raises(TypeError, match="name"):
        Node("", lambda p: None)
    with pytest.raises(TypeError, match="parents"):
        Node("z", lambda p: None, parents="x")
    with pytest.raises(TypeError, match="reparameterize"):
        Node("z", lambda p: None, reparameterize=1)
    with pytest.raises(TypeError, match="function"):
        Cost("c", 3.0, ("z",))
    with pytest.raises(TypeError, match="log_prob_sum"):
        magic_box(1.0)
    with pytest.raises(ValueError, match="reparameterize"):
        graph_gradient(
            {"a": torch.tensor(0.0)},
            [Node("z", lambda p: Bernoulli(logits=p["a"]), reparameterize=True)],
            [_c()],
            10,
        )


def test_surrogate_value_with_dice_is_the_cost():
    torch.manual_seed(5)
    params, nodes, costs = chain_graph()
    copies = {k: v.expand(100, *v.shape) for k, v in params.items()}  # one copy per sample
    s, total = graph_surrogate(copies, nodes, costs, 100, estimator="dice")
    assert torch.allclose(s.detach(), total)
