"""Training from sampled responses (docs/theory.md §7): rewards, loss, game gradient.

Exactness is checked by enumerating every group of G samples of a small policy (float64).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua
from ualign_jax import training

from . import brute_force as bf

POLICY = np.array([0.5, 0.3, 0.2])


def every_group(policy, group):
    """All ordered groups of ``group`` samples ``[T, G]`` and their probabilities ``[T]``."""
    groups = np.array(list(itertools.product(range(len(policy)), repeat=group)))
    return groups, np.prod(policy[groups], axis=1)


def judge_scores(params, groups):
    """``[T, U, G]``: judge u's score of each sample is its parameter for that response."""
    return jnp.asarray(np.asarray(params)[:, groups].transpose(1, 0, 2))


def population(choice, seed, m=3, n=3):
    rng = np.random.default_rng(seed)
    weights = rng.random(m) + 0.1
    if choice == "best":
        params = rng.integers(0, 3, (m, n)).astype(float)  # ties within judges
        params[0] = [1.0, 1.0, 0.0]
        pop = ua.RankingPopulation(jnp.asarray(params), weights=jnp.asarray(weights))
    else:
        params = rng.normal(size=(m, n))
        pop = ua.PlackettLucePopulation(jnp.asarray(params), weights=jnp.asarray(weights))
    return pop, params, weights


@pytest.mark.parametrize(
    ("choice", "group", "k"), [("best", 4, 1), ("best", 4, 3), ("plackett_luce", 4, 2)]
)
def test_rewards_are_unbiased_for_the_game_payoffs(choice, group, k):
    pop, params, weights = population(choice, seed=group + k)
    groups, probs = every_group(POLICY, group)
    rewards = np.asarray(
        ua.sample_rewards(
            judge_scores(params, groups), k, weights=jnp.asarray(weights), choice=choice
        )
    )
    payoffs = np.asarray(ua.response_payoffs(pop, jnp.asarray(POLICY), k))
    for i in range(group):  # E[r_i 1{y_i = y}] = π(y) u_k(y, π), for every sample position
        onehot = groups[:, i][:, None] == np.arange(3)[None, :]
        expected = (probs[:, None] * rewards[:, i : i + 1] * onehot).sum(axis=0)
        np.testing.assert_allclose(expected, POLICY * payoffs, rtol=0, atol=1e-9)


@pytest.mark.parametrize("choice", ["best", "plackett_luce"])
def test_rewards_match_enumerated_subsets(choice):
    """Independent of the closed forms: average the choice rule over every k-subset."""
    rng = np.random.default_rng(3)
    group, k, judges = 5, 2, 3
    if choice == "best":
        scores = rng.integers(0, 3, (judges, group)).astype(float)
        rule = bf.ranking_rule
    else:
        scores = rng.normal(size=(judges, group)) * 2
        rule = bf.plackett_luce_rule
    weights = rng.random(judges)
    expected = np.zeros(group)
    for u in range(judges):
        pick = rule(scores[u])
        for i in range(group):
            others = [j for j in range(group) if j != i]
            shares = [pick((i, *subset))[0] for subset in itertools.combinations(others, k)]
            expected[i] += weights[u] / weights.sum() * np.mean(shares)
    got = ua.sample_rewards(jnp.asarray(scores), k, weights=jnp.asarray(weights), choice=choice)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize("choice", ["best", "plackett_luce"])
def test_group_mean_is_the_game_value(choice):
    scores = jax.random.normal(jax.random.key(0), (2, 3, 6)).round(1)
    rewards = ua.sample_rewards(scores, 3, choice=choice)
    np.testing.assert_allclose(np.asarray(rewards.mean(axis=-1)), 0.25, rtol=0, atol=1e-11)


