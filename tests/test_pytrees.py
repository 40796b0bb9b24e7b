"""Every pytree type the library exports gives the right answer or a clear error under
``jax.tree.map``, ``eqx.tree_at`` and stacking (no derived leaf can go stale)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua

UTILITIES = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [2.0, 2.0, 0.0]])
POP = ua.RankingPopulation(UTILITIES, [0.4, 0.3, 0.2, 0.1])
MIX = ua.ProductMixture(jnp.array([[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]), jnp.array([0.25, 0.75]))
K = 2


def test_mixture_weights_are_normalised_where_used():
    expected = ua.response_payoffs(POP, MIX, K)
    doubled = eqx.tree_at(lambda m: m.weights, MIX, 2 * MIX.weights)
    np.testing.assert_allclose(ua.response_payoffs(POP, doubled, K), expected, atol=1e-12)
    np.testing.assert_allclose(doubled.marginal(), MIX.marginal(), atol=1e-12)
    traced = jax.jit(lambda m: ua.response_payoffs(POP, m, K))
    np.testing.assert_allclose(traced(doubled), expected, atol=1e-12)
    for metric in (ua.exploitability, ua.robust_win_rate):
        np.testing.assert_allclose(metric(POP, doubled, K), metric(POP, MIX, K), atol=1e-12)
    np.testing.assert_allclose(
        ua.win_rate(POP, doubled, K, doubled, ell=2), ua.win_rate(POP, MIX, K, MIX, ell=2)
    )
    key = jax.random.key(0)
    np.testing.assert_allclose(
        ua.monte_carlo_payoffs(key, POP, doubled, K)[0], ua.monte_carlo_payoffs(key, POP, MIX, K)[0]
    )


def test_mixture_edits_off_the_simplex_are_refused():
    scaled = jax.tree.map(lambda x: 2 * x, MIX)  # policies no longer sum to 1
    with pytest.raises(ValueError, match="policy.policies must sum to 1"):
        ua.response_payoffs(POP, scaled, K)
    negative = eqx.tree_at(lambda m: m.weights, MIX, -MIX.weights)
    with pytest.raises(ValueError, match="policy.weights must be nonnegative"):
        ua.exploitability(POP, negative, K)


def test_stacked_mixtures_and_populations_are_prompt_axes():
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), MIX, MIX)
    assert stacked.batch_shape == (2,)
    got = ua.response_payoffs(POP, stacked, K)
    np.testing.assert_allclose(got[1], ua.response_payoffs(POP, MIX, K), atol=1e-12)
    pops = jax.tree.map(lambda a, b: jnp.stack([a, b]), ua.prepare(POP), ua.prepare(POP))
    np.testing.assert_allclose(ua.response_payoffs(pops, stacked, K), got, atol=1e-12)


def test_solution_mixture_keeps_zero_weight_slots_valid():
    sol = ua.solve(POP, K, steps=5000, tol=1e-3)  # stops early: unused slots have weight 0
    assert int(sol.num_steps) < 5000
    value = ua.robust_win_rate(POP, sol.mixture, K)
    assert 0.0 < float(value) <= 1.0


def test_payoff_function_is_a_pytree():
    fn = ua.payoff_function(POP, K)
    copy = jax.tree.map(lambda x: x, fn)
    pi = jnp.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(copy(pi), fn(pi), atol=1e-12)
    np.testing.assert_allclose(fn(pi), ua.response_payoffs(POP, pi, K), atol=1e-12)
