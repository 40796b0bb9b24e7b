"""Laws over k-tuples (``ua.KOutputPolicy``): win rates against products and other laws, robust
win rates, T2 on impartial culture (docs/theory.md §1, §2, §4)."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua

from . import brute_force as bf

PI = np.array([0.1, 0.2, 0.3, 0.4])
SIGMA = np.array([0.4, 0.3, 0.0, 0.3])
#: A correlated 2-output law on 4 responses: never a product (no repeats, a fixed pairing).
TUPLES = np.array([[0, 1], [2, 3], [1, 3], [0, 0]])
ALPHA = np.array([0.4, 0.3, 0.2, 0.1])
TOLERANCE = {jnp.float32: 1e-6, jnp.float64: 1e-10}


def population(kind, dtype, seed=3):
    rng = np.random.default_rng(seed)
    weights = jnp.asarray(rng.random(3) + 0.1, dtype)
    if kind == "ranking":  # three utility levels over four responses: ties are common
        params = rng.integers(0, 3, size=(3, 4)).astype(np.float64)
        return ua.RankingPopulation(jnp.asarray(params, dtype), weights), params
    params = 2.0 * rng.normal(size=(3, 4))
    return ua.PlackettLucePopulation(jnp.asarray(params, dtype), weights), params


def brute_rules(kind, params, weights):
    return bf.rules(kind, params), np.asarray(weights, np.float64) / np.sum(weights)


def pool_share(rules, weights, mine, theirs):
    """Expected share of ``mine``'s positions in the pool ``mine ⊕ theirs``, users enumerated."""
    pool = tuple(mine) + tuple(theirs)
    return sum(w * pick(pool)[: len(mine)].sum() for w, pick in zip(weights, rules, strict=True))


# --------------------------------------------------------------------------- product laws


@pytest.mark.parametrize(
    ("kind", "dtype", "k", "ell"),
    [
        ("ranking", jnp.float32, 2, 1),
        ("ranking", jnp.float64, 3, 2),
        ("plackett_luce", jnp.float64, 2, 1),
        ("plackett_luce", jnp.float32, 3, 2),
    ],
)
def test_product_law_matches_the_product_formulas(kind, dtype, k, ell):
    pop, _ = population(kind, dtype)
    pi, sigma = jnp.asarray(PI, dtype), jnp.asarray(SIGMA, dtype)
    mine, theirs = ua.product_law(pi, k), ua.product_law(sigma, ell)
    expected = ua.win_rate(pop, pi, k, sigma, ell)
    tol = TOLERANCE[dtype]
    for got in (
        ua.win_rate(pop, mine, k, sigma, ell),
        ua.win_rate(pop, pi, k, theirs, ell),
        ua.win_rate(pop, mine, k, theirs, ell),
    ):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, atol=tol, rtol=0)
    robust = ua.robust_win_rate(pop, mine, k, ell)
    assert robust.dtype == dtype
    np.testing.assert_allclose(robust, ua.robust_win_rate(pop, pi, k, ell), atol=tol, rtol=0)


def test_product_law_of_a_mixture_is_the_mixture():
    pop, _ = population("ranking", jnp.float64)
    mix = ua.ProductMixture(jnp.asarray(np.stack([PI, SIGMA])), jnp.array([0.25, 0.75]))
    law = ua.product_law(mix, 2)
    assert law.tuples.shape == (10, 2)  # C(4 + 1, 2) multisets
    np.testing.assert_allclose(jnp.sum(law.tuple_weights), 1.0, atol=1e-12)
    np.testing.assert_allclose(law.marginal(4), mix.marginal(), atol=1e-12)
    for ell in (1, 2):
        np.testing.assert_allclose(
            ua.win_rate(pop, law, 2, jnp.asarray(PI), ell),
            ua.win_rate(pop, mix, 2, jnp.asarray(PI), ell),
            atol=1e-12,
        )
        np.testing.assert_allclose(
            ua.robust_win_rate(pop, law, 2, ell), ua.robust_win_rate(pop, mix, 2, ell), atol=1e-12
        )


# --------------------------------------------------------------------------- brute force


