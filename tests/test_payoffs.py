"""Every payoff engine against brute-force enumeration of all pools (float64, 1e-10)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua

from . import brute_force as bf

M, N = 3, 4


def random_population(kind, seed):
    rng = np.random.default_rng(seed)
    weights = rng.random(M) + 0.1
    if kind == "ranking":  # few utility levels, so ties between distinct responses are common
        params = rng.integers(0, 3, size=(M, N)).astype(np.float64)
        pop = ua.RankingPopulation(params, weights)
    else:
        params = 2.0 * rng.normal(size=(M, N))
        pop = ua.PlackettLucePopulation(params, weights)
    return pop, bf.rules(kind, params), weights / weights.sum()


def random_policy(seed, zeros=1):
    rng = np.random.default_rng(seed + 100)
    p = rng.random(N)
    p[rng.choice(N, zeros, replace=False)] = 0.0
    return p / p.sum()


@pytest.mark.parametrize("kind", ["ranking", "plackett_luce"])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_engines_match_brute_force(kind, k):
    pop, rules, weights = random_population(kind, seed=k)
    policy = random_policy(seed=k)
    expected = bf.payoffs(rules, weights, policy, k)
    pi = jnp.asarray(policy)

    closed_form = ua.response_payoffs(pop, pi, k)
    tensor = ua.win_tensor(pop, k + 1)
    contracted = tensor
    for _ in range(k):
        contracted = contracted @ pi
    counted = ua.count_form_payoffs(ua.count_form(pop, k), pi)
    dense = ua.response_payoffs(ua.DenseGame(tensor), pi, k)

    for name, got in [
        ("closed form", closed_form),
        ("win tensor", contracted),
        ("count form", counted),
        ("dense game", dense),
    ]:
        np.testing.assert_allclose(got, expected, atol=1e-10, rtol=0, err_msg=name)


def test_ties_split_per_position():
    # One user; responses 0 and 1 tie at the top. Against k=2 draws of δ_1, response 0 shares a
    # three-way tie (1/3) and response 2 always loses.
    pop = ua.RankingPopulation(jnp.array([[1.0, 1.0, 0.0]]))
    u = ua.response_payoffs(pop, jnp.array([0.0, 1.0, 0.0]), 2)
    np.testing.assert_allclose(u, [1 / 3, 1 / 3, 0.0], atol=1e-15)


def test_mixture_payoffs_are_weighted_averages():
    pop, rules, weights = random_population("ranking", seed=7)
    a, b = random_policy(1), random_policy(2, zeros=0)
    mix = ua.ProductMixture(jnp.stack([a, b]), jnp.array([0.25, 0.75]))
    expected = 0.25 * bf.payoffs(rules, weights, a, 3) + 0.75 * bf.payoffs(rules, weights, b, 3)
    np.testing.assert_allclose(ua.response_payoffs(pop, mix, 3), expected, atol=1e-12)


@pytest.mark.parametrize("kind", ["ranking", "plackett_luce"])
def test_monte_carlo_is_unbiased_within_its_standard_error(kind):
    pop, rules, weights = random_population(kind, seed=11)
    policy = random_policy(11)
    exact = bf.payoffs(rules, weights, policy, 3)
    mean, stderr = ua.monte_carlo_payoffs(jax.random.PRNGKey(0), pop, jnp.asarray(policy), 3, 8192)
    z = np.abs(np.asarray(mean) - exact) / np.maximum(np.asarray(stderr), 1e-12)
    assert np.all(np.asarray(stderr) > 0)
    assert z.max() < 4.5, z
    assert np.asarray(stderr).max() < 0.01


def test_sampled_population_estimates_match_exact_values():
    utilities = jnp.array([[3.0, 1.0, 2.0], [0.0, 2.0, 1.0], [1.0, 1.0, 0.0]])

    def sample_users(key, num):
        return utilities[jax.random.randint(key, (num,), 0, 3)]

    def choose(user, pool):
        v = user[pool]
        top = (v == v.max()).astype(v.dtype)
        return top / top.sum()

    sampled = ua.SampledPopulation(sample_users, choose, 3)
    policy = jnp.array([0.2, 0.5, 0.3])
    exact = ua.response_payoffs(ua.RankingPopulation(utilities), policy, 2)
    mean, stderr = ua.monte_carlo_payoffs(jax.random.PRNGKey(3), sampled, policy, 2, 8192)
    assert np.all(np.abs(mean - exact) < 4.5 * stderr + 1e-12)
    with pytest.raises(ValueError, match="monte_carlo_payoffs"):
        ua.response_payoffs(sampled, policy, 2)


def test_batched_prompts_equal_separate_calls():
    pops = [random_population("ranking", seed=s)[0] for s in range(3)]
    policies = jnp.stack([jnp.asarray(random_policy(s)) for s in range(3)])
    batched = ua.RankingPopulation(
        jnp.stack([p.utilities for p in pops]), jnp.stack([p.weights for p in pops])
    )
    got = ua.response_payoffs(batched, policies, 4)
    for i, pop in enumerate(pops):
        np.testing.assert_allclose(got[i], ua.response_payoffs(pop, policies[i], 4), atol=1e-14)
    shared = ua.response_payoffs(batched, policies[0], 4)  # one policy for every prompt
    np.testing.assert_allclose(shared[2], ua.response_payoffs(pops[2], policies[0], 4), atol=1e-14)
    with pytest.raises(ValueError, match="batch axes"):
        ua.response_payoffs(batched, policies[:2], 4)


def test_jit_matches_eager_and_k_may_be_traced():
    pop, _, _ = random_population("ranking", seed=5)
    pi = jnp.asarray(random_policy(5))
    eager = ua.response_payoffs(pop, pi, 3)
    jitted = jax.jit(ua.response_payoffs)(pop, pi, 3)
    np.testing.assert_allclose(jitted, eager, atol=1e-14)
    by_k = jax.vmap(lambda k: ua.response_payoffs(pop, pi, k))(jnp.arange(1, 4))
    np.testing.assert_allclose(by_k[2], eager, atol=1e-13)


def test_dense_game_rejects_inconsistent_tensors():
    with pytest.raises(ValueError, match="constant-sum"):
        ua.DenseGame(jnp.array([[0.5, 0.9], [0.0, 0.5]]))
    with pytest.raises(ValueError, match="symmetric"):
        w = np.array(ua.win_tensor(ua.RankingPopulation(jnp.array([[2.0, 1.0, 0.0]])), 3))
        w[1, 0, 2] += 0.1
        ua.DenseGame(w)
    game = ua.DenseGame(ua.win_tensor(random_population("ranking", 1)[0], 3))
    with pytest.raises(ValueError, match="k=3 does not match"):
        ua.response_payoffs(game, jnp.full(N, 1 / N), 3)


def test_monte_carlo_over_prompts_uses_one_key_per_prompt():
    rng = np.random.default_rng(4)
    utilities = rng.integers(0, 4, (3, 5, 4)).astype(np.float64)
    pop = ua.RankingPopulation(utilities)
    policies = jnp.asarray(rng.dirichlet(np.ones(4), 3))
    key = jax.random.key(5)
    mean, stderr = ua.monte_carlo_payoffs(key, pop, policies, 2, num_samples=4096)
    assert mean.shape == stderr.shape == (3, 4)
    for i, prompt_key in enumerate(jax.random.split(key, 3)):
        single = ua.RankingPopulation(utilities[i])
        one_mean, _ = ua.monte_carlo_payoffs(prompt_key, single, policies[i], 2, 4096)
        np.testing.assert_allclose(mean[i], one_mean, rtol=0, atol=1e-12)
        exact = ua.response_payoffs(single, policies[i], 2)
        assert np.all(np.abs(mean[i] - exact) < 4.5 * stderr[i] + 1e-12)
    with pytest.raises(ValueError, match="batch axes must match"):
        ua.monte_carlo_payoffs(key, pop, policies[:2], 2)
