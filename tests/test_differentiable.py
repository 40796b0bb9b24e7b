"""jax.grad through solve: implicit differentiation at the equilibrium (docs/theory.md §9)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua

UTILITIES = jnp.array(
    [[3.0, 2.0, 1.0, 0.0], [0.0, 3.0, 2.0, 1.0], [1.0, 0.0, 3.0, 2.0], [2.0, 1.0, 0.0, 3.0]]
)
WEIGHTS = jnp.array([0.3, 0.3, 0.2, 0.2])
# Four Plackett–Luce types on a cycle (strong preferences): an interior equilibrium at k = 2.
LOG_WEIGHTS = 3.0 * UTILITIES + jnp.array([0.1, -0.2, 0.3, 0.0])
TYPE_WEIGHTS = jnp.array([0.3, 0.3, 0.2, 0.2])
READOUT = jnp.array([1.0, -2.0, 0.5, 0.3])  # the scalar differentiated: <c, π*>


def _policy(pop, k=2, method="optimistic_gradient", **options):
    return ua.solve(pop, k, method=method, steps=3000, tol=1e-13, **options).policy


def _central_differences(f, x, h=1e-5):
    flat = np.zeros(x.size)
    for i in range(x.size):
        e = jnp.zeros(x.size).at[i].set(h).reshape(x.shape)
        flat[i] = (float(f(x + e)) - float(f(x - e))) / (2 * h)
    return flat.reshape(x.shape)


def _check_against_differences(f, x):
    grad = jax.grad(f)(x)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, _central_differences(f, x), rtol=1e-6, atol=1e-7)
    assert float(jnp.max(jnp.abs(grad))) > 1e-2  # a nontrivial derivative


def test_the_equilibrium_is_interior():
    for pop in (
        ua.RankingPopulation(UTILITIES, WEIGHTS),
        ua.PlackettLucePopulation(LOG_WEIGHTS, TYPE_WEIGHTS),
    ):
        assert float(jnp.min(_policy(pop))) > 0.05


def test_ranking_gradient_wrt_weights_matches_finite_differences():
    _check_against_differences(
        lambda w: READOUT @ _policy(ua.RankingPopulation(UTILITIES, w)), WEIGHTS
    )


def test_ranking_gradient_wrt_utilities_is_zero_like_the_differences():
    # Rankings are piecewise constant in the utilities: the equilibrium does not move.
    f = lambda u: READOUT @ _policy(ua.RankingPopulation(u, WEIGHTS))
    grad = jax.grad(f)(UTILITIES)
    np.testing.assert_array_equal(grad, np.zeros_like(grad))
    np.testing.assert_allclose(_central_differences(f, UTILITIES), 0.0, atol=1e-9)


def test_plackett_luce_gradients_match_finite_differences():
    _check_against_differences(
        lambda s: READOUT @ _policy(ua.PlackettLucePopulation(s, TYPE_WEIGHTS)), LOG_WEIGHTS
    )
    _check_against_differences(
        lambda w: READOUT @ _policy(ua.PlackettLucePopulation(LOG_WEIGHTS, w)), TYPE_WEIGHTS
    )


def test_dense_game_gradient_through_its_win_tensor():
    def f(s):
        game = ua.DenseGame(ua.win_tensor(ua.PlackettLucePopulation(s, TYPE_WEIGHTS), 3))
        return READOUT @ _policy(game)

    _check_against_differences(f, LOG_WEIGHTS)
    pl = lambda s: READOUT @ _policy(ua.PlackettLucePopulation(s, TYPE_WEIGHTS))
    np.testing.assert_allclose(jax.grad(f)(LOG_WEIGHTS), jax.grad(pl)(LOG_WEIGHTS), atol=1e-9)


def test_kl_regularised_equilibrium_gradient():
    _check_against_differences(
        lambda w: READOUT @ _policy(ua.RankingPopulation(UTILITIES, w), 1, tau=0.1), WEIGHTS
    )


@pytest.mark.parametrize("method", ua.METHODS)
def test_gradient_is_finite_for_every_method(method):
    pop = lambda w: ua.RankingPopulation(UTILITIES, w)
    grad = jax.grad(lambda w: READOUT @ ua.solve(pop(w), 2, method, 300).policy)(WEIGHTS)
    assert np.all(np.isfinite(grad)), grad
    # The gradient is that of the equilibrium, not of the method's path: every method whose
    # run reached it agrees (Hedge's decaying steps stop short of it in 300 steps).
    if float(ua.solve(pop(WEIGHTS), 2, method, 300).trace.exploitability[-1]) < 1e-12:
        exact = jax.grad(lambda w: READOUT @ _policy(pop(w)))(WEIGHTS)
        np.testing.assert_allclose(grad, exact, rtol=1e-6, atol=1e-8)


def test_gradient_under_jit_and_over_prompt_axes():
    stacked = jnp.stack([WEIGHTS, jnp.array([0.4, 0.1, 0.3, 0.2])])
    per_prompt = jnp.stack([UTILITIES, UTILITIES[::-1]])

    def total(w):
        return jnp.sum(READOUT * _policy(ua.RankingPopulation(per_prompt, w)))

    grad = jax.jit(jax.grad(total))(stacked)
    for i in range(2):
        pop = lambda w, u=per_prompt[i]: ua.RankingPopulation(u, w)
        single = jax.grad(lambda w, pop=pop: READOUT @ _policy(pop(w)))
        np.testing.assert_allclose(grad[i], single(stacked[i]), atol=1e-9)


def test_adaptive_steps_differentiate_through_a_zero_difference():
    # Unrolled steps of the default dynamic: its first step compares equal points (the norm of
    # a zero vector), whose derivative is NaN unless guarded.
    def unrolled(w):
        pop = ua.RankingPopulation(UTILITIES, w)
        dyn = ua.optimistic_gradient()
        state = dyn.init(jnp.full(4, 0.25))
        for t in range(1, 4):
            state, _, _ = dyn.step(state, lambda p: ua.response_payoffs(pop, p, 2), t)
        return READOUT @ state.policy

    assert np.all(np.isfinite(jax.grad(unrolled)(WEIGHTS)))