@pytest.mark.parametrize("kind", ["ranking", "plackett_luce"])
def test_correlated_law_matches_enumerated_users_and_pools(kind):
    pop, params = population(kind, jnp.float64, seed=11)
    rules, weights = brute_rules(kind, params, pop.weights)
    law = ua.KOutputPolicy(TUPLES, ALPHA)
    other = ua.KOutputPolicy(np.array([[3], [1]]), np.array([2.0, 1.0]))  # a 1-output law

    def against_product(tup, policy, ell):
        return sum(
            prob * pool_share(rules, weights, tup, opp)
            for opp, prob in bf.tuples_with_prob(policy, ell)
        )

    for ell in (1, 2):
        expected = sum(
            a * against_product(t, SIGMA, ell) for t, a in zip(TUPLES, ALPHA, strict=True)
        )
        got = ua.win_rate(pop, law, 2, jnp.asarray(SIGMA), ell)
        np.testing.assert_allclose(got, expected, atol=1e-10, rtol=0)
        # the law as the opponent: constant sum
        reverse = ua.win_rate(pop, jnp.asarray(SIGMA), ell, law, 2)
        np.testing.assert_allclose(reverse, 1.0 - expected, atol=1e-10, rtol=0)
        worst = min(
            sum(a * pool_share(rules, weights, t, opp) for t, a in zip(TUPLES, ALPHA, strict=True))
            for opp in itertools.combinations_with_replacement(range(4), ell)
        )
        np.testing.assert_allclose(ua.robust_win_rate(pop, law, 2, ell), worst, atol=1e-10)
    beta = np.array([2.0, 1.0]) / 3
    expected = sum(
        a * b * pool_share(rules, weights, t, s)
        for t, a in zip(TUPLES, ALPHA, strict=True)
        for s, b in zip([[3], [1]], beta, strict=True)
    )
    np.testing.assert_allclose(ua.win_rate(pop, law, 2, other, 1), expected, atol=1e-10)
    # ell = 1: R = 1 − max_y WR(δ_y, A), the pick probability of y against the law
    single = max(float(ua.win_rate(pop, jnp.eye(4)[y], 1, law, 2)) for y in range(4))
    np.testing.assert_allclose(ua.robust_win_rate(pop, law, 2), 1.0 - single, atol=1e-12)


def test_pool_shares_on_a_dense_game_match_its_users():
    pop, params = population("ranking", jnp.float64, seed=5)
    rules, weights = brute_rules("ranking", params, pop.weights)
    game = ua.DenseGame(ua.win_tensor(pop, 3))
    law = ua.KOutputPolicy(TUPLES, ALPHA)
    np.testing.assert_allclose(
        ua.win_rate(game, law, 2, jnp.asarray(SIGMA)),
        ua.win_rate(pop, law, 2, jnp.asarray(SIGMA)),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        ua.robust_win_rate(game, law, 2), ua.robust_win_rate(pop, law, 2), atol=1e-12
    )
    shares = game.pool_shares(jnp.asarray(TUPLES), jnp.arange(4)[:, None])
    expected = [[pool_share(rules, weights, t, [y]) for y in range(4)] for t in TUPLES]
    np.testing.assert_allclose(shares, expected, atol=1e-12)
    with pytest.raises(ValueError, match="k \\+ ell = 4 does not match"):
        ua.win_rate(game, law, 2, jnp.asarray(SIGMA), 2)


# --------------------------------------------------------------------------- T2


def test_uniform_k_sets_on_impartial_culture_give_the_t2_numbers():
    # R_{2,1} of 2 distinct responses, uniformly: 2/3 + 1/(6n) = 7/10, 25/36, 29/42
    for n, exact in [(5, 7 / 10), (6, 25 / 36), (7, 29 / 42)]:
        pop = ua.impartial_culture(n)
        assert pop.num_users == np.prod(range(1, n + 1))  # all n! orders, equal weight
        rate = float(ua.robust_win_rate(pop, ua.uniform_k_sets(n, 2), 2))
        assert abs(rate - exact) < 1e-12
        assert 2 / 3 < rate < 2 / 3 + 2 / (3 * n)  # beats k/(k+1), below the cap
    # k = 4, n = 5: the closed form k/(k+1) + (k−1)/(2n(k+1)) = 4/5 + 3/50
    rate = float(ua.robust_win_rate(ua.impartial_culture(5), ua.uniform_k_sets(5, 4), 4))
    assert abs(rate - 43 / 50) < 1e-12


