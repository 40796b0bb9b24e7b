"""Exact evaluation: win rates, exploitability, robust win rates (docs/theory.md §2–4).

``WR(A, B)`` is the expected total pick probability of ``A``'s positions in the pool ``A ⊕ B``;
``WR(A, B) + WR(B, A) = 1``. ``A`` and ``B`` are products ``π^{⊗k}`` or ``ProductMixture``s.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._combinatorics import all_multisets, num_multisets
from ._linalg import dot
from ._validation import check_count, static_count
from .payoffs import (
    check_population,
    map_prompts,
    mixture_average,
    prompt_batch_shape,
    response_payoffs,
)
from .policies import ProductMixture, as_mixture
from .ranking import RankingPopulation  # noqa: F401  (doctest examples)

__all__ = [
    "win_rate",
    "exploitability",
    "robust_win_rate",
    "robust_win_rate_bounds",
    "RobustBounds",
]

#: Most opponent outputs :func:`robust_win_rate_bounds` grows its greedy opponent to.
MAX_BOUNDS_ELL = 100_000
#: Most entries (multisets × ell) :func:`robust_win_rate` materialises.
MAX_OPPONENT_ENTRIES = 2**28


def win_rate(pop, policy, k, opponent, ell=1) -> Float[Array, "*batch"]:
    """``WR(A, B)`` of ``A = policy^{⊗k}`` against ``B = opponent^{⊗ell}`` (docs/theory.md §2).

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
    ell = static_count(ell, "ell")
    k = check_count(k, "k") if ell == 1 else static_count(k, "k")
    a = as_mixture(policy, pop.num_responses, "policy")
    b = as_mixture(opponent, pop.num_responses, "opponent")
    prompt_batch_shape(
        [("pop", pop.batch_shape), ("policy", a.batch_shape), ("opponent", b.batch_shape)]
    )
    if ell == 1:
        u = response_payoffs(pop, a, k)
        return 1.0 - jnp.sum(b.marginal().astype(u.dtype) * u, axis=-1)
    if isinstance(k, int) and k == 1:
        u = response_payoffs(pop, b, ell)
        return jnp.sum(a.marginal().astype(u.dtype) * u, axis=-1)

    return map_prompts(_mixture_win_rate, pop, a, b, k=k, ell=ell)


def _mixture_win_rate(pop, mine: ProductMixture, theirs: ProductMixture, k: int, ell: int):
    """``Σ_t Σ_s α_t β_s k <π_t, v(·; π_t, σ_s)>`` for one prompt."""

    def against(own):
        per_other = jax.vmap(lambda other: k * dot(own, pop.designated_values(own, other, k, ell)))
        return dot(theirs.weights.astype(own.dtype), per_other(theirs.policies.astype(own.dtype)))

    return mixture_average(against, mine)


def exploitability(pop, policy, k) -> Float[Array, "*batch"]:
    """``ε_k(π) = max_y u_k(y, π) − 1/(k+1)``; zero exactly at a symmetric Nash equilibrium.

    For a ``ProductMixture`` ``A`` this is ``k/(k+1) − R_{k,1}(A)`` (it may be negative).

    Example:
        >>> pop = RankingPopulation([[1.0, 0.0], [0.0, 1.0]])
        >>> float(exploitability(pop, jnp.array([0.5, 0.5]), 1))
        0.0
    """
    k = check_count(k, "k")
    u = response_payoffs(pop, policy, k)
    return jnp.max(u, axis=-1) - 1.0 / (k + 1)


# --------------------------------------------------------------------------- ℓ-output opponents


def _mixture_set_wins(pop, mixture: ProductMixture, k: int, sets):
    """``WR(S, A)`` for each row ``S`` of ``sets`` and a mixture ``A`` (one prompt)."""
    return mixture_average(lambda pi: pop.set_wins(pi, k, jnp.asarray(sets)), mixture)


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
    ell = static_count(ell, "ell")
    k = check_count(k, "k") if ell == 1 else static_count(k, "k")
    if isinstance(max_opponents, bool) or not isinstance(max_opponents, numbers.Integral):
        raise ValueError(f"max_opponents must be an integer, got {max_opponents!r}")
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
    if count * ell > MAX_OPPONENT_ENTRIES:
        raise ValueError(
            f"robust_win_rate: ell={ell:,} with n={n} responses: the {count:,} opponent multisets "
            f"would hold {count * ell:,} entries (limit 2**28); use robust_win_rate_bounds"
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
    ℓ-output opponent (each step adds the response that raises its win rate most; one compiled
    loop of ``ℓ`` steps, ``ℓ <= MAX_BOUNDS_ELL``).
    """
    check_population(pop)
    k = static_count(k, "k")
    ell = static_count(ell, "ell")
    if ell > MAX_BOUNDS_ELL:
        raise ValueError(
            f"robust_win_rate_bounds: ell={ell:,} exceeds {MAX_BOUNDS_ELL:,} (the greedy "
            "opponent takes ell steps); for ell >= k + 1 the lower bound is 0 anyway"
        )
    mixture = as_mixture(policy, pop.num_responses)
    upper, opponent = map_prompts(_greedy_opponent, pop, mixture, k=k, ell=ell)
    u = response_payoffs(pop, mixture, k)
    lower = jnp.clip(1.0 - ell * jnp.max(u, axis=-1), 0.0, 1.0)
    return RobustBounds(lower, upper, opponent)


def _greedy_opponent(pop, mixture: ProductMixture, k: int, ell: int):
    """Grow an ℓ-multiset one response at a time, each time the one that wins most against A.

    The multiset enters the win rate only through a per-user summary, updated in O(m) when a
    response is added: for ranking users the top tie group on offer, how many of the set's
    members sit in it and one of them; for Plackett–Luce users the set's total weight. So the
    ℓ steps are one ``lax.scan`` with a fixed-size state (no Python loop to unroll).
    """
    n = pop.num_responses
    policies = mixture.policies
    dtype = policies.dtype
    init, add, wins = pop.greedy_parts(policies, k, ell)
    alphas = mixture.weights.astype(dtype)

    def value(state):  # Σ_t α_t (the multiset's win against π_t, averaged over users)
        return dot(alphas, wins(state))

    def step(state, _):
        candidates = jax.vmap(add, in_axes=(None, 0))(state, jnp.arange(n, dtype=jnp.int32))
        y = jnp.argmax(jax.lax.map(value, candidates)).astype(jnp.int32)
        return add(state, y), y

    state, chosen = jax.lax.scan(step, init, None, length=ell)
    return 1.0 - value(state), chosen
