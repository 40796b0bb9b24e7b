"""Conformance checks that every learning dynamic must pass (in the spirit of pgx's api_test)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .dynamics import Dynamics
from .payoffs import single_policy_payoffs
from .policies import uniform_policy

__all__ = ["check_dynamics"]


def check_dynamics(dynamics: Dynamics, pop, k: int = 2, steps: int = 8) -> None:
    """Raise ``AssertionError`` unless ``dynamics`` behaves as the driver expects on ``pop``.

    Checks: ``init``/``step`` return a NamedTuple state with a ``policy`` field; shapes and
    dtypes are kept; every policy (iterate and played) stays on the simplex and finite; payoffs
    equal the oracle's at the played policy; a jitted ``lax.scan`` of steps matches eager steps;
    and the step vmaps over a batch of starting policies.
    """
    n = pop.num_responses
    dtype = pop.dtype

    def payoff_fn(policy):
        return single_policy_payoffs(pop, policy, k)

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
