"""float32 against float64 on the same inputs, extreme k, and finiteness."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua

KS = [1, 2, 8, 100, 10_000, 100_000]


def policies(n, rng):
    """Dirichlet draws, sparse ones with exact zeros, near-point masses and the uniform policy."""
    rows = [rng.dirichlet(np.ones(n)), rng.dirichlet(0.1 * np.ones(n)), np.full(n, 1.0 / n)]
    sparse = rng.dirichlet(np.ones(n))
    sparse[rng.choice(n, n // 2, replace=False)] = 0.0
    rows.append(sparse / sparse.sum())
    near_point = np.full(n, 1e-30)
    near_point[0] = 1.0 - (n - 1) * 1e-30
    rows.append(near_point)
    return np.stack(rows)


@pytest.mark.parametrize("k", KS)
def test_float32_ranking_payoffs_track_float64(k):
    rng = np.random.default_rng(k)
    m, n = 40, 12
    utilities = rng.integers(0, 6, size=(m, n)).astype(np.float64)  # ties included
    weights = rng.random(m)
    pop64 = ua.RankingPopulation(utilities, weights)
    pop32 = ua.RankingPopulation(utilities.astype(np.float32), weights.astype(np.float32))
    for policy in policies(n, rng):
        u64 = np.asarray(ua.response_payoffs(pop64, jnp.asarray(policy), k))
        p32 = jnp.asarray(policy.astype(np.float32))
        u32 = np.asarray(ua.response_payoffs(pop32, p32, k))
        assert u32.dtype == np.float32
        assert np.all(np.isfinite(u32))
        # The float32 policy is itself rounded; compare against float64 on the same inputs.
        u64_same = np.asarray(ua.response_payoffs(pop64, jnp.asarray(p32, jnp.float64), k))
        assert np.max(np.abs(u32 - u64_same)) <= (k + 1) * 2e-7, np.max(np.abs(u32 - u64_same))
        assert np.all(u64 >= 0) and np.all(u64 <= 1)


def test_naive_quotient_form_would_fail_float32():
    # The closed form (x^(k+1) - b^(k+1)) / ((k+1) p) cancels catastrophically; ours does not.
    k, p, b = 8, np.float32(1e-4), np.float32(0.9)
    x = b + p
    naive = (x ** (k + 1) - b ** (k + 1)) / ((k + 1) * p)
    exact = sum(float(x) ** j * float(b) ** (k - j) for j in range(k + 1)) / (k + 1)
    ours = float(ua.payoffs.tie_share(jnp.float32(x), jnp.float32(p), k))
    assert abs(ours - exact) < 2e-7
    assert abs(float(naive) - exact) > 10 * abs(ours - exact)


@pytest.mark.parametrize("k", [1, 16, 100_000])
def test_plackett_luce_float32_is_finite_and_close(k):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(20, 8)) * 3.0
    pop64 = ua.PlackettLucePopulation(scores)
    pop32 = ua.PlackettLucePopulation(scores.astype(np.float32))
    for policy in policies(8, rng):
        p32 = jnp.asarray(policy.astype(np.float32))
        u32 = np.asarray(ua.response_payoffs(pop32, p32, k))
        u64 = np.asarray(ua.response_payoffs(pop64, jnp.asarray(p32, jnp.float64), k))
        assert np.all(np.isfinite(u32))
        assert np.max(np.abs(u32 - u64)) <= (k + 1) * 2e-7, np.max(np.abs(u32 - u64))
        np.testing.assert_allclose(np.asarray(policy) @ u64, 1 / (k + 1), atol=1e-7)


def test_large_utilities_and_huge_spread():
    utilities = np.array([[1e30, -1e30, 0.0, 1e-30], [0.0, 0.0, 1e30, 1e30]])
    pop = ua.RankingPopulation(utilities)
    policy = jnp.array([0.25, 0.25, 0.25, 0.25])
    u = ua.response_payoffs(pop, policy, 3)
    assert np.all(np.isfinite(u))
    np.testing.assert_allclose(policy @ u, 0.25, atol=1e-15)


@pytest.mark.parametrize("engine", ["pairwise", "scan"])
def test_float32_sum_over_thousands_of_users_stays_accurate(engine):
    # A plain float32 matvec over sushi's 4926 users is off by about 5e-6 at the point mass;
    # the two-level user sum keeps float32 within a few 1e-7 of float64, in either layout.
    p64 = jnp.zeros(10, jnp.float64).at[6].set(1.0)
    sushi64 = ua.load_dataset("sushi", dtype=jnp.float64).with_engine(engine)
    sushi32 = ua.load_dataset("sushi", dtype=jnp.float32).with_engine(engine)
    for k in (2, 8):
        e64 = float(ua.exploitability(sushi64, p64, k))
        e32 = float(ua.exploitability(sushi32, p64.astype(jnp.float32), k))
        assert abs(e32 - e64) < 5e-7, (k, e32, e64)


def test_float32_payoffs_stay_accurate_for_ten_thousand_responses():
    # The mass below each position is a running sum of up to n float32 masses; it is summed with
    # compensation (plain summation errs by about 8e-7 here, above the 2e-7 bound; compensated,
    # about 5e-8).
    rng = np.random.default_rng(5)
    m, n, k = 8, 10_000, 8
    utilities = rng.permuted(np.tile(np.arange(n, dtype=np.float32), (m, 1)), axis=1)
    policy = rng.dirichlet(np.ones(n)).astype(np.float32)
    u32 = ua.response_payoffs(ua.RankingPopulation(utilities), jnp.asarray(policy), k)
    u64 = ua.response_payoffs(
        ua.RankingPopulation(utilities.astype(np.float64)), jnp.asarray(policy, jnp.float64), k
    )
    assert np.max(np.abs(np.asarray(u32, np.float64) - np.asarray(u64))) <= 2e-7


def dot_precisions(fn, *args) -> list[str]:
    """The precision of every dot product in ``fn``'s lowered program."""
    text = jax.jit(fn).lower(*args).as_text()
    return re.findall(r"stablehlo\.dot_general .*?precision = \[(\w+), \w+\]", text)


