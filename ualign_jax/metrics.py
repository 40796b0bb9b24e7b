"""Exact evaluation: win rates, exploitability, robust win rates (docs/theory.md §2–4).

``WR(A, B)`` is the expected total pick probability of ``A``'s positions in the pool ``A ⊕ B``;
``WR(A, B) + WR(B, A) = 1``. ``A`` and ``B`` are products ``π^{⊗k}``, ``ProductMixture``s or
``KOutputPolicy`` laws over tuples (then ``WR`` is the ``α``-average over their tuples).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._branch_bound import certified_robust_win_rate, searchable
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
from .policies import KOutputPolicy, ProductMixture, as_k_output, as_mixture
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
#: Largest ell for which :func:`robust_win_rate` searches (branch and bound) past
#: ``max_opponents`` multisets; its tree is ell levels deep (robust_win_rate_bounds has no cap).
MAX_SEARCH_ELL = 32
MAX_OPPONENT_ENTRIES = 2**28


def win_rate(pop, policy, k, opponent, ell=1) -> Float[Array, "*batch"]:
    """``WR(A, B)`` of ``A = policy^{⊗k}`` against ``B = opponent^{⊗ell}`` (docs/theory.md §2).

    Either side may be a ``ProductMixture``. With ``ell = 1`` (or ``k = 1``) this is one call to
    the closed-form payoffs; otherwise ``k Σ_y π_y v(y)`` with ``v`` the payoff of one
    designated position, by exact Gauss–Legendre quadrature for ranking users (``k + ell <=
    2048``). Either side may also be a ``KOutputPolicy`` (its tuple length must be ``k``,
    resp. ``ell``): ``WR(A, B) = Σ_t α_t WR(S_t, B)`` (docs/theory.md §1, "Laws over tuples").

    Example:
        >>> pop = RankingPopulation([[1.0, 0.0], [0.0, 1.0]])
        >>> round(float(win_rate(pop, jnp.array([0.5, 0.5]), 2, jnp.array([1.0, 0.0]))), 4)
        0.6667
    """
    check_population(pop)
    ell = static_count(ell, "ell")
    if isinstance(policy, KOutputPolicy) or isinstance(opponent, KOutputPolicy):
        return _tuple_law_win_rate(pop, policy, static_count(k, "k"), opponent, ell)
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


def _either_law(policy, n: int, outputs: int, name: str, count: str):
    """``policy`` validated as a ``KOutputPolicy`` or as a mixture of products."""
    if isinstance(policy, KOutputPolicy):
        return as_k_output(policy, n, outputs, name, count)
    return as_mixture(policy, n, name)


def _tuple_law_win_rate(pop, policy, k: int, opponent, ell: int):
    """``WR(A, B)`` when a side is a law over tuples: ``Σ_t α_t WR(S_t, B)``, from the pool
    shares (both laws over tuples) or from ``set_wins`` against the other side's products."""
    n = pop.num_responses
    a = _either_law(policy, n, k, "policy", "k")
    b = _either_law(opponent, n, ell, "opponent", "ell")
    prompt_batch_shape(
        [("pop", pop.batch_shape), ("policy", a.batch_shape), ("opponent", b.batch_shape)]
    )
    if isinstance(a, KOutputPolicy) and isinstance(b, KOutputPolicy):
        return map_prompts(_law_vs_law, pop, a, b)
    if isinstance(a, KOutputPolicy):
        return map_prompts(_law_vs_products, pop, a, b, draws=ell)
    return 1.0 - map_prompts(_law_vs_products, pop, b, a, draws=k)


def _law_vs_law(pop, mine: KOutputPolicy, theirs: KOutputPolicy):
    """``Σ_t Σ_s α_t β_s share(S_t vs T_s)`` for one prompt."""
    shares = pop.pool_shares(mine.tuples, theirs.tuples)
    alphas, betas = (law.weights.astype(shares.dtype) for law in (mine, theirs))
    return dot(alphas, dot(shares, betas))