def test_best_share_table_is_exact_and_the_large_group_formula_agrees(monkeypatch):
    table = training.best_share_table(7, 3)
    # by the defining sum: b = 4 below, t = 2 tied, G - 1 = 6 others, k = 3
    from math import comb

    direct = sum(comb(2, j) * comb(4, 3 - j) / ((j + 1) * comb(6, 3)) for j in range(4))
    assert table[4, 2] == direct
    scores = jax.random.normal(jax.random.key(1), (4, 9)).round(1)
    exact = jax.jit(lambda s: training._best_shares(s, 3))(scores)
    monkeypatch.setattr(training, "TABLE_MAX_SAMPLES", 4)  # read when traced
    formula = jax.jit(lambda s: training._best_shares(s, 3))(scores)
    np.testing.assert_allclose(np.asarray(formula), np.asarray(exact), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="scores: groups of more than 4 samples need float64"):
        ua.sample_rewards(scores.astype(jnp.float32), 3)


def test_plackett_luce_far_below_the_best_is_clamped_not_nan():
    scores = jnp.asarray([[0.0, -200.0, 1.0]])  # a 201-nat spread: beyond PL_MAX_SPREAD
    e = np.e
    expected = [(1 + 1 / (1 + e)) / 2, 0.0, (1 + e / (1 + e)) / 2]
    got = ua.sample_rewards(scores, 1, choice="plackett_luce")  # quadrature over a wide range
    np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=1e-10)
    got32 = ua.sample_rewards(scores.astype(jnp.float32), 1, choice="plackett_luce")
    np.testing.assert_allclose(np.asarray(got32), expected, rtol=0, atol=1e-6)


def test_rank_count_engines_agree_across_comparison_blocks():
    scores = jax.random.normal(jax.random.key(3), (2, 3, 37)).round(1)  # ties; 37 = 32 + 5
    below, tied = jax.jit(training._rank_counts_pairwise)(scores)
    s = np.asarray(scores)
    np.testing.assert_array_equal(np.asarray(below), (s[..., None, :] < s[..., :, None]).sum(-1))
    np.testing.assert_array_equal(
        np.asarray(tied), (s[..., None, :] == s[..., :, None]).sum(-1) - 1
    )
    by_sort = jax.jit(training._rank_counts_sorted)(scores)
    np.testing.assert_array_equal(np.asarray(by_sort[0]), np.asarray(below))
    np.testing.assert_array_equal(np.asarray(by_sort[1]), np.asarray(tied))


def policy_gradient_terms(logits, groups, rewards, k, **options):
    def loss(theta, group, reward, ref):
        logprobs = jax.nn.log_softmax(theta)[group]
        extra = {"ref_logprobs": ref[group]} if "tau" in options else {}
        return ua.self_play_loss(logprobs, reward, k, **extra, **options)

    ref = jnp.log(jnp.asarray([0.2, 0.5, 0.3]))
    return jax.vmap(jax.grad(loss), in_axes=(None, 0, 0, None))(logits, groups, rewards, ref)


@pytest.mark.parametrize("choice", ["best", "plackett_luce"])
def test_expected_loss_gradient_is_minus_the_game_gradient(choice):
    k, group = 2, 3
    pop, params, weights = population(choice, seed=5)
    logits = jnp.log(jnp.asarray(POLICY))
    groups, probs = every_group(POLICY, group)
    rewards = ua.sample_rewards(
        judge_scores(params, groups), k, weights=jnp.asarray(weights), choice=choice
    )
    grads = policy_gradient_terms(logits, jnp.asarray(groups), rewards, k)
    expected = np.asarray(probs @ np.asarray(grads))
    exact = np.asarray(ua.game_gradient(pop, logits, k))
    assert np.abs(exact).max() > 1e-3  # a gradient worth matching
    np.testing.assert_allclose(expected, -exact, rtol=0, atol=1e-9)


