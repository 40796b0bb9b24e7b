"""Exact evaluation: win rates, exploitability, robust win rates (THEORY §2–4).

``WR(A, B)`` is the expected total pick probability of ``A``'s positions in the pool ``A ⊕ B``;
``WR(A, B) + WR(B, A) = 1``. ``A`` and ``B`` are products ``π^{⊗k}`` or ``ProductMixture``s.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._combinatorics import all_multisets, num_multisets, rotations
from ._validation import static_count
from .payoffs import (
    check_population,
    contract_opponents,
    gauss_legendre_unit,
    log_time_grid,
    map_prompts,
    mixture_average,
    pl_log_mgf,
    pl_position_integrals,
    pl_scaled_weights,
    ranking_masses,
    response_payoffs,
    to_response_order,
    user_average,
)
from .policies import ProductMixture, as_mixture
from .populations import DenseGame, PlackettLucePopulation, RankingPopulation

__all__ = [
    "win_rate",
    "exploitability",
    "robust_win_rate",
    "robust_win_rate_bounds",
    "RobustBounds",
]

#: Gauss–Legendre nodes used at most; exact for polynomial degree up to ``2 * MAX_NODES - 1``.
MAX_GAUSS_NODES = 1024


def _power(base, exponent: int):
    """``base ** exponent`` for ``base >= 0`` and a static integer exponent (``0 ** 0 = 1``)."""
    if exponent == 0:
        return jnp.ones_like(base)
    safe = jnp.where(base > 0, base, 1.0)
    return jnp.where(base > 0, jnp.exp(exponent * jnp.log(safe)), 0.0)


def _response_masses(pop: RankingPopulation, policy):
    """``(below, tied)`` masses in response order, user-major ``[m, n]``."""
    below, tied = ranking_masses(pop, policy)
    return to_response_order(pop, below), to_response_order(pop, tied)


def _gauss_nodes(degree: int, dtype):
    return gauss_legendre_unit(min(MAX_GAUSS_NODES, max(1, math.ceil((degree + 1) / 2))), dtype)


def _designated_values(pop, own, other, k: int, ell: int):
    """Payoff of one position holding ``y`` against ``k-1`` draws of ``own``, ``ell`` of ``other``.

    Ranking: ``∫_0^1 (b + p t)^{k-1} (d + q t)^ell dt`` (``1/(1+c) = ∫ t^c``); Plackett–Luce:
    ``W_y ∫ e^{-W_y t} M_own^{k-1} M_other^ell dt``; dense: a contraction. Returns ``[n]``.
    """
    dtype = own.dtype
    if isinstance(pop, RankingPopulation):
        b, p = _response_masses(pop, own)
        d, q = _response_masses(pop, other)
        t, w_t = _gauss_nodes(k - 1 + ell, dtype)
        t = t[:, None, None]
        integrand = _power(b + p * t, k - 1) * _power(d + q * t, ell)  # [Q, m, n]
        return user_average(pop.weights.astype(dtype), jnp.einsum("q,qmn->mn", w_t, integrand))
    if isinstance(pop, PlackettLucePopulation):

        def one_user(log_weights):
            w = pl_scaled_weights(log_weights.astype(dtype))
            grid = log_time_grid(w, k + ell)
            field = (k - 1) * pl_log_mgf(w, own, grid) + ell * pl_log_mgf(w, other, grid)
            return pl_position_integrals(w, grid, field)

        return user_average(pop.weights.astype(dtype), jax.vmap(one_user)(pop.log_weights))
    if pop.num_players != k + ell:
        raise ValueError(
            f"k + ell = {k + ell} does not match the DenseGame's {pop.num_players} players"
        )
    return contract_opponents(pop.win_tensor.astype(dtype), [own] * (k - 1) + [other] * ell)


def win_rate(pop, policy, k, opponent, ell=1) -> Float[Array, "*batch"]:
    """``WR(A, B)`` of ``A = policy^{⊗k}`` against ``B = opponent^{⊗ell}`` (THEORY §2).

    Either side may be a ``ProductMixture``. With ``ell = 1`` (or ``k = 1``) this is one call to
    the closed-form payoffs; otherwise ``k Σ_y π_y v(y)`` with ``v`` the payoff of one
    designated position, by exact Gauss–Legendre quadrature for ranking users (``k + ell <=
    2048``).

    Example:
        >>> pop = RankingPopulation([[1.0, 0.0], [0.0, 1.0]])
        >>> round(float(win_rate(pop, jnp.array([0.5, 0.5]), 2, jnp.array([1.0, 0.0]))), 4)
        0.6667
    """
    check_population(pop)
    k = static_count(k, "k")
    ell = static_count(ell, "ell")
    a = as_mixture(policy, pop.num_responses, "policy")
    b = as_mixture(opponent, pop.num_responses, "opponent")
    if ell == 1:
        u = response_payoffs(pop, a, k)
        return 1.0 - jnp.sum(b.marginal().astype(u.dtype) * u, axis=-1)
    if k == 1:
        u = response_payoffs(pop, b, ell)
        return jnp.sum(a.marginal().astype(u.dtype) * u, axis=-1)

    return map_prompts(_mixture_win_rate, pop, a, b, k=k, ell=ell)


def _mixture_win_rate(pop, mine: ProductMixture, theirs: ProductMixture, k: int, ell: int):
    """``Σ_t Σ_s α_t β_s k <π_t, v(·; π_t, σ_s)>`` for one prompt."""

    def against(own):
        per_other = jax.vmap(lambda other: k * own @ _designated_values(pop, own, other, k, ell))
        return theirs.weights.astype(own.dtype) @ per_other(theirs.policies.astype(own.dtype))

    return mixture_average(against, mine)


def exploitability(pop, policy, k) -> Float[Array, "*batch"]:
    """``ε_k(π) = max_y u_k(y, π) − 1/(k+1)``; zero exactly at a symmetric Nash equilibrium.

    For a ``ProductMixture`` ``A`` this is ``k/(k+1) − R_{k,1}(A)`` (it may be negative).

    Example:
        >>> pop = RankingPopulation([[1.0, 0.0], [0.0, 1.0]])
        >>> float(exploitability(pop, jnp.array([0.5, 0.5]), 1))
        0.0
    """
    u = response_payoffs(pop, policy, k)
    return jnp.max(u, axis=-1) - 1.0 / (k + 1)


# --------------------------------------------------------------------------- ℓ-output opponents


def _set_wins_one(pop, policy, k: int, sets):
    """``WR(S, π^{⊗k})`` for each deterministic opponent multiset ``S`` (rows of ``sets``)."""
    dtype = policy.dtype
    size = sets.shape[1]
    sets = jnp.asarray(sets)
    if isinstance(pop, RankingPopulation):
        below, tied = _response_masses(pop, policy)  # [m, n]
        group = to_response_order(pop, pop.tie_lo)  # [m, n] tie-group index, higher = better
        t, w_t = _gauss_nodes(k + size - 1, dtype)
        weights = pop.weights.astype(dtype)

        def wins(s):
            g = group[:, s].T  # [size, m]
            top = jnp.max(g, axis=0)
            count = jnp.sum(g == top, axis=0).astype(dtype)
            best = s[jnp.argmax(g, axis=0)]
            users = jnp.arange(g.shape[1])
            b, p = below[users, best], tied[users, best]
            # c ∫_0^1 t^{c-1} (b + p t)^k dt, the share of c tied positions against k draws.
            share = count * (t[:, None] ** (count - 1)) * _power(b + p * t[:, None], k)
            return user_average(weights, w_t @ share)

        return jax.lax.map(wins, sets, batch_size=256)
    if isinstance(pop, PlackettLucePopulation):

        def one_user(log_weights):
            w = pl_scaled_weights(log_weights.astype(dtype))
            grid = log_time_grid(w, k + size)
            return pl_position_integrals(
                jnp.sum(w[sets], axis=1), grid, k * pl_log_mgf(w, policy, grid)
            )

        return user_average(pop.weights.astype(dtype), jax.vmap(one_user)(pop.log_weights))
    if pop.num_players != k + size:
        raise ValueError(
            f"k + ell = {k + size} does not match the DenseGame's {pop.num_players} players"
        )
    tensor = contract_opponents(pop.win_tensor.astype(dtype), [policy] * k)  # [n]*size
    rotated = sets[:, rotations(size)]  # [R, size, size]: each member moved to the front
    return jnp.sum(tensor[tuple(jnp.moveaxis(rotated, -1, 0))], axis=-1)


def _mixture_set_wins(pop, mixture: ProductMixture, k: int, sets):
    """``WR(S, A)`` for each row ``S`` of ``sets`` and a mixture ``A`` (one prompt)."""
    return mixture_average(lambda pi: _set_wins_one(pop, pi, k, sets), mixture)


def robust_win_rate(pop, policy, k, ell=1, max_opponents: int = 200_000) -> Float[Array, "*batch"]:
    """``R_{k,ℓ}(A) = min_B WR(A, B)`` over every ℓ-output opponent ``B`` (exact).

    ``ℓ = 1``: ``1 − max_y u_k(y, A)``. ``ℓ > 1``: deterministic multisets are the worst case, so
    all ``C(n+ℓ-1, ℓ)`` of them are scored, vectorised. Past ``max_opponents`` multisets this
    raises; :func:`robust_win_rate_bounds` then gives certified bounds.

    Example:
        >>> pop = RankingPopulation([[1.0, 0.0], [0.0, 1.0]])
        >>> round(float(robust_win_rate(pop, jnp.array([0.5, 0.5]), 2)), 4)  # k/(k+1) = 2/3
        0.6667
    """
    check_population(pop)
    k = static_count(k, "k")
    ell = static_count(ell, "ell")
    mixture = as_mixture(policy, pop.num_responses)
    if ell == 1:
        return 1.0 - jnp.max(response_payoffs(pop, mixture, k), axis=-1)
    n = pop.num_responses
    count = num_multisets(n, ell)
    if count > max_opponents:
        raise ValueError(
            f"robust_win_rate: ell={ell} with n={n} responses has C(n+ell-1, ell) = {count:,} "
            f"deterministic opponents, above max_opponents={max_opponents:,}; raise "
            "max_opponents or use robust_win_rate_bounds for certified bounds"
        )
    wins = map_prompts(_mixture_set_wins, pop, mixture, k=k, sets=all_multisets(n, ell))
    return 1.0 - jnp.max(wins, axis=-1)


class RobustBounds(NamedTuple):
    """Certified ``lower <= R_{k,ℓ}(A) <= upper``; ``opponent`` attains ``upper``."""

    lower: Float[Array, "*batch"]
    upper: Float[Array, "*batch"]
    opponent: Int[Array, "*batch ell"]


def robust_win_rate_bounds(pop, policy, k, ell) -> RobustBounds:
    """Certified bounds on ``R_{k,ℓ}(A)`` in ``O(ℓ·n)`` opponent evaluations.

    Lower: ``1 − ℓ·max_y u_k(y, A)`` (the pick probability of a set is at most the sum over its
    members, for ranking and Plackett–Luce users). Upper: the win rate against a greedily built
    ℓ-output opponent (each step adds the response that raises its win rate most).
    """
    check_population(pop)
    if isinstance(pop, DenseGame):
        raise ValueError("robust_win_rate_bounds needs ranking or Plackett–Luce users")
    k = static_count(k, "k")
    ell = static_count(ell, "ell")
    mixture = as_mixture(policy, pop.num_responses)
    u = response_payoffs(pop, mixture, k)
    lower = jnp.clip(1.0 - ell * jnp.max(u, axis=-1), 0.0, 1.0)

    upper, opponent = map_prompts(_greedy_opponent, pop, mixture, k=k, ell=ell)
    return RobustBounds(lower, upper, opponent)


def _greedy_opponent(pop, mixture: ProductMixture, k: int, ell: int):
    """Grow an ℓ-multiset one response at a time, each time the one that wins most against A."""
    n = pop.num_responses
    chosen = jnp.zeros((0,), jnp.int32)
    for size in range(ell):  # ell is static: each step scores the n one-larger sets
        prefix = jnp.broadcast_to(chosen, (n, size))
        rows = jnp.concatenate([prefix, jnp.arange(n, dtype=jnp.int32)[:, None]], axis=1)
        chosen = rows[jnp.argmax(_mixture_set_wins(pop, mixture, k, rows))]
    return 1.0 - _mixture_set_wins(pop, mixture, k, chosen[None])[0], chosen
