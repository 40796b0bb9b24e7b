"""NLHF on data shaped like real elections, in float32 with ``jax_enable_x64`` off.

PrefLib's 00008-00000006.toc (2103 user types, 10 responses, counts summing to 8680) made
``ua.nlhf`` raise "duality gap reached 8.5e-06 > 3.8e-06": the float32 pairwise matrix, a plain
float32 sum over the users, came out with ``P[y, y] = 0.5000085``, and the certificate was measured
on it. ``_election`` rebuilds that shape small: many light voters and one heavy bloc.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua
from ualign_jax.baselines import certified_gap, float64_pairwise_matrix

FLOAT32_GAP = certified_gap(np.float32)


def _election(light: int = 600, bloc: int = 700) -> tuple[np.ndarray, np.ndarray]:
    """``light`` single voters cycling through the six rankings of 3 responses (no margins), and
    one type counted ``bloc`` times ranking 0 > 1 > 2: response 0 is the Condorcet winner.

    At these sizes XLA's float32 CPU sum put ``P[0, 0]`` at ``0.5 + 7.7e-6``, twice
    ``certified_gap(float32)``, so the old certificate raised here.
    """
    rankings = np.array(list(itertools.permutations(range(3))), np.float64)
    utilities = np.concatenate([[[2.0, 1.0, 0.0]], rankings[np.arange(light) % 6]])
    counts = np.concatenate([[float(bloc)], np.ones(light)])
    return utilities, counts


def _exact_pairwise(utilities: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``P[y, z]`` from the voters directly, in float64 (ties count 1/2)."""
    beats = utilities[:, :, None] > utilities[:, None, :]
    ties = utilities[:, :, None] == utilities[:, None, :]
    return np.einsum("i,iyz->yz", counts / counts.sum(), beats + 0.5 * ties)


def _float32_population(utilities, counts):
    return ua.RankingPopulation(
        jnp.asarray(utilities, jnp.float32), weights=jnp.asarray(counts, jnp.float32)
    )


def test_float32_nlhf_certifies_a_many_voter_election():
    utilities, counts = _election()
    exact = _exact_pairwise(utilities, counts)
    with jax.enable_x64(False):
        pop = _float32_population(utilities, counts)
        policy = ua.nlhf(pop)  # raised RuntimeError before the certificate moved to float64
        exploitability = float(ua.exploitability(pop, policy, 1))
    assert policy.dtype == jnp.float32
    assert jax.config.jax_enable_x64  # the float64 context did not leak or clobber the setting
    np.testing.assert_array_equal(policy, [1.0, 0.0, 0.0])  # the Condorcet winner, exactly
    assert np.max((exact - 0.5) @ np.asarray(policy, np.float64)) <= FLOAT32_GAP
    # Computed in float32, ε of an exact equilibrium is rounding of either sign (5.4e-7 here),
    # inside the float32 certificate.
    assert abs(exploitability) <= FLOAT32_GAP


def test_float64_pairwise_matrix_is_exact_for_float32_data():
    utilities, counts = _election()
    with jax.enable_x64(False):
        pop = _float32_population(utilities, counts)
        wide = float64_pairwise_matrix(pop)
        assert not jax.config.jax_enable_x64
        stored_weights = np.asarray(pop.weights, np.float64)  # counts / total, rounded to float32
    assert wide.dtype == np.float64
    # Exact for the game the float32 population holds (its weights rounded to float32) ...
    np.testing.assert_allclose(wide, _exact_pairwise(utilities, stored_weights), rtol=0, atol=1e-12)
    # ... which is within a float32 rounding of the election's own game.
    np.testing.assert_allclose(wide, _exact_pairwise(utilities, counts), rtol=0, atol=1e-7)


def test_float64_pairwise_matrix_widens_other_population_kinds():
    log_weights = np.log(np.array([[3.0, 1.0, 0.5, 2.0], [0.2, 1.0, 4.0, 1.0]]))
    expected = np.asarray(ua.pairwise_matrix(ua.PlackettLucePopulation(log_weights)))
    with jax.enable_x64(False):
        narrow = ua.PlackettLucePopulation(jnp.asarray(log_weights, jnp.float32))
        wide = float64_pairwise_matrix(narrow)
    # float32 log-weights are a slightly different game: within a float32 rounding of the data.
    np.testing.assert_allclose(wide, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(wide + wide.T, 1.0, rtol=0, atol=1e-9)


@pytest.mark.parametrize("bloc", [300, 700])
def test_float32_rlhf_matches_float64_rlhf(bloc):
    utilities, counts = _election(bloc=bloc)
    expected = ua.rlhf(ua.RankingPopulation(jnp.asarray(utilities), weights=jnp.asarray(counts)))
    with jax.enable_x64(False):
        policy = ua.rlhf(_float32_population(utilities, counts))
    assert policy.dtype == jnp.float32
    np.testing.assert_allclose(policy, expected, rtol=0, atol=2 * np.finfo(np.float32).eps)


def test_float32_win_tensors_sum_users_in_two_levels():
    """``win_tensor`` (and so ``pairwise_matrix``) sums the users in blocks, then over blocks: on
    the election its float32 pairwise matrix is within 1e-6 of the exact one and the 3-player
    tensor constant-sum within 4e-6 (a plain float32 sum over the 601 users was off by 7.7e-6
    and 1.4e-5; two levels give 4.8e-7 and 1.6e-6)."""
    utilities, counts = _election()
    exact = _exact_pairwise(utilities, counts)
    with jax.enable_x64(False):
        pop = _float32_population(utilities, counts)
        pairwise = np.asarray(ua.pairwise_matrix(pop), np.float64)
        triple = np.asarray(ua.win_tensor(pop, 3), np.float64)
    assert np.max(np.abs(pairwise - exact)) < 1e-6
    constant_sum = triple + triple.transpose(1, 2, 0) + triple.transpose(2, 0, 1)
    assert np.max(np.abs(constant_sum - 1.0)) < 4e-6