def test_kl_term_estimates_the_regularised_gradient():
    k, group, tau = 1, 3, 0.3
    pop, params, weights = population("best", seed=7)
    logits = jnp.log(jnp.asarray(POLICY))
    groups, probs = every_group(POLICY, group)
    rewards = ua.sample_rewards(judge_scores(params, groups), k, weights=jnp.asarray(weights))
    grads = policy_gradient_terms(logits, jnp.asarray(groups), rewards, k, tau=tau)
    expected = np.asarray(probs @ np.asarray(grads))
    log_ratio = np.log(POLICY) - np.log([0.2, 0.5, 0.3])
    kl_gradient = POLICY * (log_ratio - POLICY @ log_ratio)  # ∇_θ KL(π_θ ‖ π_ref)
    target = np.asarray(ua.game_gradient(pop, logits, k)) - tau * kl_gradient
    np.testing.assert_allclose(expected, -target, rtol=0, atol=1e-9)


def test_normalised_loss_divides_by_the_group_spread():
    logprobs = jnp.log(jnp.asarray([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]))
    rewards = jnp.asarray([[0.0, 0.5, 1.0], [0.5, 0.5, 0.5]])
    grad = jax.grad(lambda lp: ua.self_play_loss(lp, rewards, 1, normalise=True))(logprobs)
    spread = np.std([0.0, 0.5, 1.0])
    np.testing.assert_allclose(
        np.asarray(grad[0]), -(np.array([0.0, 0.5, 1.0]) - 0.5) / spread / 6, rtol=1e-9
    )
    np.testing.assert_allclose(np.asarray(grad[1]), 0.0, atol=1e-12)  # no spread, no signal


@pytest.mark.parametrize("choice", ["best", "plackett_luce"])
def test_game_gradient_is_the_gradient_with_opponents_stopped(choice):
    pops = [population(choice, seed=s)[0] for s in (11, 12)]
    batched = jax.tree.map(lambda a, b: jnp.stack([a, b]), *pops)
    logits = jnp.asarray([[0.3, -0.2, 0.1], [1.0, 0.0, -1.0]])
    k = 3

    def own_payoff(theta, pop):
        pi = jax.nn.softmax(theta)
        return pi @ jax.lax.stop_gradient(ua.response_payoffs(pop, pi, k))

    expected = jnp.stack([jax.grad(own_payoff)(logits[p], pops[p]) for p in range(2)])
    got = ua.game_gradient(batched, logits, k)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=0, atol=1e-12)
    # the unstopped objective is the constant 1/(k+1): its gradient vanishes
    flat = jax.grad(
        lambda t: jax.nn.softmax(t) @ ua.response_payoffs(pops[0], jax.nn.softmax(t), k)
    )
    np.testing.assert_allclose(np.asarray(flat(logits[0])), 0.0, atol=1e-12)


@pytest.mark.parametrize("choice", ["best", "plackett_luce"])
def test_float32_agrees_with_float64_and_jit_vmap_match(choice):
    scores = jax.random.normal(jax.random.key(2), (3, 4, 8))
    scores = scores.round(1) if choice == "best" else scores  # ties for the best-score judges
    weights = jnp.arange(1.0, 5.0)
    r64 = ua.sample_rewards(scores, 3, weights=weights, choice=choice)
    r32 = ua.sample_rewards(
        scores.astype(jnp.float32), 3, weights=weights.astype(jnp.float32), choice=choice
    )
    assert r32.dtype == jnp.float32 and r64.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(r32), np.asarray(r64), rtol=0, atol=2e-6)
    # jit over vmap over prompts: one compile checks both transformations
    per_prompt = jax.jit(
        jax.vmap(lambda s: ua.sample_rewards(s, 3, weights=weights, choice=choice))
    )
    np.testing.assert_allclose(np.asarray(per_prompt(scores)), np.asarray(r64), rtol=0, atol=1e-14)


