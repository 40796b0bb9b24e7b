"""Exact evaluation: win rates, exploitability, robust win rates (THEORY §2–4).

``WR(A, B)`` is the expected total pick probability of ``A``'s positions in the pool ``A ⊕ B``;
``WR(A, B) + WR(B, A) = 1``. ``A`` and ``B`` are products ``π^{⊗k}`` or ``ProductMixture``s.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._combinatorics import all_multisets, num_multisets, rotations
from ._linalg import dot, einsum
from ._validation import check_count, static_count
from .payoffs import (
    check_population,
    contract_opponents,
    log_time_grid,
    map_prompts,
    mixture_average,
    pl_log_mgf,
    pl_position_integrals,
    pl_scaled_weights,
    prompt_batch_shape,
    ranking_response_masses,
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
#: Gauss–Legendre nodes per dyadic interval of the composite rule used past that degree.
COMPOSITE_NODES = 16
#: Most opponent outputs :func:`robust_win_rate_bounds` grows its greedy opponent to.
MAX_BOUNDS_ELL = 100_000
#: Most entries (multisets × ell) :func:`robust_win_rate` materialises.
MAX_OPPONENT_ENTRIES = 2**28


def _power_from_top(top, drop, s, exponent: int):
    """``(top - drop·s) ** exponent`` for ``0 <= drop <= top``, ``0 <= s < 1`` (``0 ** 0 = 1``).

    Evaluated as ``exp(exponent · (log top + log1p(-(drop/top)·s)))``: accurate near ``s = 0``
    for exponents up to ``2**31`` (where ``(1 - 1e-12) ** exponent`` still matters).
    """
    shape = jnp.broadcast_shapes(jnp.shape(top), jnp.shape(s))
    if exponent == 0:
        return jnp.ones(shape, top.dtype)
    positive = top > 0
    safe = jnp.where(positive, top, 1.0)
    ratio = jnp.clip(drop / safe, 0.0, 1.0)
    log_value = jnp.log(safe) + jnp.log1p(-ratio * s)
    return jnp.where(positive, jnp.exp(float(exponent) * log_value), 0.0)


def _unit_nodes(degree: int, dtype):
    """Nodes ``s`` and weights ``ω`` with ``Σ ω f(1 - s) ≈ ∫_0^1 f(t) dt`` (``s = 1 - t``).

    Up to ``degree = 2·MAX_GAUSS_NODES - 1``: Gauss–Legendre, exact for polynomials of that
    degree. Past it the integrands here (products of ``(b + p t)^K``, total degree ``degree``)
    are log-concave and concentrate within ``~1/degree`` of ``t = 1``, where a single rule puts
    no node; a composite rule on the dyadic intervals ``s ∈ [2^-(j+1), 2^-j]`` down to
    ``2^-12 / degree`` resolves every scale (relative error ~1e-12 in float64).
    """
    if degree <= 2 * MAX_GAUSS_NODES - 1:
        x, w = np.polynomial.legendre.leggauss(max(1, math.ceil((degree + 1) / 2)))
        return jnp.asarray((1 - x) / 2, dtype), jnp.asarray(w / 2, dtype)
    x, w = np.polynomial.legendre.leggauss(COMPOSITE_NODES)
    levels = math.ceil(math.log2(degree)) + 12
    edges = np.concatenate([2.0 ** -np.arange(levels + 1), [0.0]])  # 1, 1/2, ..., 0
    hi, lo = edges[:-1, None], edges[1:, None]
    nodes = lo + (hi - lo) * (x + 1) / 2
    weights = (hi - lo) * w / 2
    return jnp.asarray(nodes.ravel(), dtype), jnp.asarray(weights.ravel(), dtype)


def _tied_top_share(count, below, tied, k: int, s, w_s):
    """``c ∫_0^1 t^(c-1) (b + p t)^k dt``: share of ``c`` tied top positions against ``k`` draws.

    ``count``, ``below``, ``tied``: ``[m]``; ``s, w_s`` from :func:`_unit_nodes`. Returns ``[m]``.
    """
    s = s[:, None]
    c = count.astype(below.dtype)
    own = jnp.exp((c - 1) * jnp.log1p(-s))  # t^(c-1), c >= 1 and s < 1
    return dot(w_s, c * own * _power_from_top(below + tied, tied, s, k))


def _designated_values(pop, own, other, k: int, ell: int):
    """Payoff of one position holding ``y`` against ``k-1`` draws of ``own``, ``ell`` of ``other``.

    Ranking: ``∫_0^1 (b + p t)^{k-1} (d + q t)^ell dt`` (``1/(1+c) = ∫ t^c``); Plackett–Luce:
    ``W_y ∫ e^{-W_y t} M_own^{k-1} M_other^ell dt``; dense: a contraction. Returns ``[n]``.
    """
    dtype = own.dtype
    if isinstance(pop, RankingPopulation):
        b, p = ranking_response_masses(pop, own)
        d, q = ranking_response_masses(pop, other)
        s, w_s = _unit_nodes(k - 1 + ell, dtype)
        s = s[:, None, None]
        integrand = _power_from_top(b + p, p, s, k - 1) * _power_from_top(d + q, q, s, ell)
        return user_average(pop.weights.astype(dtype), einsum("q,qmn->mn", w_s, integrand))
    if isinstance(pop, PlackettLucePopulation):

        def one_user(log_weights):
            w = pl_scaled_weights(log_weights.astype(dtype))
            grid = log_time_grid(w, float(k + ell), pop.quadrature_nodes)
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
    prompt_batch_shape(
        [("pop", pop.batch_shape), ("policy", a.batch_shape), ("opponent", b.batch_shape)]
    )
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
        per_other = jax.vmap(
            lambda other: k * dot(own, _designated_values(pop, own, other, k, ell))
        )
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


def _set_wins_one(pop, policy, k: int, sets):
    """``WR(S, π^{⊗k})`` for each deterministic opponent multiset ``S`` (rows of ``sets``)."""
    dtype = policy.dtype
    size = sets.shape[1]
    sets = jnp.asarray(sets)
    if isinstance(pop, RankingPopulation):
        below, tied = ranking_response_masses(pop, policy)  # [m, n]
        group = to_response_order(pop, pop.tie_lo)  # [m, n] tie-group index, higher = better
        nodes = _unit_nodes(k + size - 1, dtype)
        weights = pop.weights.astype(dtype)

        def wins(s):
            g = group[:, s].T  # [size, m]
            top = jnp.max(g, axis=0)
            count = jnp.sum(g == top, axis=0)
            best = s[jnp.argmax(g, axis=0)]
            users = jnp.arange(g.shape[1])
            share = _tied_top_share(count, below[users, best], tied[users, best], k, *nodes)
            return user_average(weights, share)

        return jax.lax.map(wins, sets, batch_size=256)
    if isinstance(pop, PlackettLucePopulation):

        def one_user(log_weights):
            w = pl_scaled_weights(log_weights.astype(dtype))
            grid = log_time_grid(w, float(k + size), pop.quadrature_nodes)
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
    if isinstance(pop, DenseGame):
        raise ValueError("robust_win_rate_bounds needs ranking or Plackett–Luce users")
    k = static_count(k, "k")
    ell = static_count(ell, "ell")
    if ell > MAX_BOUNDS_ELL:
        raise ValueError(
            f"robust_win_rate_bounds: ell={ell:,} exceeds {MAX_BOUNDS_ELL:,} (the greedy "
            "opponent takes ell steps); for ell >= k + 1 the lower bound is 0 anyway"
        )
    mixture = as_mixture(policy, pop.num_responses)
    u = response_payoffs(pop, mixture, k)
    lower = jnp.clip(1.0 - ell * jnp.max(u, axis=-1), 0.0, 1.0)

    upper, opponent = map_prompts(_greedy_opponent, pop, mixture, k=k, ell=ell)
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
    alphas = mixture.weights.astype(dtype)
    weights = pop.weights.astype(dtype)

    def average(shares):  # [T, m] -> Σ_t α_t Σ_i w_i shares[t, i]
        return dot(alphas, jax.vmap(lambda share: user_average(weights, share))(shares))

    if isinstance(pop, RankingPopulation):
        group = to_response_order(pop, pop.tie_lo)  # [m, n] tie-group index, higher = better
        below, tied = jax.vmap(lambda pi: ranking_response_masses(pop, pi))(policies)  # [T, m, n]
        nodes = _unit_nodes(k + ell - 1, dtype)
        users = jnp.arange(pop.num_users)
        minus_one = jnp.full(pop.num_users, -1, group.dtype)
        init = (minus_one, jnp.zeros_like(minus_one), jnp.zeros_like(minus_one))

        def add(state, y):
            top, count, best = state
            g = group[:, y]
            count = jnp.where(g > top, 1, jnp.where(g == top, count + 1, count))
            return jnp.maximum(top, g), count, jnp.where(g > top, y, best)

        def value(state):
            _, count, best = state
            return average(
                jax.vmap(
                    lambda b, p: _tied_top_share(count, b[users, best], p[users, best], k, *nodes)
                )(below, tied)
            )

    else:  # Plackett–Luce: a set of total weight S is picked with S ∫ e^{-S t} M(t)^k dt
        scaled = jax.vmap(pl_scaled_weights)(pop.log_weights.astype(dtype))  # [m, n]
        grids = jax.vmap(lambda w: log_time_grid(w, float(k + ell), pop.quadrature_nodes))(scaled)
        fields = jax.vmap(  # [T, m, N]
            lambda pi: jax.vmap(lambda w, g: g.weights * jnp.exp(k * pl_log_mgf(w, pi, g)))(
                scaled, grids
            )
        )(policies)
        init = jnp.zeros(pop.num_users, dtype)

        def add(total, y):
            return total + scaled[:, y]

        def value(total):
            decay = jnp.exp(-grids.times * total[:, None])  # [m, N]
            return average(total * jnp.sum(fields * decay, axis=-1))

    def step(state, _):
        candidates = jax.vmap(add, in_axes=(None, 0))(state, jnp.arange(n, dtype=jnp.int32))
        y = jnp.argmax(jax.lax.map(value, candidates)).astype(jnp.int32)
        return add(state, y), y

    state, chosen = jax.lax.scan(step, init, None, length=ell)
    return 1.0 - value(state), chosen
