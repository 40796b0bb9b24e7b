"""Branch and bound for R_{k,ℓ} (ualign_jax/_branch_bound.py) against brute force and enumeration.

The bounds rest on two properties of ``f(T) = WR(T, A)`` over opponent multisets ``T``:
monotone and DR-submodular (gains shrink as ``T`` grows, repeated copies included). They are
checked first against the independent brute force of ``tests/brute_force.py``.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua
import ualign_jax._branch_bound as bb
from ualign_jax._branch_bound import certified_robust_win_rate

from . import brute_force as bf


def _population(kind, rng, m, n, dtype):
    if kind == "ranking_ties":  # few utility levels: ties within users
        return ua.RankingPopulation(jnp.asarray(rng.integers(0, 3, (m, n)), dtype))
    if kind == "plackett_luce":
        return ua.PlackettLucePopulation(jnp.asarray(rng.normal(size=(m, n)), dtype))
    return ua.RankingPopulation(jnp.asarray(rng.normal(size=(m, n)), dtype))


def _brute_set_value(pop, mixture, k, opponent):
    """``WR(T, A)`` for the multiset ``T`` by enumerating every pool (float64)."""
    kind = "ranking" if isinstance(pop, ua.RankingPopulation) else "plackett_luce"
    table = np.asarray(pop.table, np.float64)
    user_rules = bf.rules(kind, table)
    weights = np.asarray(pop.user_weights, np.float64)
    total = 0.0
    for alpha, policy in mixture:
        for draws, prob in bf.tuples_with_prob(policy, k):
            for w, pick in zip(weights, user_rules, strict=True):
                total += alpha * w * prob * pick(tuple(opponent) + draws)[: len(opponent)].sum()
    return total


def _components(policy):
    if isinstance(policy, ua.ProductMixture):
        return list(zip(np.asarray(policy.weights), np.asarray(policy.policies), strict=True))
    return [(1.0, np.asarray(policy, np.float64))]


# --------------------------------------------------------------------------- the bounds' basis


@pytest.mark.parametrize("kind", ["ranking_ties", "ranking", "plackett_luce"])
def test_set_win_rate_is_monotone_and_dr_submodular_on_multisets(kind):
    """Δ(y | S) >= 0 and Δ(y | S + z) <= Δ(y | S) for all multisets S (|S| <= 2), all y, z,
    z = y included (a repeated response gains share with ties, by less each time)."""
    rng = np.random.default_rng(7)
    for _ in range(4):
        n, m, k = 4, 3, int(rng.integers(1, 4))
        pop = _population(kind, rng, m, n, jnp.float64)
        mixture = [(0.6, rng.dirichlet(np.ones(n))), (0.4, np.eye(n)[1] * 0.8 + 0.05)]
        cache = {}

        def f(s, pop=pop, mixture=mixture, k=k, cache=cache):
            key = tuple(sorted(s))
            if key not in cache:
                cache[key] = _brute_set_value(pop, mixture, k, key) if key else 0.0
            return cache[key]

        for size in range(3):
            for s in itertools.combinations_with_replacement(range(n), size):
                for y in range(n):
                    gain = f(s + (y,)) - f(s)
                    assert gain >= -1e-12
                    for z in range(n):
                        assert f(s + (z, y)) - f(s + (z,)) <= gain + 1e-12


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize(
    ("kind", "dtype"),
    [
        ("ranking_ties", jnp.float32),
        ("ranking", jnp.float64),
        ("plackett_luce", jnp.float32),
        ("plackett_luce", jnp.float64),
        ("mixture", jnp.float64),
    ],
)
def test_equals_exhaustive_enumeration(kind, dtype):
    rng = np.random.default_rng(hash(kind) % 2**32)
    n, m = 6, 4
    slack = 2e-6 if dtype == jnp.float32 else 1e-12
    for k, ell in [(2, 2), (1, 3), (3, 4)]:
        pop = _population("ranking" if kind == "mixture" else kind, rng, m, n, dtype)
        policy = jnp.asarray(rng.dirichlet(np.full(n, 0.5)), dtype)
        if kind == "mixture":
            policy = ua.ProductMixture(
                jnp.asarray(rng.dirichlet(np.ones(n), size=3), dtype),
                jnp.asarray(rng.dirichlet(np.ones(3)), dtype),
            )
        exact = float(ua.robust_win_rate(pop, policy, k, ell))
        out = certified_robust_win_rate(pop, policy, k, ell)
        assert out.lower.dtype == dtype and out.opponent.shape == (ell,)
        assert bool(out.exact)
        assert float(out.lower) == float(out.upper)
        assert abs(float(out.upper) - exact) <= slack
        won = _brute_set_value(pop, _components(policy), k, out.opponent.tolist())
        assert abs((1.0 - won) - float(out.upper)) <= slack  # the opponent attains it


def test_point_mass_policy_and_repeated_opponent():
    """Against all mass on a, k copies of a tie with the opponent's copies of a: the worst
    opponent may repeat a response."""
    pop = ua.RankingPopulation(jnp.array([[2.0, 1.0, 0.0], [2.0, 0.0, 1.0]]))
    policy = jnp.array([1.0, 0.0, 0.0])
    for ell in (1, 2, 3):
        out = certified_robust_win_rate(pop, policy, 2, ell)
        assert float(out.upper) == pytest.approx(float(ua.robust_win_rate(pop, policy, 2, ell)))
        assert out.opponent.tolist() == [0] * ell  # ell copies of a win ell/(2+ell)
        assert float(out.upper) == pytest.approx(2 / (2 + ell))


def test_batched_prompts_match_each_prompt():
    rng = np.random.default_rng(3)
    utilities = rng.integers(0, 4, (2, 5, 7)).astype(float)  # 2 prompts, ties
    pop = ua.RankingPopulation(utilities)
    policy = jnp.asarray(rng.dirichlet(np.ones(7), size=2))
    out = certified_robust_win_rate(pop, policy, 2, 3)
    assert out.upper.shape == (2,) and out.opponent.shape == (2, 3) and out.nodes.shape == (2,)
    expected = ua.robust_win_rate(pop, policy, 2, 3)
    np.testing.assert_allclose(out.upper, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.lower, expected, rtol=0, atol=1e-12)
    shared = certified_robust_win_rate(ua.RankingPopulation(utilities[0]), policy, 2, 3)
    assert float(shared.upper[0]) == pytest.approx(float(out.upper[0]), abs=1e-12)


def test_greedy_is_wrong_here_and_the_search_is_not():
    """A small instance (found by searching random ones) where the greedy opponent of
    robust_win_rate_bounds stops well above the exact value."""
    rng = np.random.default_rng(154)
    pop = ua.RankingPopulation(rng.normal(size=(4, 5)))
    policy = jnp.full(5, 0.2)
    exact = float(ua.robust_win_rate(pop, policy, 2, 2))
    greedy = float(ua.robust_win_rate_bounds(pop, policy, 2, 2).upper)
    assert greedy - exact > 0.05
    out = certified_robust_win_rate(pop, policy, 2, 2)
    assert float(out.upper) == pytest.approx(exact, abs=1e-12) and bool(out.exact)


@pytest.mark.slow
@pytest.mark.parametrize("ell", [2, 3])
def test_medium_instance_against_enumeration(ell):
    """n = 60 (ℓ = 3) / 300 (ℓ = 2): pruning and chunking, against the exhaustive answer,
    for the uniform policy and a solved equilibrium."""
    rng = np.random.default_rng(11)
    n = 60 if ell == 3 else 300
    pop = ua.RankingPopulation(rng.normal(size=(50, n)))
    for policy in (jnp.full(n, 1.0 / n), ua.solve(pop, 2).policy):
        out = certified_robust_win_rate(pop, policy, 2, ell)
        exact = float(ua.robust_win_rate(pop, policy, 2, ell))
        assert bool(out.exact) and float(out.upper) == pytest.approx(exact, abs=1e-12)


# --------------------------------------------------------------------------- stopping early


def _stepping_clock(monkeypatch):
    """Each reading of the search's clock advances it by one second: ``max_seconds = j``
    stops the search at its j-th check, deterministically."""
    now = iter(itertools.count())
    monkeypatch.setattr(bb.time, "perf_counter", lambda: float(next(now)))


@pytest.mark.slow
def test_bounds_bracket_the_value_at_every_stop(monkeypatch):
    rng = np.random.default_rng(5)
    n = 30
    pop = ua.RankingPopulation(rng.normal(size=(40, n)))
    policy = jnp.full(n, 1.0 / n)
    exact = float(ua.robust_win_rate(pop, policy, 2, 3))
    monkeypatch.setattr(bb, "CHUNK_ENTRIES", 4 * n)  # small chunks: many checks
    _stepping_clock(monkeypatch)
    stops, gaps = 0, []
    for budget in range(1, 400, 7):
        out = certified_robust_win_rate(pop, policy, 2, 3, max_seconds=budget)
        lower, upper = float(out.lower), float(out.upper)
        assert lower <= exact + 1e-12 and exact <= upper + 1e-12
        won = _brute_set_value(pop, _components(policy), 2, out.opponent.tolist())
        assert upper == pytest.approx(1.0 - won, abs=1e-12)
        gaps.append(upper - lower)
        if bool(out.exact):
            break
        stops += 1
    assert stops >= 3 and gaps[-1] == 0.0 and gaps[0] > 0.0


@pytest.mark.parametrize("tol", [0.002, 0.02])
def test_tolerance_is_respected(tol):
    rng = np.random.default_rng(8)
    n = 40
    pop = ua.RankingPopulation(rng.normal(size=(40, n)))
    policy = jnp.full(n, 1.0 / n)
    exact = float(ua.robust_win_rate(pop, policy, 2, 3))
    out = certified_robust_win_rate(pop, policy, 2, 3, tol=tol)
    exhaustive = certified_robust_win_rate(pop, policy, 2, 3)
    lower, upper = float(out.lower), float(out.upper)
    assert lower <= exact + 1e-12 <= upper + 2e-12
    assert upper - lower <= tol
    assert int(out.nodes) <= int(exhaustive.nodes)


# --------------------------------------------------------------------------- errors


def test_clear_errors():
    pop = ua.RankingPopulation(jnp.array([[1.0, 0.0, 2.0]]))
    policy = jnp.full(3, 1 / 3)
    with pytest.raises(ValueError, match="ell"):
        certified_robust_win_rate(pop, policy, 2, 0)
    with pytest.raises(ValueError, match="k"):
        certified_robust_win_rate(pop, policy, 0, 2)
    with pytest.raises(ValueError, match="tol"):
        certified_robust_win_rate(pop, policy, 2, 2, tol=-0.1)
    with pytest.raises(ValueError, match="max_seconds"):
        certified_robust_win_rate(pop, policy, 2, 2, max_seconds=0)
    with pytest.raises(ValueError, match="policy"):
        certified_robust_win_rate(pop, jnp.full(4, 0.25), 2, 2)
    with pytest.raises(ValueError, match="pop"):
        certified_robust_win_rate(ua.DenseGame(jnp.full((3, 3), 0.5)), policy, 1, 2)
    with pytest.raises(ValueError, match="outside jit"):
        jax.jit(lambda p: certified_robust_win_rate(pop, p, 2, 2).upper)(policy)


def test_public_functions_search_past_the_enumeration_limit():
    rng = np.random.default_rng(7)
    pop = ua.RankingPopulation(rng.integers(0, 4, size=(30, 12)).astype(np.float64))
    policy = ua.solve(pop, 2, steps=200).policy
    enumerated = ua.robust_win_rate(pop, policy, 2, 3)  # C(14, 3) = 364 multisets
    searched = ua.robust_win_rate(pop, policy, 2, 3, max_opponents=100)
    np.testing.assert_allclose(searched, enumerated, atol=1e-12)
    bounds = ua.robust_win_rate_bounds(pop, policy, 2, 3, tol=0.0)
    np.testing.assert_allclose([bounds.lower, bounds.upper], [enumerated] * 2, atol=1e-12)
    cheap = ua.robust_win_rate_bounds(pop, policy, 2, 3)
    assert cheap.lower <= enumerated + 1e-12 and cheap.upper >= enumerated - 1e-12
    with pytest.raises(ValueError, match="max_seconds applies to the exact search"):
        ua.robust_win_rate_bounds(pop, policy, 2, 3, max_seconds=1.0)
    traced = jax.jit(lambda p: ua.robust_win_rate(pop, p, 2, 3, max_opponents=100))
    with pytest.raises(ValueError, match="above max_opponents=100"):
        traced(policy)
