"""Win rates, exploitability and robust win rates against brute-force enumeration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua

from . import brute_force as bf
from .test_payoffs import random_policy, random_population


@pytest.mark.parametrize("kind", ["ranking", "plackett_luce"])
@pytest.mark.parametrize(("k", "ell"), [(1, 1), (3, 1), (1, 3), (2, 2), (3, 2)])
def test_win_rate_matches_brute_force(kind, k, ell):
    pop, rules, weights = random_population(kind, seed=10 * k + ell)
    mine, theirs = random_policy(k), random_policy(ell + 20, zeros=0)
    expected = bf.win_rate(rules, weights, mine, k, theirs, ell)
    got = ua.win_rate(pop, jnp.asarray(mine), k, jnp.asarray(theirs), ell)
    np.testing.assert_allclose(got, expected, atol=1e-10, rtol=0)
    reverse = ua.win_rate(pop, jnp.asarray(theirs), ell, jnp.asarray(mine), k)
    np.testing.assert_allclose(got + reverse, 1.0, atol=1e-10)


def test_win_rate_on_dense_games_and_mixtures():
    pop, rules, weights = random_population("ranking", seed=3)
    a, b, c = random_policy(1), random_policy(2, zeros=0), random_policy(3)
    game = ua.DenseGame(ua.win_tensor(pop, 4))
    expected = bf.win_rate(rules, weights, a, 2, b, 2)
    np.testing.assert_allclose(
        ua.win_rate(game, jnp.asarray(a), 2, jnp.asarray(b), 2), expected, atol=1e-10
    )
    mix = ua.ProductMixture(jnp.stack([jnp.asarray(a), jnp.asarray(c)]), jnp.array([0.4, 0.6]))
    expected_mix = 0.4 * expected + 0.6 * bf.win_rate(rules, weights, c, 2, b, 2)
    np.testing.assert_allclose(
        ua.win_rate(pop, mix, 2, jnp.asarray(b), 2), expected_mix, atol=1e-10
    )


@pytest.mark.parametrize("kind", ["ranking", "plackett_luce"])
@pytest.mark.parametrize(("k", "ell"), [(1, 1), (4, 1), (2, 2), (3, 3)])
def test_robust_win_rate_matches_brute_force(kind, k, ell):
    pop, rules, weights = random_population(kind, seed=k + 7 * ell)
    policy = random_policy(k + ell)
    expected = bf.robust_win_rate(rules, weights, policy, k, ell)
    got = ua.robust_win_rate(pop, jnp.asarray(policy), k, ell)
    np.testing.assert_allclose(got, expected, atol=1e-10, rtol=0)
    bounds = ua.robust_win_rate_bounds(pop, jnp.asarray(policy), k, ell)
    assert bounds.lower <= expected + 1e-12
    assert expected <= bounds.upper + 1e-12


def test_robust_win_rate_on_dense_game():
    pop, rules, weights = random_population("ranking", seed=5)
    policy = random_policy(5)
    game = ua.DenseGame(ua.win_tensor(pop, 4))
    expected = bf.robust_win_rate(rules, weights, policy, 2, 2)
    np.testing.assert_allclose(
        ua.robust_win_rate(game, jnp.asarray(policy), 2, 2), expected, atol=1e-10
    )


def test_exploitability_and_uniform_equilibrium_on_impartial_culture():
    pop = ua.impartial_culture(4)
    uniform = ua.uniform_policy(4, jnp.float64)
    point = jnp.eye(4, dtype=jnp.float64)[0]
    for k in (1, 2, 5):
        assert abs(float(ua.exploitability(pop, uniform, k))) < 1e-12
        # Against k copies of one response, any other response wins half the users outright.
        np.testing.assert_allclose(ua.exploitability(pop, point, k), 0.5 - 1 / (k + 1), atol=1e-12)


def test_robust_limit_searches_concrete_inputs_and_names_the_limit_under_jit():
    pop = ua.RankingPopulation(jnp.arange(60.0)[None, :])
    uniform = ua.uniform_policy(60, jnp.float64)
    searched = ua.robust_win_rate(pop, uniform, 2, 3, max_opponents=1000)  # C(62, 3) = 37,820
    np.testing.assert_allclose(searched, ua.robust_win_rate(pop, uniform, 2, 3), atol=1e-12)
    traced = jax.jit(lambda p: ua.robust_win_rate(pop, p, 2, 3, max_opponents=1000))
    with pytest.raises(ValueError, match=r"max_opponents=1,000.*robust_win_rate_bounds"):
        traced(uniform)
    bounds = ua.robust_win_rate_bounds(pop, uniform, 2, 3)
    assert 0.0 <= bounds.lower <= searched + 1e-12 and searched - 1e-12 <= bounds.upper <= 1.0