@pytest.mark.parametrize(("n", "k"), [(5, 2), (4, 3)])
def test_no_k_output_method_beats_the_cap_on_impartial_culture(n, k):
    """The best law over k-multisets against single-output opponents, by a linear program:
    maximise t subject to Σ_S α_S share(S vs y) >= t for every y, α on the simplex."""
    optimize = pytest.importorskip("scipy.optimize")
    pop = ua.prepare(ua.impartial_culture(n))
    sets = np.array(list(itertools.combinations_with_replacement(range(n), k)))
    shares = np.asarray(pop.pool_shares(jnp.asarray(sets), jnp.arange(n)[:, None]))  # [S, n]
    num_sets = len(sets)
    objective = np.zeros(num_sets + 1)
    objective[-1] = -1.0
    result = optimize.linprog(
        objective,
        A_ub=np.hstack([-shares.T, np.ones((n, 1))]),
        b_ub=np.zeros(n),
        A_eq=np.hstack([np.ones((1, num_sets)), np.zeros((1, 1))]),
        b_eq=[1.0],
        bounds=[(0, None)] * num_sets + [(None, None)],
        method="highs",
    )
    assert result.status == 0
    best = -result.fun
    assert best <= k / (k + 1) + k / (n * (k + 1))  # the cap of T2
    # exactly k/(k+1) + (k−1)/(2n(k+1)), 1/(2n) below the cap, attained by uniformly random k
    # distinct responses (docs/theory.md §4, T2)
    np.testing.assert_allclose(best, k / (k + 1) + (k - 1) / (2 * n * (k + 1)), atol=1e-9)
    uniform_sets = float(ua.robust_win_rate(pop, ua.uniform_k_sets(n, k), k))
    np.testing.assert_allclose(best, uniform_sets, atol=1e-9)
    law = ua.KOutputPolicy(sets, np.maximum(result.x[:-1], 0.0))
    np.testing.assert_allclose(ua.robust_win_rate(pop, law, k), best, atol=1e-9)


def test_uniform_k_sets_on_a_subset():
    law = ua.uniform_k_sets(6, 2, responses=[5, 1, 3])
    assert sorted(map(tuple, law.tuples.tolist())) == [(1, 3), (1, 5), (3, 5)]
    np.testing.assert_allclose(law.marginal(6), [0, 1 / 3, 0, 1 / 3, 0, 1 / 3], atol=1e-12)
    pop = ua.impartial_culture(6)
    # an opponent naming a response outside the subset makes 3 distinct, symmetric responses:
    # restricted to 3 of the 6, the law gains nothing over k/(k+1)
    assert abs(float(ua.robust_win_rate(pop, law, 2)) - 2 / 3) < 1e-12


# --------------------------------------------------------------------------- validation


def test_bad_laws_are_refused_with_the_argument_named():
    pop, _ = population("ranking", jnp.float64)
    law = ua.KOutputPolicy(TUPLES, ALPHA)
    sigma = jnp.asarray(SIGMA)
    with pytest.raises(ValueError, match="k=3 does not match policy"):
        ua.win_rate(pop, law, 3, sigma)
    with pytest.raises(ValueError, match="k=1 does not match policy"):
        ua.robust_win_rate(pop, law, 1, 2)
    with pytest.raises(ValueError, match="ell=1 does not match opponent"):
        ua.win_rate(pop, sigma, 2, law, 1)
    with pytest.raises(ValueError, match="policy.tuples must hold response indices in \\[0, 4\\)"):
        ua.win_rate(pop, ua.KOutputPolicy(TUPLES + 1, ALPHA), 2, sigma)
    with pytest.raises(ValueError, match="tuples must hold response indices >= 0"):
        ua.KOutputPolicy(-TUPLES, ALPHA)
    with pytest.raises(ValueError, match="tuples must hold integer response indices"):
        ua.KOutputPolicy(TUPLES.astype(float), ALPHA)
    with pytest.raises(ValueError, match="tuples must have shape"):
        ua.KOutputPolicy(np.array([0, 1]))
    with pytest.raises(ValueError, match="weights must be nonnegative"):
        ua.KOutputPolicy(TUPLES, -ALPHA)
    with pytest.raises(ValueError, match="weights must not be all zero"):
        ua.KOutputPolicy(TUPLES, 0 * ALPHA)
    with pytest.raises(ValueError, match="one entry per tuple"):
        ua.KOutputPolicy(TUPLES, ALPHA[:3])
    with pytest.raises(ValueError, match="do not broadcast"):
        ua.KOutputPolicy(np.stack([TUPLES] * 2), np.stack([ALPHA] * 3))
    negative = eqx.tree_at(lambda a: a.weights, law, -law.weights)
    with pytest.raises(ValueError, match="policy.weights must be nonnegative"):
        ua.robust_win_rate(pop, negative, 2)
    with pytest.raises(ValueError, match="KOutputPolicy .* win_rate and robust_win_rate"):
        ua.exploitability(pop, law, 2)
    with pytest.raises(ValueError, match="k=3 exceeds the 2 responses"):
        ua.uniform_k_sets(4, 3, responses=[0, 1])
    with pytest.raises(ValueError, match="responses must be distinct"):
        ua.uniform_k_sets(4, 2, responses=[0, 0, 1])
    with pytest.raises(ValueError, match="exceed"):
        ua.product_law(jnp.full(60, 1 / 60), 6)
    sampled = ua.SampledPopulation(lambda key, num: jnp.zeros((num, 4)), lambda u, p: p, 4)
    with pytest.raises(ValueError, match="exact values are not available"):
        ua.robust_win_rate(sampled, law, 2)


