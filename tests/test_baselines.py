"""NLHF's maximal lottery against an independent LP (scipy's HiGHS), in float32 and float64."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog

import ualign_jax as ua
from ualign_jax.baselines import certified_gap


def _lp_maximal_lottery(pairwise: np.ndarray) -> np.ndarray:
    """``argmin_p max_y ((P − 1/2) p)_y`` over the simplex: min t s.t. (P − 1/2) p <= t."""
    n = pairwise.shape[0]
    result = linprog(
        np.r_[np.zeros(n), 1.0],
        A_ub=np.c_[pairwise - 0.5, -np.ones(n)],
        b_ub=np.zeros(n),
        A_eq=np.r_[np.ones(n), 0.0][None],
        b_eq=[1.0],
        bounds=[(0, None)] * n + [(None, None)],
        method="highs",
    )
    assert result.status == 0
    return result.x[:n]


def _exact_pairwise(utilities: np.ndarray) -> np.ndarray:
    """``P[y, z]`` from the voters directly, in float64 (ties count 1/2)."""
    beats = utilities[:, :, None] > utilities[:, None, :]
    ties = utilities[:, :, None] == utilities[:, None, :]
    return (beats + 0.5 * ties).mean(axis=0)


def _cyclic_profiles(levels: int, count: int = 8, n: int = 6, m: int = 78, seed: int = 0):
    """Random profiles with no Condorcet winner and a unique maximal lottery (no zero margin).

    (n = 6, m = 78 in float32: the old 1e-9 certificate failed on every one of these.)

    ``levels = n``: strict rankings; fewer levels: rankings with ties.
    """
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        utilities = np.stack([rng.permutation(n) % levels for _ in range(m)]).astype(np.float64)
        margins = _exact_pairwise(utilities) - 0.5
        off_diagonal = margins[~np.eye(n, dtype=bool)]
        condorcet = np.any(np.all(margins + np.eye(n) > 0, axis=1))
        if np.all(np.abs(off_diagonal) > 1e-12) and not condorcet:
            found.append(utilities)
    return found


@pytest.mark.parametrize("levels", [6, 3], ids=["strict", "ties"])
@pytest.mark.parametrize(("dtype", "atol"), [(jnp.float32, 1e-4), (jnp.float64, 1e-9)])
def test_nlhf_is_the_lp_maximal_lottery(levels, dtype, atol):
    for utilities in _cyclic_profiles(levels):
        pop = ua.RankingPopulation(jnp.asarray(utilities, dtype))
        policy = ua.nlhf(pop)  # never raises on valid input, whatever the dtype
        assert policy.dtype == dtype
        expected = _lp_maximal_lottery(_exact_pairwise(utilities))
        assert np.count_nonzero(expected > 1e-6) >= 3  # a genuinely mixed lottery
        np.testing.assert_allclose(policy, expected, rtol=0, atol=atol)
        pairwise = np.asarray(ua.pairwise_matrix(pop), np.float64)
        assert np.max((pairwise - 0.5) @ np.asarray(policy, np.float64)) <= certified_gap(dtype)


@pytest.mark.parametrize("n", [3, 8, 20])
def test_maximal_lottery_without_a_hint_uses_the_simplex_method(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        utilities = rng.integers(0, 4, (rng.integers(1, 30), n)).astype(np.float64)
        pairwise = _exact_pairwise(utilities)
        result = ua.maximal_lottery(pairwise)
        assert result.gap <= 1e-12
        # Every maximal lottery has LP value 0; the LP's optimum and ours reach the same value.
        lp = _lp_maximal_lottery(pairwise)
        assert np.max((pairwise - 0.5) @ lp) <= 1e-9
        np.testing.assert_allclose(result.policy.sum(), 1.0, atol=1e-12)
        assert result.policy.min() >= 0


def test_certified_gap_follows_the_dtype():
    assert certified_gap(np.float64) == 1e-9
    assert certified_gap(np.float32) == pytest.approx(32 * np.finfo(np.float32).eps)
