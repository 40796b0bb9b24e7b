"""Conformance checks every learning dynamic and every population kind must pass (in the spirit
of pgx's api_test): :func:`check_dynamics`, :func:`check_population`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .dynamics import Dynamics
from .payoffs import (
    count_form,
    count_form_payoffs,
    monte_carlo_payoffs,
    payoff_function,
    response_payoffs,
    win_tensor,
)
from .policies import uniform_policy
from .population import Population

__all__ = ["check_dynamics", "check_population"]


def _cast(pop, dtype):
    """``pop`` with its floating leaves cast to ``dtype`` (a pytree operation)."""
    return jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, pop
    )


def _test_policy(n: int, dtype, seed: int = 0):
    """A random interior policy with one exact zero (when n > 2): the edge cases of payoffs."""
    p = np.random.default_rng(seed).dirichlet(np.full(n, 5.0))
    if n > 2:
        p[1] = 0.0
        p = p / p.sum()
    return jnp.asarray(p, dtype)


def check_population(pop: Population, k: int | None = None, num_samples: int = 1024) -> None:
    """Raise ``AssertionError`` unless ``pop`` behaves as every function expects of a population.

    ``pop``: a small unbatched instance (a few users and responses). Checks: it is a
    :class:`~ualign_jax.Population` with consistent ``num_responses``, ``names``,
    ``batch_shape`` and ``dtype``; for exact kinds, ``u_k(·, π)`` has shape ``[n]`` and the
    population's dtype, lies in ``[0, 1]``, satisfies ``<π, u_k> = 1/(k+1)`` and equals the dense
    win tensor contracted with ``π`` and the count form; it is the same under ``jit``, under
    ``vmap`` over policies, through a ``jax.tree.map`` copy, when two copies are stacked on a
    prompt axis, and (when x64 is enabled) in float32 and float64; the prepared population
    (``pop.prepare()``) gives the same payoffs, eagerly and as a traced argument, and an edit of
    its data after preparing gives the edited population's own payoffs or raises (never the old
    ones); the Monte Carlo estimate agrees with it within 5 standard errors. Estimate-only
    kinds get the shape and ``jit`` check of ``monte_carlo_payoffs``.

    Example:
        >>> import ualign_jax as ua
        >>> check_population(ua.RankingPopulation([[2.0, 1.0, 0.0], [0.0, 2.0, 2.0]]))
    """
    assert isinstance(pop, Population), f"{type(pop).__name__} must subclass ua.Population"
    n = pop.num_responses
    assert isinstance(n, int) and n >= 1, f"num_responses must be a positive int, got {n!r}"
    assert pop.batch_shape == (), "check_population takes an unbatched population"
    assert pop.names is None or len(pop.names) == n, "names must hold num_responses entries"
    assert isinstance(pop.num_users, int) and pop.num_users >= 1, "num_users must be an int"
    k = (pop.num_players - 1 if pop.num_players is not None else 2) if k is None else k
    dtype = jnp.dtype(pop.dtype)
    policy = _test_policy(n, dtype)
    key = jax.random.key(0)
    estimate, error = monte_carlo_payoffs(key, pop, policy, k, num_samples)
    assert estimate.shape == error.shape == (n,), "monte_carlo_payoffs must return [n] twice"
    if not pop.exact:
        return

    tol = 1e-9 if dtype == jnp.float64 else 2e-6
    u = response_payoffs(pop, policy, k)
    assert u.shape == (n,) and u.dtype == dtype, f"payoffs have shape/dtype {u.shape} {u.dtype}"
    assert np.all(np.isfinite(u)) and u.min() >= -tol and u.max() <= 1 + tol, "payoffs in [0,1]"
    np.testing.assert_allclose(policy @ u, 1 / (k + 1), atol=tol, err_msg="<pi, u> = 1/(k+1)")
    assert np.all(np.abs(estimate - u) <= 5 * error + tol), "Monte Carlo disagrees with payoffs"
    if n ** (k + 1) <= 10**5:
        tensor = win_tensor(pop, k + 1)
        assert tensor.shape == (n,) * (k + 1), f"win tensor has shape {tensor.shape}"
        for _ in range(k):
            tensor = tensor @ policy
        np.testing.assert_allclose(tensor, u, atol=tol, err_msg="win tensor disagrees")
        form = count_form_payoffs(count_form(pop, k), policy)
        np.testing.assert_allclose(form, u, atol=tol, err_msg="count form disagrees")

    one_prompt = jax.jit(lambda p, x: payoff_function(p, k)(x))
    np.testing.assert_allclose(one_prompt(pop, policy), u, atol=tol, err_msg="under jit")
    policies = jnp.stack([policy, uniform_policy(n, dtype), _test_policy(n, dtype, seed=1)])
    mapped = jax.jit(jax.vmap(payoff_function(pop, k)))(policies)
    for row, x in zip(mapped, policies, strict=True):
        np.testing.assert_allclose(row, response_payoffs(pop, x, k), atol=tol, err_msg="vmap")
    copy = jax.tree.map(lambda a: a, pop)
    np.testing.assert_allclose(response_payoffs(copy, policy, k), u, atol=tol, err_msg="tree.map")
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), pop, copy)
    assert stacked.batch_shape == (2,), "stacking two populations must add a prompt axis"
    both = response_payoffs(stacked, jnp.stack([policy, policies[1]]), k)
    np.testing.assert_allclose(both[0], u, atol=tol, err_msg="stacked prompts")
    np.testing.assert_allclose(
        both[1], response_payoffs(pop, policies[1], k), atol=tol, err_msg="stacked prompts"
    )
    _check_prepared(pop, policy, k, u, tol)
    if jax.config.jax_enable_x64:
        other = jnp.float32 if dtype == jnp.float64 else jnp.float64
        cast = _cast(pop, other)
        assert jnp.dtype(cast.dtype) == other, "dtype must follow the leaves"
        moved = policy.astype(other)
        got = response_payoffs(cast, moved / jnp.sum(moved), k)
        assert got.dtype == other, "payoffs must follow the population's dtype"
        np.testing.assert_allclose(got, u, atol=2e-6, err_msg="float32 and float64 disagree")


def _check_prepared(pop: Population, policy, k: int, u, tol: float) -> None:
    """Prepared payoffs equal the plain ones; a stale prepared population is never silently
    wrong."""
    prepared = pop.prepare()
    assert prepared.prepared, "prepare() must return a prepared population"
    traced = jax.jit(lambda p, x: response_payoffs(p, x, k))
    for got, how in (
        (response_payoffs(prepared, policy, k), "eagerly"),
        (traced(prepared, policy), "traced"),
    ):
        np.testing.assert_allclose(got, u, atol=tol, err_msg=f"prepared population, {how}")
    if prepared is pop or not hasattr(pop, "table_field"):
        return  # nothing stored, or no data table to edit generically
    # Reverse the responses of the population's data table only (the derived leaves stay).
    data = getattr(pop, pop.table_field)
    edited = eqx.tree_at(lambda p: getattr(p, p.table_field), prepared, data[..., ::-1])
    expected = response_payoffs(edited.replace(), policy, k)  # rebuilt: nothing stored
    for call in (lambda: response_payoffs(edited, policy, k), lambda: traced(edited, policy)):
        try:
            got = call()
        except (ValueError, eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError):
            continue  # refused: fine
        np.testing.assert_allclose(got, expected, atol=tol, err_msg="stale prepared population")


def check_dynamics(dynamics: Dynamics, pop, k: int = 2, steps: int = 8) -> None:
    """Raise ``AssertionError`` unless ``dynamics`` behaves as the driver expects on ``pop``.

    Checks: ``init``/``step`` return a NamedTuple state with a ``policy`` field; shapes and
    dtypes are kept; every policy (iterate and played) stays on the simplex and finite; payoffs
    equal the oracle's at the played policy; a jitted ``lax.scan`` of steps matches eager steps;
    and the step vmaps over a batch of starting policies.
    """
    n = pop.num_responses
    dtype = pop.dtype

    payoff_fn = payoff_function(pop, k)

    start = uniform_policy(n, dtype)
    state = dynamics.init(start)
    assert hasattr(state, "_fields") and "policy" in state._fields, "state must be a NamedTuple"
    eager = []
    for t in range(1, steps + 1):
        state, played, g = dynamics.step(state, payoff_fn, jnp.asarray(t))
        for name, p in (("policy", state.policy), ("played", played)):
            p = np.asarray(p)
            assert p.shape == (n,) and p.dtype == dtype, (
                f"{name} has shape/dtype {p.shape} {p.dtype}"
            )
            assert np.all(np.isfinite(p)), f"{name} is not finite at step {t}"
            assert p.min() >= -1e-6 and abs(p.sum() - 1) < 1e-5, f"{name} left the simplex"
        np.testing.assert_allclose(
            g,
            payoff_fn(played),
            rtol=1e-5,
            atol=1e-6,
            err_msg="payoffs must be the oracle's at the played policy",
        )
        eager.append(np.asarray(played))

    def body(state, t):
        state, played, _ = dynamics.step(state, payoff_fn, t)
        return state, played

    _, scanned = jax.jit(lambda s: jax.lax.scan(body, s, jnp.arange(1, steps + 1)))(
        dynamics.init(start)
    )
    np.testing.assert_allclose(
        scanned,
        np.stack(eager),
        rtol=1e-4,
        atol=1e-6,
        err_msg="a jitted scan must match eager steps",
    )

    starts = jax.nn.softmax(jax.random.normal(jax.random.key(0), (3, n), dtype), axis=-1)
    batched = jax.vmap(lambda p: dynamics.step(dynamics.init(p), payoff_fn, jnp.asarray(1)))(starts)
    assert batched[1].shape == (3, n), "step must vmap over a batch of policies"
