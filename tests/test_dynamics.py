"""The learning dynamics (dynamics.py): conformance of every named dynamic and wrapper, the
registry behind ``solve``'s method names, and single steps against their formulas."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ualign_jax as ua

from ._inputs import SMALL

DYNAMICS = {
    "hedge": ua.hedge(0.3),
    "anytime_hedge": ua.hedge(ua.dynamics.anytime_hedge_rate(4)),
    "optimistic_hedge": ua.optimistic_hedge(1.0),
    "optimistic_gradient": ua.optimistic_gradient(),
    "extragradient": ua.extragradient(),
    "extragradient_entropy": ua.extragradient(geometry="entropy"),
    "extragradient_fixed": ua.extragradient(0.5, adaptive=False),
    "regret_matching_plus": ua.regret_matching_plus(),
    "logit_adam": ua.logit_gradient(optax.adam(0.1)),
    "kl_hedge": ua.kl_regularised(ua.hedge(0.3), tau=0.05),
    "optimistic_wrapper_rm_plus": ua.dynamics.optimistic(ua.regret_matching_plus()),
    "averaged_extragradient": ua.dynamics.averaged(ua.extragradient()),
}


@pytest.mark.parametrize("name", sorted(DYNAMICS))
def test_every_dynamic_passes_the_conformance_check(name):
    ua.testing.check_dynamics(DYNAMICS[name], SMALL)


def test_conformance_check_catches_a_broken_dynamic():
    broken = ua.Dynamics(
        ua.hedge(0.3).init, lambda s, f, t: (s._replace(policy=2 * s.policy), s.policy, f(s.policy))
    )
    with pytest.raises(AssertionError, match="simplex"):
        ua.testing.check_dynamics(broken, SMALL)


def test_methods_are_the_named_dynamics_registry():
    assert ua.METHODS == tuple(ua.dynamics.NAMED)
    assert ua.dynamics.named("hedge", 4, 100).name == ua.solve(SMALL, 2, "hedge", 100).method


def test_optimistic_hedge_plays_the_predicted_hedge_step():
    payoff = lambda p: np.asarray(ua.response_payoffs(SMALL, jnp.asarray(p), 2))
    eta, cumulative, last = 0.4, np.zeros(4), np.zeros(4)
    dyn = ua.optimistic_hedge(eta)
    state = dyn.init(jnp.full(4, 0.25))
    for t in range(1, 6):
        state, played, g = dyn.step(state, lambda p: ua.response_payoffs(SMALL, p, 2), t)
        logits = eta * (cumulative + last)  # L_{t-1} + η g_{t-1}, L_0 = log(uniform) + const
        expected = np.exp(logits - logits.max())
        np.testing.assert_allclose(played, expected / expected.sum(), atol=1e-12)
        last = payoff(expected / expected.sum())
        cumulative += last


def test_averaged_wrapper_keeps_the_running_mean_of_played_policies():
    dyn = ua.dynamics.averaged(ua.hedge(0.4))
    state, seen = dyn.init(jnp.full(4, 0.25)), []
    for t in range(1, 5):
        state, played, _ = dyn.step(state, lambda p: ua.response_payoffs(SMALL, p, 2), t)
        seen.append(played)
    np.testing.assert_allclose(state.policy, np.mean(seen, axis=0), atol=1e-12)