def _law_vs_products(pop, law: KOutputPolicy, products: ProductMixture, draws: int):
    """``Σ_t α_t WR(S_t, B)`` against ``draws`` outputs of the mixture ``B`` (one prompt)."""
    wins = _mixture_set_wins(pop, products, draws, law.tuples)
    return dot(law.weights.astype(wins.dtype), wins)


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

    ``ℓ = 1``: ``1 − max_y u_k(y, A)``. ``ℓ > 1``: deterministic multisets are the worst case.
    Up to ``max_opponents`` of them, all ``C(n+ℓ-1, ℓ)`` are scored, vectorised (jit-able).
    Beyond, for concrete ranking or Plackett–Luce populations and a policy or
    ``ProductMixture`` (``ℓ <= MAX_SEARCH_ELL``), an exact branch and bound over multisets runs
    on the host (:func:`robust_win_rate_bounds` with ``tol=0``; docs/theory.md §4); otherwise
    this raises.
    For a ``KOutputPolicy`` ``A`` (tuples of length ``k``): ``min_T Σ_t α_t share(S_t vs T)``
    over the same multisets ``T`` (docs/theory.md §1), for every ``ℓ >= 1``.

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
    if isinstance(policy, KOutputPolicy):
        law = as_k_output(policy, pop.num_responses, static_count(k, "k"))
        opponents = _opponent_multisets(pop.num_responses, ell, max_opponents)
        return jnp.min(map_prompts(_law_vs_opponents, pop, law, opponents=opponents), axis=-1)
    mixture = as_mixture(policy, pop.num_responses)
    if ell == 1:
        return 1.0 - jnp.max(response_payoffs(pop, mixture, k), axis=-1)
    too_many = num_multisets(pop.num_responses, ell) > max_opponents
    if too_many and ell <= MAX_SEARCH_ELL and searchable(pop, mixture):
        return certified_robust_win_rate(pop, mixture, k, ell).upper
    opponents = _opponent_multisets(pop.num_responses, ell, max_opponents)
    wins = map_prompts(_mixture_set_wins, pop, mixture, k=k, sets=opponents)
    return 1.0 - jnp.max(wins, axis=-1)


def _law_vs_opponents(pop, law: KOutputPolicy, opponents):
    """``[R]``: ``Σ_t α_t share(S_t vs T_r)`` for each opponent multiset ``T_r`` (one prompt)."""
    shares = pop.pool_shares(law.tuples, opponents)
    return dot(law.weights.astype(shares.dtype), shares)


def _opponent_multisets(n: int, ell: int, max_opponents: int):
    """Every ℓ-multiset of ``n`` responses (the deterministic opponents), within the limits."""
    count = num_multisets(n, ell)
    if count > max_opponents:
        raise ValueError(
            f"robust_win_rate: ell={ell} with n={n} responses has C(n+ell-1, ell) = {count:,} "
            f"deterministic opponents, above max_opponents={max_opponents:,}; raise "
            "max_opponents, or use robust_win_rate_bounds (tol=0.0: an exact search on concrete "
            "ranking or Plackett-Luce inputs; tol=None: cheap certified bounds)"
        )
    if count * ell > MAX_OPPONENT_ENTRIES:
        raise ValueError(
            f"robust_win_rate: ell={ell:,} with n={n} responses: the {count:,} opponent multisets "
            f"would hold {count * ell:,} entries (limit 2**28); use robust_win_rate_bounds"
        )
    return all_multisets(n, ell)


class RobustBounds(NamedTuple):
    """Certified ``lower <= R_{k,ℓ}(A) <= upper``; ``opponent`` attains ``upper``."""

    lower: Float[Array, "*batch"]
    upper: Float[Array, "*batch"]
    opponent: Int[Array, "*batch ell"]


def robust_win_rate_bounds(pop, policy, k, ell, tol=None, max_seconds=None) -> RobustBounds:
    """Certified ``lower <= R_{k,ℓ}(A) <= upper``, cheap by default, exact on request.

    ``tol=None``: ``O(ℓ·n)`` opponent evaluations, jit-able. Lower: ``1 − ℓ·max_y u_k(y, A)``
    (the pick probability of a set is at most the sum over its members, for ranking and
    Plackett–Luce users). Upper: the win rate against a greedily built ℓ-output opponent (each
    step adds the response that raises its win rate most; one compiled loop of ``ℓ`` steps,
    ``ℓ <= MAX_BOUNDS_ELL``).

    ``tol >= 0``: branch and bound over ℓ-multisets (ranking and Plackett–Luce populations,
    concrete inputs, on the host), starting from the greedy opponent and pruning with bounds
    from the monotone DR-submodularity of ``T ↦ WR(T, A)`` (docs/theory.md §4). It stops once
    ``upper − lower <= tol`` (``tol = 0``: exact) or at the first check after ``max_seconds``
    per prompt; ``opponent`` always attains ``upper``. It scales far past
    :func:`robust_win_rate`'s enumeration (benchmarks/branch_bound.py).

    Example:
        >>> pop = RankingPopulation([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
        >>> bounds = robust_win_rate_bounds(pop, jnp.array([0.5, 0.0, 0.5]), 2, 2, tol=0.0)
        >>> round(float(bounds.lower), 4), round(float(bounds.upper), 4)
        (0.4167, 0.4167)
    """
    check_population(pop)
    k = static_count(k, "k")
    ell = static_count(ell, "ell")
    if tol is not None:
        certified = certified_robust_win_rate(pop, policy, k, ell, tol, max_seconds)
        return RobustBounds(certified.lower, certified.upper, certified.opponent)
    if max_seconds is not None:
        raise ValueError("max_seconds applies to the exact search: pass tol as well (e.g. 0.0)")
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
