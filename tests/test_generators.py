"""Synthetic populations: impartial culture, Mallows, Plackett–Luce mixtures, Condorcet (T3)."""

from __future__ import annotations

import inspect
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ualign_jax.generators import (
    condorcet_instance,
    impartial_culture,
    mallows_mixture,
    plackett_luce_mixture,
    sampled_impartial_culture,
)
from ualign_jax.populations import PlackettLucePopulation, RankingPopulation


def _rows_are_permutations(u):
    n = u.shape[1]
    np.testing.assert_array_equal(np.sort(u, axis=1), np.tile(np.arange(1, n + 1), (u.shape[0], 1)))


def _pairwise(pop):
    """P[a, b] = P(a ≻ b) for ranking users, ties split: computed from utilities with NumPy."""
    u = np.asarray(pop.utilities, np.float64)
    w = np.asarray(pop.weights, np.float64)
    beats = (u[:, :, None] > u[:, None, :]) + 0.5 * (u[:, :, None] == u[:, None, :])
    return np.einsum("i,iab->ab", w, beats)


def test_exact_impartial_culture():
    n = 4
    pop = impartial_culture(n)
    u = np.asarray(pop.utilities)
    assert isinstance(pop, RankingPopulation)
    assert u.shape == (math.factorial(n), n)
    np.testing.assert_allclose(np.asarray(pop.weights), 1 / math.factorial(n), rtol=1e-6)
    _rows_are_permutations(u)
    assert len({tuple(r) for r in u}) == math.factorial(n)  # every ranking once
    for y in range(n):  # each response sits in each position equally often
        np.testing.assert_array_equal(np.bincount(u[:, y].astype(int))[1:], math.factorial(n - 1))
    np.testing.assert_allclose(_pairwise(pop), 0.5)


def test_sampled_impartial_culture():
    pop = sampled_impartial_culture(jax.random.key(0), 6, 200)
    assert pop.utilities.shape == (200, 6)
    _rows_are_permutations(np.asarray(pop.utilities))
    again = sampled_impartial_culture(jax.random.key(0), 6, 200)
    np.testing.assert_array_equal(np.asarray(pop.utilities), np.asarray(again.utilities))


def test_impartial_culture_validation():
    with pytest.raises(ValueError, match="sampled_impartial_culture"):
        impartial_culture(9)
    with pytest.raises(ValueError, match="key is required"):
        sampled_impartial_culture(None, 5, 10)
    with pytest.raises(ValueError, match="num_responses"):
        impartial_culture(0)
    with pytest.raises(ValueError, match="num_users"):
        sampled_impartial_culture(jax.random.key(0), 3, 0)


def test_every_generator_takes_the_key_first_and_one_dtype_check():
    key = jax.random.key(0)
    for make in (
        lambda **kw: sampled_impartial_culture(key, 3, 4, **kw),
        lambda **kw: mallows_mixture(key, 3, 4, **kw),
        lambda **kw: plackett_luce_mixture(key, 3, 2, **kw),
        lambda **kw: impartial_culture(3, **kw),
        lambda **kw: condorcet_instance(3, 0.1, **kw),
    ):
        for bad in ("not-a-dtype", jnp.int32):  # one error type for both
            with pytest.raises(ValueError, match="dtype must be a floating dtype"):
                make(dtype=bad)
    for fn in (sampled_impartial_culture, mallows_mixture, plackett_luce_mixture):
        assert next(iter(inspect.signature(fn).parameters)) == "key"


N, M = 4, 20000  # one shape for all statistical Mallows tests (one compilation)


def _mallows(seed, dispersion, components=1):
    pop = mallows_mixture(jax.random.key(seed), N, M, components, dispersion)
    u = np.asarray(pop.utilities)
    _rows_are_permutations(u)
    return u


def test_mallows_small_dispersion_concentrates_on_centre():
    u = _mallows(0, 1e-6)
    assert len({tuple(r) for r in u}) == 1  # every user is the centre
    u3 = mallows_mixture(jax.random.key(1), N, 50, num_components=3, dispersion=1e-6).utilities
    assert len({tuple(r) for r in np.asarray(u3)}) <= 3


def test_mallows_uniform_at_dispersion_one():
    u = _mallows(1, 1.0)
    first = np.bincount(np.argmax(u, axis=1), minlength=N) / M
    # sd of each frequency is sqrt(3/16 / 20000) ~ 0.003; phi = 0.5 would put ~0.53 on one
    np.testing.assert_allclose(first, 1 / N, atol=0.02)


def test_mallows_matches_kendall_law():
    """Empirical law of the rankings vs exp(-d_K(r, centre) log(1/phi)) / Z, total variation."""
    phi = 0.5
    u = _mallows(2, phi)
    rows, counts = np.unique(u, axis=0, return_counts=True)
    centre = rows[np.argmax(counts)]

    def kendall(a, b):
        return sum(
            (a[i] - a[j]) * (b[i] - b[j]) < 0 for i, j in itertools.combinations(range(N), 2)
        )

    perms = np.array([N - np.array(p) for p in itertools.permutations(range(N))], dtype=float)
    law = np.array([phi ** kendall(p, centre) for p in perms])
    law /= law.sum()
    emp = {tuple(r): c / M for r, c in zip(rows, counts, strict=True)}
    tv = 0.5 * sum(abs(emp.get(tuple(p), 0.0) - q) for p, q in zip(perms, law, strict=True))
    assert tv < 0.03  # expected ~0.01 at M = 20000


def test_mallows_validation():
    key = jax.random.key(0)
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="dispersion"):
            mallows_mixture(key, 3, 10, dispersion=bad)
    with pytest.raises(ValueError, match="num_components"):
        mallows_mixture(key, 3, 10, num_components=0)
    with pytest.raises(ValueError, match="num_users"):
        mallows_mixture(key, 3, 0)
    with pytest.raises(ValueError, match="key"):
        mallows_mixture(None, 3, 10)


def test_plackett_luce_mixture():
    pop = plackett_luce_mixture(jax.random.key(0), 5, 3, scale=2.0)
    assert isinstance(pop, PlackettLucePopulation)
    assert pop.log_weights.shape == (3, 5) and pop.weights.shape == (3,)
    w = np.asarray(pop.weights)
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-5)
    assert np.std(np.asarray(pop.log_weights)) > 0.5
    flat = plackett_luce_mixture(jax.random.key(0), 5, 3, scale=0.0)
    np.testing.assert_array_equal(np.asarray(flat.log_weights), 0.0)
    for bad in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="scale"):
            plackett_luce_mixture(jax.random.key(0), 5, 3, scale=bad)
    with pytest.raises(ValueError, match="num_components"):
        plackett_luce_mixture(jax.random.key(0), 5, 0)


@pytest.mark.parametrize(("n", "delta"), [(2, 0.1), (3, 0.25), (5, 0.05), (6, 0.5)])
def test_condorcet_instance(n, delta):
    pop = condorcet_instance(n, delta)
    assert pop.utilities.shape == (n, n)
    _rows_are_permutations(np.asarray(pop.utilities))
    p = _pairwise(pop)
    np.testing.assert_allclose(p[0, 1:], 0.5 + delta, atol=1e-6)
    for y in range(1, n):  # no other Condorcet winner
        assert not all(p[y, z] > 0.5 for z in range(n) if z != y)


def test_condorcet_validation():
    for bad in (0.0, -0.1, 0.6):
        with pytest.raises(ValueError, match="delta"):
            condorcet_instance(4, bad)
    with pytest.raises(ValueError, match="num_responses"):
        condorcet_instance(1, 0.1)