def test_group_rewards_regroups_flat_completions():
    rng = np.random.default_rng(4)
    ids = np.array(["b", "a", "b", "a", "a", "b", "c", "c", "c", "c"])
    scores = rng.normal(size=(10, 2)).round(1)
    weights = np.array([1.0, 3.0])
    got = ua.group_rewards(scores, ids, 1, weights=weights)
    assert isinstance(got, np.ndarray) and got.shape == (10,)
    for gid in "abc":
        members = np.flatnonzero(ids == gid)
        direct = ua.sample_rewards(jnp.asarray(scores[members].T), 1, weights=jnp.asarray(weights))
        np.testing.assert_allclose(got[members], np.asarray(direct), rtol=0, atol=1e-12)
    one_judge = ua.group_rewards(scores[:, 0], ids, 2)
    np.testing.assert_allclose(
        one_judge[ids == "c"],
        np.asarray(ua.sample_rewards(jnp.asarray(scores[ids == "c", 0][None]), 2)),
        atol=1e-12,
    )


def test_bad_input_names_the_argument():
    good = jnp.zeros((2, 4))
    cases = [
        (lambda: ua.sample_rewards(good.at[0, 1].set(jnp.nan), 1), "scores"),
        (lambda: ua.sample_rewards(good.at[0, 1].set(jnp.inf), 1), "scores"),
        (lambda: ua.sample_rewards(good, 4), "k"),
        (lambda: ua.sample_rewards(good, 0), "k"),
        (lambda: ua.sample_rewards(jnp.zeros((2, 1)), 1), "scores"),
        (lambda: ua.sample_rewards(jnp.zeros(4), 1), "scores"),
        (lambda: ua.sample_rewards(good, 1, weights=jnp.ones(3)), "weights"),
        (lambda: ua.sample_rewards(good, 1, weights=-jnp.ones(2)), "weights"),
        (lambda: ua.sample_rewards(good, 1, weights=jnp.ones((3, 2))), "weights"),
        (lambda: ua.sample_rewards(good, 1, choice="worst"), "choice"),
        (lambda: ua.self_play_loss(jnp.zeros(4), jnp.zeros(3), 1), "rewards"),
        (lambda: ua.self_play_loss(jnp.full(4, -jnp.inf), jnp.zeros(4), 1), "logprobs"),
        (lambda: ua.self_play_loss(jnp.zeros(4), jnp.zeros(4).at[0].set(jnp.nan), 1), "rewards"),
        (lambda: ua.self_play_loss(jnp.zeros(4), jnp.zeros(4), 1, tau=0.1), "ref_logprobs"),
        (
            lambda: ua.self_play_loss(
                jnp.zeros(4), jnp.zeros(4), 1, ref_logprobs=jnp.zeros(3), tau=0.1
            ),
            "ref_logprobs",
        ),
        (
            lambda: ua.self_play_loss(
                jnp.zeros(4), jnp.zeros(4), 1, ref_logprobs=jnp.zeros(4), tau=-1.0
            ),
            "tau",
        ),
        (lambda: ua.self_play_loss(jnp.zeros(4), jnp.zeros(4), 0), "k"),
        (lambda: ua.game_gradient(population("best", 0)[0], jnp.zeros(4), 1), "logits"),
        (lambda: ua.game_gradient(population("best", 0)[0], jnp.full(3, jnp.nan), 1), "logits"),
        (lambda: ua.game_gradient(jnp.zeros((2, 3)), jnp.zeros(3), 1), "pop"),
        (lambda: ua.group_rewards(np.zeros((4, 2)), np.zeros(3), 1), "group_ids"),
        (lambda: ua.group_rewards(np.zeros((4, 2)), np.array([0, 0, 0, 1]), 1), "group_ids"),
        (lambda: ua.group_rewards(np.zeros((4, 2)), np.array([0, 0, 1, 1]), 2), "k"),
        (lambda: ua.group_rewards(np.full((4, 2), np.nan), np.array([0, 0, 1, 1]), 1), "scores"),
        (
            lambda: ua.group_rewards(
                np.zeros((4, 2)), np.array([0, 0, 1, 1]), 1, weights=np.ones(3)
            ),
            "weights",
        ),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()