def test_every_product_asks_for_full_float32_precision():
    # By default XLA may round float32 products to TensorFloat32 on GPUs and to bfloat16 on TPUs
    # (errors near 1e-3); on CPU the request changes nothing, so the program text is checked.
    rng = np.random.default_rng(2)
    policy = jnp.asarray(rng.dirichlet(np.ones(4)), jnp.float32)
    rankings = ua.RankingPopulation(rng.random((70, 4)).astype(np.float32))
    wide = ua.RankingPopulation(rng.random((5, 20)).astype(np.float32))  # the scan engine
    wide_policy = jnp.full(20, 0.05, jnp.float32)
    plackett_luce = ua.PlackettLucePopulation(rng.normal(size=(6, 4)).astype(np.float32))
    game = ua.DenseGame(ua.win_tensor(rankings, 3))
    mixture = ua.ProductMixture(jnp.stack([policy, jnp.full(4, 0.25, jnp.float32)]))
    calls = [
        (lambda pol: ua.response_payoffs(rankings, pol, 3), policy),
        (lambda pol: ua.response_payoffs(wide, pol, 3), wide_policy),
        (lambda pol: ua.response_payoffs(plackett_luce, pol, 3), policy),
        (lambda pol: ua.response_payoffs(game, pol, 2), policy),
        (lambda pol: ua.win_rate(rankings, pol, 2, mixture, ell=2), policy),
        (lambda pol: ua.exploitability(plackett_luce, pol, 2), policy),
        (lambda pol: ua.robust_win_rate(rankings, pol, 2, ell=2), policy),
        (lambda pol: ua.count_form_payoffs(ua.count_form(rankings, 3), pol), policy),
        (lambda pol: ua.solve(rankings, 2, method="regret_matching_plus", steps=3).policy, policy),
        (lambda pol: ua.solve(rankings, 2, method="logit_gradient", steps=3).policy, policy),
    ]
    found = [dot_precisions(fn, arg) for fn, arg in calls]
    assert all(found), [i for i, precisions in enumerate(found) if not precisions]
    assert {p for precisions in found for p in precisions} == {"HIGHEST"}, found
