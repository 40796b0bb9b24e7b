"""solve's options: adjoint= (implicit or unrolled), Outcome and throw=, and kinks/degeneracy."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua

UTILITIES = jnp.array(
    [[3.0, 2.0, 1.0, 0.0], [0.0, 3.0, 2.0, 1.0], [1.0, 0.0, 3.0, 2.0], [2.0, 1.0, 0.0, 3.0]]
)
WEIGHTS = jnp.array([0.3, 0.3, 0.2, 0.2])  # an interior equilibrium at k = 2
READOUT = jnp.array([1.0, -2.0, 0.5, 0.3])
SUSHI = Path(ua.__file__).parent / "bundled" / "00014-00000001.soc"


def _degenerate(k, dtype=jnp.float64):
    """Two user types, weights ``k : 1``, preferring ``a`` resp. ``z``: ``δ_a`` is the
    equilibrium and ``u_k(z, δ_a) = 1/(k+1)`` exactly, a zero gap at probability 0."""
    return ua.RankingPopulation(
        jnp.array([[1.0, 0.0], [0.0, 1.0]], dtype), jnp.array([float(k), 1.0], dtype)
    )


def _central_differences(f, x, h=1e-6):
    out = np.zeros(x.size)
    for i in range(x.size):
        e = jnp.zeros(x.size).at[i].set(h)
        out[i] = (float(f(x + e)) - float(f(x - e))) / (2 * h)
    return out


# --------------------------------------------------------------------------- adjoint=


def test_the_default_adjoint_is_the_implicit_one():
    def readout(w, **options):
        pop = ua.RankingPopulation(UTILITIES, w)
        return READOUT @ ua.solve(pop, 2, steps=3000, tol=1e-13, **options).policy

    default = jax.grad(readout)(WEIGHTS)
    explicit = jax.grad(lambda w: readout(w, adjoint=ua.ImplicitAdjoint()))(WEIGHTS)
    np.testing.assert_array_equal(default, explicit)
    assert float(jnp.max(jnp.abs(default))) > 1e-2


def test_unrolled_adjoint_is_the_derivative_of_the_iterate_that_ran():
    """Hedge with a fixed step for 40 steps is far from the equilibrium: the unrolled gradient
    is that of the 40th iterate (central differences agree), the implicit one is not."""
    method = ua.hedge(0.5)

    def readout(w, adjoint):
        pop = ua.RankingPopulation(UTILITIES, w)
        return READOUT @ ua.solve(pop, 2, method, steps=40, adjoint=adjoint).policy

    unrolled = jax.grad(lambda w: readout(w, ua.UnrolledAdjoint()))(WEIGHTS)
    differences = _central_differences(lambda w: readout(w, ua.UnrolledAdjoint()), WEIGHTS)
    np.testing.assert_allclose(unrolled, differences, rtol=1e-6, atol=1e-8)
    implicit = jax.grad(lambda w: readout(w, ua.ImplicitAdjoint()))(WEIGHTS)
    assert float(jnp.max(jnp.abs(unrolled - implicit))) > 1e-3


def test_unrolled_adjoint_meets_the_implicit_one_at_a_converged_run():
    method = ua.extragradient(0.5, adaptive=False)

    def readout(w, adjoint, steps):
        pop = ua.RankingPopulation(UTILITIES, w)
        return READOUT @ ua.solve(pop, 2, method, steps=steps, adjoint=adjoint).policy

    unrolled = jax.grad(lambda w: readout(w, ua.UnrolledAdjoint(), 600))(WEIGHTS)
    implicit = jax.grad(lambda w: readout(w, ua.ImplicitAdjoint(), 600))(WEIGHTS)
    np.testing.assert_allclose(unrolled, implicit, rtol=1e-6, atol=1e-9)


def test_unrolled_adjoint_over_prompts_under_jit():
    weights = jnp.stack([WEIGHTS, jnp.array([0.4, 0.1, 0.3, 0.2])])
    utilities = jnp.stack([UTILITIES, UTILITIES[::-1]])

    def total(w):
        sol = ua.solve(
            ua.RankingPopulation(utilities, w), 2, steps=20, adjoint=ua.UnrolledAdjoint()
        )
        return jnp.sum(READOUT * sol.policy)

    grad = jax.jit(jax.grad(total))(weights)
    for i in range(2):
        one = lambda w, i=i: (
            READOUT
            @ ua.solve(
                ua.RankingPopulation(utilities[i], w), 2, steps=20, adjoint=ua.UnrolledAdjoint()
            ).policy
        )
        np.testing.assert_allclose(grad[i], jax.grad(one)(weights[i]), rtol=1e-10, atol=1e-12)


def test_bad_adjoints_are_refused():
    pop = ua.RankingPopulation(UTILITIES, WEIGHTS)
    with pytest.raises(ValueError, match="adjoint must be an AbstractAdjoint"):
        ua.solve(pop, 2, steps=5, adjoint="implicit")
    with pytest.raises(ValueError, match="use tol=None and no checkpoint"):
        ua.solve(pop, 2, steps=5, tol=1e-6, adjoint=ua.UnrolledAdjoint())
    with pytest.raises(ValueError, match="use tol=None and no checkpoint"):
        ua.solve(pop, 2, steps=5, checkpoint="x.npz", adjoint=ua.UnrolledAdjoint())


# --------------------------------------------------------------------------- Outcome and throw=


def test_outcomes_are_an_enumeration_in_the_order_of_the_codes():
    assert ua.OUTCOMES == tuple(member.name for member in ua.Outcome)
    assert [int(member) for member in ua.Outcome] == list(range(len(ua.OUTCOMES)))
    assert ua.Outcome.successful == 0
    messages = [member.message for member in ua.Outcome]
    assert all(messages) and len(set(messages)) == len(messages)
    sol = ua.solve(ua.RankingPopulation(UTILITIES, WEIGHTS), 2, steps=3, tol=1e-12)
    assert ua.Outcome(int(sol.outcome)) is ua.Outcome.max_steps_reached
    assert str(sol.outcome_name) == ua.Outcome.max_steps_reached.name


def test_throw_raises_eagerly_with_the_outcome_message():
    pop = ua.RankingPopulation(UTILITIES, WEIGHTS)
    quiet = ua.solve(pop, 2, steps=3, tol=1e-12)  # the default does not raise
    assert int(quiet.outcome) == ua.Outcome.max_steps_reached
    message = ua.Outcome.max_steps_reached.message
    with pytest.raises(RuntimeError, match=f"max_steps_reached: {message}"):
        ua.solve(pop, 2, steps=3, tol=1e-12, throw=True)
    reached = ua.solve(pop, 2, steps=3000, tol=1e-12, throw=True)
    np.testing.assert_array_equal(reached.policy, ua.solve(pop, 2, steps=3000, tol=1e-12).policy)
    with pytest.raises(ValueError, match="throw must be True or False"):
        ua.solve(pop, 2, steps=3, throw=1)


def test_throw_under_jit_raises_when_the_program_runs():
    pop = ua.RankingPopulation(jnp.stack([UTILITIES, UTILITIES[::-1]]), jnp.stack([WEIGHTS] * 2))
    run = jax.jit(
        lambda p, throw: ua.solve(p, 2, steps=3, tol=1e-12, throw=throw).policy, static_argnums=1
    )
    run(pop, False)
    with pytest.raises(Exception, match="max_steps_reached"):
        jax.block_until_ready(run(pop, True))
    ok = jax.jit(lambda p: ua.solve(p, 2, steps=3000, tol=1e-12, throw=True).policy)(pop)
    assert np.all(np.isfinite(ok))


# --------------------------------------------------------------------------- degeneracy


@pytest.mark.parametrize(("dtype", "k"), [(jnp.float32, 2), (jnp.float64, 4)])
def test_a_degenerate_equilibrium_is_flagged(k, dtype):
    pop = _degenerate(k, dtype)
    z_payoff = ua.response_payoffs(pop, jnp.array([1.0, 0.0], dtype), k)[1]
    np.testing.assert_allclose(z_payoff, 1 / (k + 1), rtol=4 * jnp.finfo(dtype).eps)
    for tol in (None, 1e-5):
        sol = ua.solve(pop, k, steps=3000, tol=tol)
        assert float(sol.policy[0]) > 0.99
        assert bool(sol.degenerate) and sol.kinks.tolist() == [False, True]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_nondegenerate_equilibria_are_not_flagged(dtype):
    sushi = ua.load_preflib(SUSHI)
    sushi = ua.RankingPopulation(sushi.utilities.astype(dtype), sushi.weights.astype(dtype))
    tol = 1e-6 if dtype == jnp.float32 else 1e-12  # reached in 7 to 93 steps
    for k in (1, 4):  # k = 1: one response, gap 0.2; k = 4: five, gap 0.01, least share 0.064
        sol = ua.solve(sushi, k, steps=2000, tol=tol)
        assert sol.outcome_name == "successful" and not bool(sol.degenerate), (k, sol.kinks)
    interior = ua.solve(ua.RankingPopulation(UTILITIES.astype(dtype), WEIGHTS.astype(dtype)), 2)
    assert float(jnp.min(interior.policy)) > 0.05 and not bool(interior.degenerate)


def test_random_instances_are_not_flagged():
    utilities = jnp.asarray(np.random.default_rng(0).standard_normal((12, 30, 8)))
    sol = ua.solve(ua.RankingPopulation(utilities), 2, steps=1000)
    assert sol.degenerate.shape == (12,) and not bool(jnp.any(sol.degenerate))


def test_the_flag_is_batched_and_works_under_jit_and_vmap():
    degenerate, interior = _degenerate(2), ua.RankingPopulation(UTILITIES[:2, :2], WEIGHTS[:2])
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), degenerate, interior)
    expected = [True, bool(ua.solve(interior, 2).degenerate)]
    assert expected == [True, False]
    jitted = jax.jit(lambda p: ua.solve(p, 2).degenerate)(stacked)
    assert jitted.tolist() == expected
    weights = jnp.stack([degenerate.weights, interior.weights])
    utilities = jnp.stack([degenerate.utilities, interior.utilities])
    mapped = jax.vmap(lambda u, w: ua.solve(ua.RankingPopulation(u, w), 2).degenerate)(
        utilities, weights
    )
    assert mapped.tolist() == expected


def test_at_a_kink_the_implicit_gradient_is_the_one_sided_derivative_keeping_the_support():
    """docs/theory.md §9: at δ_a with z's gap 0, the gradient is the derivative of the branch
    whose support is {a} (the responses within δ of the best payoff): 0 here. Raising a's
    weight keeps that support (right derivative 0); lowering it lets z enter (left ≠ 0)."""
    k, h = 2, 1e-4
    readout = lambda w: ua.solve(
        ua.RankingPopulation(jnp.eye(2), w), k, steps=5000, tol=1e-14
    ).policy[1]
    w = jnp.array([float(k), 1.0])
    grad = jax.grad(readout)(w)
    np.testing.assert_array_equal(grad, np.zeros(2))
    e = jnp.array([h, 0.0])
    # One-sided differences from the exact value at the kink, π*_z = 0 (the run's own iterate
    # approaches it slowly there, like the distance sqrt(exploitability)).
    right = float(readout(w + e)) / h
    left = -float(readout(w - e)) / h
    assert abs(right) < 1e-6 and left < -0.1
