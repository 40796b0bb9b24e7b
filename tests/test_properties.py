"""Invariants as property tests: <π, u_k(·,π)> = 1/(k+1), constant-sum, relabelling, tensors."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ualign_jax as ua

pytestmark = pytest.mark.property  # deselect with -m 'not property'

M, N = 4, 5  # one shape, so each property compiles once
SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def instances(draw):
    kind = draw(st.sampled_from(["ranking", "plackett_luce"]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    weights = rng.random(M) + 0.05
    if kind == "ranking":
        levels = draw(st.integers(1, N))  # 1 level: every response tied
        pop = ua.RankingPopulation(rng.integers(0, levels, (M, N)).astype(np.float64), weights)
    else:
        pop = ua.PlackettLucePopulation(rng.normal(size=(M, N)) * 2.0, weights)
    policy = rng.dirichlet(np.full(N, draw(st.sampled_from([0.1, 1.0, 10.0]))))
    zeros = rng.random(N) < draw(st.floats(0.0, 0.6))
    if zeros.all():
        zeros[0] = False
    policy = np.where(zeros, 0.0, policy)
    return pop, jnp.asarray(policy / policy.sum()), rng


@SETTINGS
@given(instances(), st.integers(1, 12))
def test_average_payoff_is_one_over_k_plus_one(instance, k):
    pop, policy, _ = instance
    u = ua.response_payoffs(pop, policy, k)
    np.testing.assert_allclose(policy @ u, 1 / (k + 1), atol=1e-9)
    assert np.all(u >= -1e-12) and np.all(u <= 1 + 1e-12)


@SETTINGS
@given(instances(), st.integers(1, 3), st.integers(1, 3))
def test_win_rate_is_constant_sum(instance, k, ell):
    pop, policy, rng = instance
    other = jnp.asarray(rng.dirichlet(np.ones(N)))
    total = ua.win_rate(pop, policy, k, other, ell) + ua.win_rate(pop, other, ell, policy, k)
    np.testing.assert_allclose(total, 1.0, atol=1e-9)


@SETTINGS
@given(instances(), st.integers(1, 6))
def test_relabelling_responses_and_users(instance, k):
    pop, policy, rng = instance
    perm_y, perm_i = rng.permutation(N), rng.permutation(M)
    params = pop.utilities if isinstance(pop, ua.RankingPopulation) else pop.log_weights
    relabelled = type(pop)(params[perm_i][:, perm_y], pop.weights[perm_i])
    u = ua.response_payoffs(pop, policy, k)
    np.testing.assert_allclose(
        ua.response_payoffs(relabelled, policy[perm_y], k), u[perm_y], atol=1e-12
    )


@settings(max_examples=10, deadline=None)
@given(instances(), st.integers(1, 3))
def test_win_tensor_contracted_with_policy_is_the_payoff(instance, k):
    pop, policy, _ = instance
    tensor = ua.win_tensor(pop, k + 1)
    for _ in range(k):
        tensor = tensor @ policy
    np.testing.assert_allclose(tensor, ua.response_payoffs(pop, policy, k), atol=1e-10)
