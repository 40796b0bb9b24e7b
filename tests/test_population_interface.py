"""The population interface: conformance of every kind, pytrees that cannot go stale, one-sided
gradients at policy zeros, key-first Monte Carlo, traced k (ranking engines: test_ranking.py)."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua
from ualign_jax.testing import check_population

M, N = 3, 4
TIES = np.array([[2.0, 1.0, 0.0, 1.0], [0.0, 2.0, 2.0, 1.0], [3.0, 3.0, 1.0, 0.0]])
STRICT = np.array([[2.0, 1.0, 0.0, 3.0], [0.0, 2.0, 3.0, 1.0], [3.0, 2.0, 1.0, 0.0]])
WEIGHTS = np.array([0.2, 0.5, 0.3])
POLICY = jnp.array([0.4, 0.0, 0.25, 0.35])


def sampled_population():
    table = jnp.asarray(TIES)

    def choose(user, pool):
        top = (user[pool] == jnp.max(user[pool])).astype(user.dtype)
        return top / jnp.sum(top)

    return ua.SampledPopulation(
        lambda key, num: table[jax.random.randint(key, (num,), 0, M)], choose, N
    )


KINDS = {
    "ranking_ties": lambda dtype: ua.RankingPopulation(TIES.astype(dtype), WEIGHTS),
    "ranking_sorted_engine": lambda dtype: ua.RankingPopulation(TIES.astype(dtype), engine="scan"),
    "plackett_luce": lambda dtype: ua.PlackettLucePopulation((TIES - STRICT).astype(dtype)),
    "dense": lambda dtype: ua.DenseGame(ua.win_tensor(ua.RankingPopulation(TIES.astype(dtype)), 3)),
    "sampled": lambda dtype: sampled_population(),
}


@pytest.mark.parametrize(  # a SampledPopulation has no dtype of its own: one case
    ("kind", "dtype"),
    [(kind, dtype) for kind in KINDS for dtype in (np.float64, np.float32)][:-1],
)
def test_every_kind_passes_the_conformance_check(kind, dtype):
    check_population(KINDS[kind](dtype))


def test_the_interface_replaces_isinstance_in_payoffs_and_metrics():
    import inspect

    from ualign_jax import metrics, payoffs

    for module in (payoffs, metrics):
        source = inspect.getsource(module)
        for kind in ("RankingPopulation)", "PlackettLucePopulation)", "DenseGame)"):
            assert f"isinstance(pop, {kind}" not in source, (module.__name__, kind)


# --------------------------------------------------------------------------- stale pytrees


def ranking_payoffs(pop, k=3):
    return np.asarray(ua.response_payoffs(pop, POLICY, k))


@pytest.mark.parametrize("engine", ["pairwise", "scan", "parallel"])
def test_pytree_operations_give_the_population_a_constructor_builds(engine):
    pop = ua.RankingPopulation(TIES, WEIGHTS, engine=engine)
    fresh = lambda u, w=WEIGHTS: ua.RankingPopulation(u, w, engine=engine)
    np.testing.assert_allclose(  # tree.map over every leaf (weights x 2 renormalise to the same)
        ranking_payoffs(jax.tree.map(lambda x: x * 2, pop)),
        ranking_payoffs(fresh(TIES * 2, WEIGHTS * 2)),
        atol=1e-14,
    )
    flipped = eqx.tree_at(lambda p: p.utilities, pop, jnp.asarray(-TIES))
    np.testing.assert_allclose(ranking_payoffs(flipped), ranking_payoffs(fresh(-TIES)), atol=1e-14)
    replaced = pop.replace(utilities=STRICT)
    np.testing.assert_allclose(
        ranking_payoffs(replaced), ranking_payoffs(fresh(STRICT)), atol=1e-14
    )
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), pop, fresh(STRICT))
    batched = np.asarray(ua.response_payoffs(stacked, POLICY, 3))
    for i, table in enumerate((TIES, STRICT)):
        np.testing.assert_allclose(batched[i], ranking_payoffs(fresh(table)), atol=1e-14)
        sliced = jax.tree.map(lambda a, i=i: a[i], stacked)  # pop[i]
        np.testing.assert_allclose(
            ranking_payoffs(sliced), ranking_payoffs(fresh(table)), atol=1e-14
        )
    mapped = jax.vmap(lambda p: ua.payoffs.payoff_function(p, 3)(POLICY))(stacked)
    np.testing.assert_allclose(mapped, batched, atol=1e-14)


def test_replace_validates_through_the_constructor():
    pop = ua.RankingPopulation(TIES)
    with pytest.raises(ValueError, match="utilities must be finite"):
        pop.replace(utilities=np.full((M, N), np.nan))
    with pytest.raises(ValueError, match="not arguments"):
        pop.replace(log_weights=TIES)
    luce = ua.PlackettLucePopulation(TIES, WEIGHTS)
    assert luce.replace(weights=None).weights.tolist() == [1 / 3] * 3
    assert pop.with_user_chunk(2).replace(utilities=STRICT).user_chunk == 2


def test_same_shape_populations_share_one_tree_and_one_trace():
    traces = []

    @jax.jit
    def payoffs(pop):
        traces.append(1)
        return ua.payoffs.payoff_function(pop, 2)(POLICY)

    ties, strict = ua.RankingPopulation(TIES), ua.RankingPopulation(STRICT)
    # one setting, any values: spread 3 and spread 600 (beyond 256 nodes' reach) share a tree
    narrow = ua.PlackettLucePopulation(TIES, max_spread=698)
    wide = ua.PlackettLucePopulation(TIES * 200.0, max_spread=698)
    assert jax.tree.structure(ties) == jax.tree.structure(strict)
    assert jax.tree.structure(narrow) == jax.tree.structure(wide)
    for pop in (ties, strict, narrow, wide):
        expected = ua.response_payoffs(pop, POLICY, 2)
        np.testing.assert_allclose(payoffs(pop), expected, atol=1e-14)
    assert len(traces) == 2  # one per kind, none for ties or spreads
    jax.tree.map(lambda a, b: jnp.stack([a, b]), narrow, wide)  # they stack


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "make",
    [
        lambda: ua.RankingPopulation(TIES, WEIGHTS, engine="pairwise"),
        lambda: ua.RankingPopulation(TIES, WEIGHTS, engine="scan"),
        lambda: ua.RankingPopulation(TIES, WEIGHTS, engine="parallel"),
        lambda: ua.PlackettLucePopulation(TIES - STRICT, WEIGHTS),
    ],
)
def test_gradient_at_a_zero_of_the_policy_is_the_one_sided_derivative(make):
    pop, k = make(), 3
    direction = jnp.array([-0.5, 1.0, -0.25, -0.25])  # into the simplex through POLICY[1] = 0
    value = lambda p: jnp.dot(jnp.arange(1.0, N + 1), ua.payoffs.payoff_function(pop, k)(p))
    grad = jnp.dot(jax.grad(value)(POLICY), direction)
    h = 1e-7
    one_sided = (value(POLICY + h * direction) - value(POLICY)) / h
    np.testing.assert_allclose(grad, one_sided, rtol=1e-5)


# --------------------------------------------------------------------------- Plackett–Luce spread


def test_plackett_luce_nodes_come_from_the_dtype_or_max_spread():
    f32 = ua.PlackettLucePopulation(np.zeros((1, 3), np.float32))
    f64 = ua.PlackettLucePopulation(np.zeros((1, 3)))
    assert f32.quadrature_nodes == 256 and f64.quadrature_nodes == 256  # 77 and 60 nats
    assert ua.PlackettLucePopulation(np.zeros((1, 3)), max_spread=698).quadrature_nodes == 2304
    with pytest.raises(ValueError, match="pass max_spread=61"):  # the float64 default, 60
        ua.PlackettLucePopulation(np.array([[0.0, 60.5]]))
    with pytest.raises(ValueError, match="underflows float32"):
        ua.PlackettLucePopulation(np.array([[0.0, 80.0]], np.float32))
    with pytest.raises(ValueError, match="max_spread=60"):
        ua.PlackettLucePopulation(np.array([[0.0, 61.0]]), max_spread=60)
    with pytest.raises(ValueError, match="max_spread must be"):
        ua.PlackettLucePopulation(np.zeros((1, 3)), max_spread=1e4)


def test_plackett_luce_is_accurate_at_the_widest_spread_of_each_dtype():
    rng = np.random.default_rng(3)
    for dtype, spread, tol in ((np.float32, 75.0, 2e-6), (np.float64, 690.0, 1e-10)):
        s = np.concatenate(
            [np.zeros((2, 1)), -spread * rng.random((2, 3)), -np.full((2, 1), spread)], 1
        )
        wide = functools.partial(ua.PlackettLucePopulation, max_spread=spread)
        exact = ua.win_tensor(wide(s), 3)  # float64 reference: brute force
        pools = np.stack(np.meshgrid(*[np.arange(5)] * 3, indexing="ij"), -1).reshape(-1, 3)
        brute = np.mean(
            [np.exp(u[pools[:, 0]] - np.logaddexp.reduce(u[pools], axis=1)) for u in s], 0
        )
        np.testing.assert_allclose(np.asarray(exact).reshape(-1), brute, atol=1e-10)
        policy = rng.dirichlet(np.ones(5) * 0.3)
        got = ua.response_payoffs(wide(s.astype(dtype)), policy.astype(dtype), 2)
        np.testing.assert_allclose(got, brute.reshape(5, 5, 5) @ policy @ policy, atol=tol)


def test_traced_spread_beyond_the_dtype_is_clamped_not_nan():
    s = jnp.array([[0.0, -100.0, -1.0]], jnp.float32)  # exp(-100) underflows float32
    policy = jnp.array([0.0, 0.5, 0.5], jnp.float32)
    u = jax.jit(lambda s: ua.response_payoffs(ua.PlackettLucePopulation(s), policy, 2))(s)
    assert np.all(np.isfinite(u))
    np.testing.assert_allclose(policy @ u, 1 / 3, atol=1e-6)


# --------------------------------------------------------------------------- API conventions


def test_monte_carlo_takes_the_key_first():
    pop = ua.RankingPopulation(TIES)
    with pytest.raises(ValueError, match="PRNG key first"):
        ua.monte_carlo_payoffs(pop, POLICY, 2, jax.random.key(0))


def test_win_rates_with_one_output_opponents_take_a_traced_k():
    pop = ua.RankingPopulation(TIES, WEIGHTS)
    other = jnp.array([0.1, 0.2, 0.3, 0.4])
    traced = jax.jit(
        lambda k: (ua.win_rate(pop, POLICY, k, other), ua.robust_win_rate(pop, POLICY, k))
    )
    for k in (2, 5):
        got = traced(jnp.asarray(k))
        np.testing.assert_allclose(got[0], ua.win_rate(pop, POLICY, k, other), atol=1e-14)
        np.testing.assert_allclose(got[1], ua.robust_win_rate(pop, POLICY, k), atol=1e-14)
