"""The instance on which the ℓ-output guarantee of an equilibrium is tight (docs/theory.md §4 (T4)).

Against ``ell_tight_instance(k, ℓ, eps)`` the point mass ``δ_a`` is a strict equilibrium of the
(k+1)-player game, the solver finds it from the uniform start, and its robust win rate against
ℓ-output opponents is ``min(1 − ℓ/(k+1) + ℓ·eps, k/(k+ℓ))``: within ``ℓ·eps`` of the guarantee
``1 − ℓ/(k+1)`` once ``eps ≤ (ℓ−1)/((k+1)(k+ℓ))``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua
from ualign_jax.generators import ell_tight_instance

EPS = 0.01
#: (k, ℓ): ℓ = 1 (where the value is k/(k+1) whatever eps), and ℓ = 2, 3 with EPS below
#: (ℓ−1)/((k+1)(k+ℓ)), where the value is the guarantee plus ℓ·EPS.
CASES = [(2, 1), (2, 2), (4, 2), (4, 3)]


def _point_mass_on_a(pop):
    return jnp.zeros(pop.num_responses, pop.utilities.dtype).at[0].set(1.0)


def _expected_robust_win_rate(k, ell, eps):
    return min(1 - ell / (k + 1) + ell * eps, k / (k + ell))


@pytest.mark.parametrize(("k", "ell"), CASES)
def test_construction(k, ell):
    pop = ell_tight_instance(k, ell, eps=EPS, dtype=jnp.float64)
    n = ell + 1
    assert pop.names == ("a",) + tuple(f"z{j}" for j in range(1, n))
    u = np.asarray(pop.utilities)
    assert u.shape == (n, n)
    np.testing.assert_array_equal(np.sort(u, axis=1), np.tile(np.arange(1, n + 1), (n, 1)))
    assert np.argmax(u[0]) == 0  # the majority type ranks a first
    for j in range(1, n):
        order = np.argsort(-u[j])
        assert order[0] == j and order[1] == 0  # zj ≻ a ≻ the other z
    q = 1 / (k + 1) - EPS
    np.testing.assert_allclose(np.asarray(pop.weights), [1 - ell * q] + [q] * ell, atol=1e-15)


@pytest.mark.parametrize(("k", "ell"), CASES)
def test_point_mass_on_a_is_a_strict_equilibrium(k, ell):
    pop = ell_tight_instance(k, ell, eps=EPS, dtype=jnp.float64)
    delta_a = _point_mass_on_a(pop)
    assert float(ua.exploitability(pop, delta_a, k)) <= 1e-12
    payoffs = np.asarray(ua.response_payoffs(pop, delta_a, k))
    np.testing.assert_allclose(payoffs[0], 1 / (k + 1), atol=1e-12)
    np.testing.assert_allclose(payoffs[1:], 1 / (k + 1) - EPS, atol=1e-12)  # each zj wins q


@pytest.mark.parametrize(("k", "ell"), CASES)
def test_robust_win_rate_of_the_equilibrium(k, ell):
    pop = ell_tight_instance(k, ell, eps=EPS, dtype=jnp.float64)
    delta_a = _point_mass_on_a(pop)
    rate = float(ua.robust_win_rate(pop, delta_a, k, ell=ell))
    assert rate == pytest.approx(_expected_robust_win_rate(k, ell, EPS), abs=1e-9)
    if ell >= 2:  # EPS is below the threshold in every case: the guarantee plus ℓ·EPS
        assert rate == pytest.approx(1 - ell / (k + 1) + ell * EPS, abs=1e-9)
    else:  # ℓ = 1: every equilibrium has R_{k,1} = k/(k+1) (T1)
        assert rate == pytest.approx(k / (k + 1), abs=1e-9)


@pytest.mark.parametrize(("k", "ell"), CASES)
def test_solver_from_uniform_finds_the_point_mass(k, ell):
    pop = ell_tight_instance(k, ell, eps=EPS, dtype=jnp.float64)
    delta_a = _point_mass_on_a(pop)
    policy = ua.solve(pop, k, tol=1e-9).policy
    np.testing.assert_allclose(np.asarray(policy), np.asarray(delta_a), atol=1e-6)
    rate = float(ua.robust_win_rate(pop, policy, k, ell=ell))
    assert rate == pytest.approx(_expected_robust_win_rate(k, ell, EPS), abs=1e-6)


def test_above_the_threshold_the_value_is_k_over_k_plus_ell():
    # eps > (ℓ−1)/((k+1)(k+ℓ)) = 1/12 for k = ℓ = 2: ℓ copies of a become the worst opponent.
    k, ell, eps = 2, 2, 0.1
    pop = ell_tight_instance(k, ell, eps=eps, dtype=jnp.float64)
    rate = float(ua.robust_win_rate(pop, _point_mass_on_a(pop), k, ell=ell))
    assert rate == pytest.approx(k / (k + ell), abs=1e-9)
    assert 1 - ell / (k + 1) + ell * eps > k / (k + ell)


def test_default_eps_is_in_the_regime_of_the_formula():
    k, ell = 4, 3
    pop = ell_tight_instance(k, ell, dtype=jnp.float64)
    eps = 1 / (2 * (k + 1) * (k + ell))
    assert eps <= (ell - 1) / ((k + 1) * (k + ell))
    rate = float(ua.robust_win_rate(pop, _point_mass_on_a(pop), k, ell=ell))
    assert rate == pytest.approx(1 - ell / (k + 1) + ell * eps, abs=1e-9)


def test_float32():
    pop = ell_tight_instance(2, 2, eps=EPS, dtype=jnp.float32)
    assert pop.utilities.dtype == jnp.float32 and pop.weights.dtype == jnp.float32
    rate = float(ua.robust_win_rate(pop, _point_mass_on_a(pop), 2, ell=2))
    assert rate == pytest.approx(1 - 2 / 3 + 2 * EPS, abs=1e-6)


def test_is_exported():
    assert ua.ell_tight_instance is ell_tight_instance
    assert "ell_tight_instance" in ua.__all__


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((0, 1), "k"),
        ((1.5, 1), "k"),
        ((True, 1), "k"),
        ((2, 0), "ell"),
        ((2, 4), "ell"),
        ((2, 2.0), "ell"),
        ((2, 2, 0.0), "eps"),
        ((2, 2, -0.1), "eps"),
        ((2, 2, 1 / 3), "eps"),
        ((2, 2, float("nan")), "eps"),
        ((2, 2, "small"), "eps"),
        ((2, 3, 1e-50), "eps"),  # with ℓ = k + 1 the majority weight ℓ·eps underflows in float32
    ],
)
def test_bad_arguments_name_the_argument(args, name):
    with pytest.raises(ValueError, match=name):
        ell_tight_instance(*args, dtype=jnp.float32)


def test_bad_dtype():
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        ell_tight_instance(2, 2, dtype=jnp.int32)