# --------------------------------------------------------------------------- pytrees, batching


def test_law_under_jit_vmap_and_tree_operations():
    pop, _ = population("ranking", jnp.float64)
    law = ua.KOutputPolicy(TUPLES, ALPHA)
    sigma = jnp.asarray(SIGMA)
    expected = ua.win_rate(pop, law, 2, sigma, 2)
    traced = jax.jit(lambda a: ua.win_rate(pop, a, 2, sigma, 2))
    np.testing.assert_allclose(traced(law), expected, atol=1e-12)
    doubled = eqx.tree_at(lambda a: a.weights, law, 2 * law.weights)  # normalised where used
    np.testing.assert_allclose(ua.win_rate(pop, doubled, 2, sigma, 2), expected, atol=1e-12)
    np.testing.assert_allclose(traced(doubled), expected, atol=1e-12)
    robust = jax.vmap(lambda w: ua.robust_win_rate(pop, ua.KOutputPolicy(TUPLES, w), 2))
    alphas = jnp.stack([jnp.asarray(ALPHA), jnp.eye(4)[1]])
    got = robust(alphas)
    for row, alpha in zip(got, alphas, strict=True):
        np.testing.assert_allclose(row, ua.robust_win_rate(pop, ua.KOutputPolicy(TUPLES, alpha), 2))
    outside = jax.jit(lambda t: ua.win_rate(pop, ua.KOutputPolicy(t, ALPHA), 2, sigma))
    with pytest.raises(Exception, match="policy.tuples hold indices outside"):
        jax.block_until_ready(outside(jnp.asarray(TUPLES) + 1))


def test_laws_batched_over_prompts():
    pop_a, _ = population("ranking", jnp.float64, seed=1)
    pop_b, _ = population("plackett_luce", jnp.float64, seed=2)
    pop_b = ua.RankingPopulation(pop_b.log_weights, pop_b.weights)  # same kind, to stack
    pops = jax.tree.map(lambda a, b: jnp.stack([a, b]), pop_a, pop_b)
    first = ua.KOutputPolicy(TUPLES, ALPHA)
    second = ua.uniform_k_sets(4, 2)
    laws = ua.KOutputPolicy(np.stack([TUPLES, second.tuples[:4]]), np.stack([ALPHA, ALPHA]))
    shared = ua.KOutputPolicy(TUPLES, jnp.stack([ALPHA, jnp.asarray(ALPHA[::-1])]))
    assert laws.batch_shape == shared.batch_shape == (2,)
    sigma = jnp.asarray(SIGMA)
    for ell in (1, 2):
        rates = ua.win_rate(pops, laws, 2, sigma, ell)
        robust = ua.robust_win_rate(pops, laws, 2, ell)
        assert rates.shape == robust.shape == (2,)
        for i, pop in enumerate((pop_a, pop_b)):
            one = ua.KOutputPolicy(laws.tuples[i], laws.weights[i])
            np.testing.assert_allclose(rates[i], ua.win_rate(pop, one, 2, sigma, ell), atol=1e-12)
            np.testing.assert_allclose(robust[i], ua.robust_win_rate(pop, one, 2, ell), atol=1e-12)
    against = ua.win_rate(pop_a, shared, 2, first, 2)  # laws on both sides, one batched
    for i in range(2):
        one = ua.KOutputPolicy(TUPLES, shared.weights[i])
        np.testing.assert_allclose(against[i], ua.win_rate(pop_a, one, 2, first, 2), atol=1e-12)
    stacked = jax.tree.map(
        lambda a, b: jnp.stack([a, b]), first, ua.KOutputPolicy(TUPLES, ALPHA[::-1])
    )
    assert stacked.batch_shape == (2,)
    np.testing.assert_allclose(ua.win_rate(pop_a, stacked, 2, first, 2), against, atol=1e-12)
    np.testing.assert_allclose(ua.win_rate(pop_a, first, 2, first, 2), 0.5, atol=1e-12)
