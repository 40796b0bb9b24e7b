"""Ranking users: each picks uniformly among its favourite offered positions (docs/theory.md §1).

The closed form ``u_k(y, π) = Σ_i w_i (1/(k+1)) Σ_j x^j b^(k-j)`` (docs/theory.md §3) needs, per
user, the π-mass ``b`` strictly below ``y`` and the mass ``p`` of its tie group (``x = b + p``).
Engines that find them:

* ``"pairwise"``: compares every pair of responses, O(m·n²) work with no sort, gather or loop
  (fastest for few responses);
* ``"scan"``: a sequential loop over each user's sorted order with all users at once and
  compensated sums (fastest on CPU for more responses);
* ``"parallel"``: cumulative sums over sorted positions, no sequential loop (for accelerators,
  where each loop step is a kernel launch);
* ``"auto"``: pairwise for small games (``PAIRWISE_MAX_RESPONSES``, ``PAIRWISE_MAX_USERS``),
  else the scan on CPU and the parallel engine elsewhere.

The engine is a static setting of the population (``RankingPopulation(..., engine=...)`` or
``pop.with_engine(...)``). The sort the sorted engines need is computed from ``utilities``
inside each call (once per call, before any loop over policies), never stored.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, Shaped

from ._linalg import einsum
from ._numerics import (
    chunked_user_sum,
    compensated_add,
    gauss_legendre_unit,
    nonnegative,
    power_from_top,
    share,
    tied_top_share,
    tree_sum,
    unit_nodes,
    user_average,
)
from ._validation import as_float_array, cast_keeping_ties, check_finite, is_concrete
from .population import (
    UserTable,
    check_names,
    check_user_chunk,
    normalised_weights,
    slice_users,
    with_static,
)

__all__ = ["RankingPopulation", "ENGINES", "ranking_engine"]

#: The ranking engines (see the module docstring).
ENGINES = ("auto", "pairwise", "scan", "parallel")

#: Largest games ``"auto"`` compares pairwise: at most this many responses and users. Measured
#: per Hedge step on the 2-core CPU (benchmarks/RESULTS.md, float32, k = 6): pairwise is about
#: 3x faster than the scan at 1000 x 10 and 4926 x 10, 2.6x at 8192 x 16, 1.3x at 1000 x 24.
#: The user limit bounds scratch (about n² floats per user) and the static slices of the user
#: sum; past it the engine works in chunks of ``PAIRWISE_MAX_USERS`` (1.1x at 16,384 x 16).
PAIRWISE_MAX_RESPONSES = 16
PAIRWISE_MAX_USERS = 8192


def check_engine(engine) -> str:
    """``engine`` if it names a ranking engine, else ``ValueError``."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return engine


def sorted_engine(engine: str = "auto") -> str:
    """The engine over sorted positions for this setting: ``"scan"`` or ``"parallel"``."""
    if engine in ("scan", "parallel"):
        return engine
    return "scan" if jax.default_backend() == "cpu" else "parallel"


def ranking_engine(num_responses: int, num_users: int, engine: str = "auto") -> str:
    """The engine a ranking population with this ``engine`` setting uses for a game this size.

    Example:
        >>> ranking_engine(10, 1000)
        'pairwise'
        >>> ranking_engine(10, 1000, engine="parallel")
        'parallel'
    """
    check_engine(engine)
    small = num_responses <= PAIRWISE_MAX_RESPONSES and num_users <= PAIRWISE_MAX_USERS
    if engine == "pairwise" or (engine == "auto" and small):
        return "pairwise"
    return sorted_engine(engine)


class RankingPopulation(UserTable):
    """Users with utilities over responses; each picks uniformly among the top positions.

    A user offered positions ``(y_1..y_N)`` picks uniformly among those whose response has the
    highest utility on offer (copies and equal-utility responses split the win per position).

    Args:
        utilities: ``[..., m, n]`` finite; higher is better; equal values tie.
        weights: ``[..., m]`` nonnegative user-type weights (normalised here); default uniform.
        names: optional ``n`` response names.
        user_chunk: users processed at a time by the payoffs (peak memory ``O(user_chunk · n)``
            beyond the population itself and, for the sorted engines, one int32 ``[m, n]``
            sort order per call); default about ``2**22 / n``.
        engine: how payoffs find each response's π-mass below and tied (module docstring):
            ``"auto"`` (default), ``"pairwise"``, ``"scan"`` or ``"parallel"``.

    Example:
        >>> pop = RankingPopulation([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
        >>> pop.num_users, pop.num_responses
        (2, 3)
    """

    table_field: ClassVar[str] = "utilities"
    utilities: Float[Array, "*batch m n"]
    engine: str = eqx.field(static=True)

    def __init__(self, utilities, weights=None, names=None, user_chunk=None, engine="auto"):
        u = as_float_array(utilities, "utilities", min_ndim=2)
        check_finite(u, "utilities")
        host = None if isinstance(utilities, jax.Array) else np.asarray(utilities)
        if host is not None and host.dtype != u.dtype:  # the cast must not make ties
            cast_keeping_ties(host, u.dtype, "utilities")
        if is_concrete(u):  # XLA flushes subnormals to zero on CPU: let comparisons agree with it
            tiny = jnp.finfo(u.dtype).tiny
            u = jnp.where(jnp.abs(u) < tiny, jnp.zeros((), u.dtype), u)
        self.utilities = u
        self.weights = normalised_weights(weights, u.shape[:-2], u.shape[-2], u.dtype)
        self.names = check_names(names, u.shape[-1])
        self.user_chunk = check_user_chunk(user_chunk)
        self.engine = check_engine(engine)

    def with_engine(self, engine: str) -> RankingPopulation:
        """The same population, its payoffs computed by ``engine`` (see :data:`ENGINES`)."""
        return with_static(self, engine=check_engine(engine))

    def pick_probabilities(self, pool: Int[Array, " N"]) -> Float[Array, "m N"]:
        values = self.utilities[..., pool]
        top = (values == jnp.max(values, axis=-1, keepdims=True)).astype(values.dtype)
        return top / jnp.sum(top, axis=-1, keepdims=True)

    def tables(self) -> RankingTables:
        """What the payoffs need beyond the leaves, computed now (one prompt; see
        :class:`RankingTables`)."""
        engine = ranking_engine(self.num_responses, self.num_users, self.engine)
        order = None if engine == "pairwise" else sort_order(self.utilities)
        tables = RankingTables(self.utilities, self.weights, order, None, self.user_chunk, engine)
        if engine != "pairwise":
            return tables
        # Whether any user ties two responses, chunk by chunk (scratch bounded by the chunk).
        flag = lambda sub: jnp.broadcast_to(any_ties(sub.utilities), (self.num_responses,))
        found = chunked_user_sum(
            tables, lambda sub: flag(sub).astype(self.dtype), PAIRWISE_MAX_USERS
        )
        return eqx.tree_at(lambda t: t.ties, tables, found[0] > 0, is_leaf=lambda x: x is None)

    def payoff_function(self, k):
        tables = self.tables()
        total = jnp.sum(self.weights)  # normalised again: a pytree operation may rescale them
        return lambda policy: tables.payoffs(policy, k) / total.astype(policy.dtype)

    def win_factors(self, num_players: int):
        """``1/(1+c) = ∫_0^1 t^c dt``, exact by Gauss–Legendre (docs/theory.md §3)."""
        u = self.utilities
        dtype = u.dtype
        t, w_t = gauss_legendre_unit(max(1, -(-num_players // 2)), dtype)
        below = (u[:, None, :] < u[:, :, None]).astype(dtype)  # [m, y0, y]
        tied = (u[:, None, :] == u[:, :, None]).astype(dtype)
        base = below[:, None] + t[None, :, None, None] * tied[:, None]  # [m, Q, y0, y]
        coef = (self.user_weights[:, None] * w_t[None, :])[..., None] * jnp.ones_like(u)[:, None, :]
        n = self.num_responses
        return coef.reshape(-1, n), base.reshape(-1, n, n)

    # ------------------------------------------------------------- metric kernels

    def designated_values(self, own, other, k: int, ell: int):
        """``∫_0^1 (b + p t)^{k-1} (d + q t)^ell dt`` averaged over users."""
        dtype = own.dtype
        tables = self.tables()
        b, p = tables.response_masses(own)
        d, q = tables.response_masses(other)
        s, w_s = unit_nodes(k - 1 + ell, dtype)
        s = s[:, None, None]
        integrand = power_from_top(b + p, p, s, k - 1) * power_from_top(d + q, q, s, ell)
        return user_average(self.user_weights.astype(dtype), einsum("q,qmn->mn", w_s, integrand))

    def set_wins(self, policy, k: int, sets):
        dtype = policy.dtype
        size = sets.shape[1]
        sets = jnp.asarray(sets)
        tables = self.tables()
        below, tied = tables.response_masses(policy)  # [m, n]
        group = tables.tie_groups()  # [m, n], higher = better
        nodes = unit_nodes(k + size - 1, dtype)
        weights = self.user_weights.astype(dtype)

        def wins(s):
            g = group[:, s].T  # [size, m]
            top = jnp.max(g, axis=0)
            count = jnp.sum(g == top, axis=0)
            best = s[jnp.argmax(g, axis=0)]
            users = jnp.arange(g.shape[1])
            won = tied_top_share(count, below[users, best], tied[users, best], k, *nodes)
            return user_average(weights, won)

        return jax.lax.map(wins, sets, batch_size=256)

    def greedy_parts(self, policies, k: int, ell: int):
        """The multiset's summary per user: the top tie group on offer, how many of its members
        sit in it, and one of them."""
        dtype = policies.dtype
        tables = self.tables()
        group = tables.tie_groups()
        below, tied = jax.vmap(tables.response_masses)(policies)  # [T, m, n]
        nodes = unit_nodes(k + ell - 1, dtype)
        users = jnp.arange(self.num_users)
        minus_one = jnp.full(self.num_users, -1, group.dtype)
        init = (minus_one, jnp.zeros_like(minus_one), jnp.zeros_like(minus_one))

        def add(state, y):
            top, count, best = state
            g = group[:, y]
            count = jnp.where(g > top, 1, jnp.where(g == top, count + 1, count))
            return jnp.maximum(top, g), count, jnp.where(g > top, y, best)

        def value(state):
            _, count, best = state
            return jax.vmap(
                lambda b, p: tied_top_share(count, b[users, best], p[users, best], k, *nodes)
            )(below, tied)

        return init, add, value


# --------------------------------------------------------------------------- derived tables


class SortedTies(NamedTuple):
    """Each user's ascending order and tie groups (one prompt), computed from the utilities.

    ``order``, ``tie_lo``, ``tie_hi``: ``[n, m]`` (sorted position first, so a scan over
    positions runs along the leading axis); ``rank``: ``[m, n]`` (each response's sorted
    position, user-major, so mapping back is a row-local gather).
    """

    order: Int[Array, "n m"]
    rank: Int[Array, "m n"]
    tie_lo: Int[Array, "n m"]
    tie_hi: Int[Array, "n m"]
    any_tie: Bool[Array, ""]


def sort_order(utilities: Float[Array, "m n"]) -> Int[Array, "m n"]:
    """Each user's responses in ascending order of utility (the one sort the engines need)."""
    return jnp.argsort(utilities, axis=-1, stable=True).astype(jnp.int32)


def sorted_ties(utilities: Float[Array, "m n"], order: Int[Array, "m n"]) -> SortedTies:
    """The tie-group bounds along each user's ascending ``order`` (no sort: O(m·n) work)."""
    n = utilities.shape[-1]
    su = jnp.take_along_axis(utilities, order, axis=-1)
    pos = jnp.arange(n)
    differs = su[..., 1:] != su[..., :-1]
    first = jnp.ones_like(su[..., :1], dtype=bool)
    starts = jnp.concatenate([first, differs], -1)
    ends = jnp.concatenate([differs, first], -1)
    tie_lo = jax.lax.cummax(jnp.where(starts, pos, 0), axis=su.ndim - 1)
    tie_hi = jax.lax.cummin(jnp.where(ends, pos, n - 1), axis=su.ndim - 1, reverse=True)
    rows = jnp.arange(order.shape[0])[:, None]
    rank = jnp.zeros_like(order).at[rows, order].set(jnp.arange(n, dtype=order.dtype))
    position_major = lambda a: jnp.swapaxes(a.astype(jnp.int32), -1, -2)
    return SortedTies(
        position_major(order),
        rank.astype(jnp.int32),
        position_major(tie_lo),
        position_major(tie_hi),
        ~jnp.all(differs),
    )


class RankingTables(eqx.Module):
    """One prompt's utilities and weights with the derived data the engine needs (each user's
    sort order, or nothing for the pairwise engine). Built by :meth:`RankingPopulation.tables`
    inside each computation, never stored in a population. The tie groups along the order are
    derived chunk by chunk (O(chunk·n) scratch beyond the ``[m, n]`` order)."""

    utilities: Float[Array, "m n"]
    weights: Float[Array, " m"]
    order: Int[Array, "m n"] | None
    ties: Bool[Array, ""] | None  # whether any user ties two responses (pairwise engine)
    user_chunk: int | None = eqx.field(static=True)
    engine: str = eqx.field(static=True)

    @property
    def num_users(self) -> int:
        return self.utilities.shape[-2]

    @property
    def num_responses(self) -> int:
        return self.utilities.shape[-1]

    def user_slice(self, start, size: int) -> RankingTables:
        fields = {"utilities": 0, "weights": 0}
        return slice_users(
            self, fields if self.order is None else {**fields, "order": 0}, start, size
        )

    def sort(self) -> SortedTies:
        """The tie groups along each user's order (these users only)."""
        return sorted_ties(self.utilities, self.order)

    def payoffs(self, policy, k):
        """``u_k(·, π)``: the closed form summed over users in chunks."""
        if self.engine == "pairwise":

            def per_chunk(sub: RankingTables):
                masses = pairwise_ranking_masses(sub.utilities, policy, self.ties)
                shares = share(*masses, k)  # [n, users]
                return user_average(sub.weights.astype(shares.dtype), shares, users_last=True)

            return chunked_user_sum(self, per_chunk, max_chunk=PAIRWISE_MAX_USERS)

        def per_chunk(sub: RankingTables):
            sort = sub.sort()
            shares = to_response_order(sort, sorted_masses(sort, policy, k, sub.engine))
            return user_average(sub.weights.astype(shares.dtype), shares)

        return chunked_user_sum(self, per_chunk)

    def response_masses(self, policy):
        """``(below, tied)`` π-masses in response order, user-major ``[m, n]``."""
        if self.engine == "pairwise":
            return tuple(mass.T for mass in pairwise_ranking_masses(self.utilities, policy))
        sort = self.sort()
        below, tied = sorted_masses(sort, policy, None, self.engine)
        return to_response_order(sort, below), to_response_order(sort, tied)

    def tie_groups(self) -> Int[Array, "m n"]:
        """Each response's tie-group index (how many responses the user ranks strictly below
        it): equal within a tie group, higher is better."""
        if self.order is None:
            u = self.utilities
            return jnp.sum(u[:, None, :] < u[:, :, None], axis=-1, dtype=jnp.int32)
        sort = self.sort()
        return to_response_order(sort, sort.tie_lo)


def to_response_order(sort: SortedTies, sorted_values: Shaped[Array, "n m"]):
    """Sorted-layout values ``[n, m]`` back to response order, user-major ``[m, n]``."""
    return jnp.take_along_axis(sorted_values.T, sort.rank, axis=1)


def any_ties(utilities: Float[Array, "m n"]) -> Bool[Array, ""]:
    """Whether some user gives two responses equal utilities (``n`` comparisons, no sort).

    Example: ``any_ties(jnp.array([[0.0, 1.0, 1.0]]))`` is ``True``.
    """
    n = utilities.shape[-1]
    equal = tree_sum([(utilities[:, z : z + 1] == utilities).astype(jnp.int32) for z in range(n)])
    return jnp.any(equal > 1)


def pairwise_ranking_masses(
    utilities: Float[Array, "m n"], policy: Float[Array, " n"], ties: Bool[Array, ""] | None = None
):
    """``(below, tied)`` in response order with users last, ``[n, m]``, by comparing responses.

    ``below[y, i] = Σ_z π_z [U_iz < U_iy]`` and ``tied[y, i] = Σ_z π_z [U_iz = U_iy]`` (``y``
    itself included): ``n`` broadcast comparisons each, fused elementwise passes over ``[n, m]``.
    With ``ties`` (:func:`any_ties` of these users, computed once outside any loop over
    policies) false, ``tied`` is ``π_y`` and its sum is skipped by a ``lax.cond`` (under ``vmap``
    over prompts both branches run, as without the flag).

    Example:
        >>> below, tied = pairwise_ranking_masses(
        ...     jnp.array([[0.0, 1.0, 1.0]]), jnp.array([0.5, 0.25, 0.25]))
        >>> below[:, 0].tolist(), tied[:, 0].tolist()
        ([0.0, 0.5, 0.5], [0.5, 0.5, 0.5])
    """
    utilities = jnp.swapaxes(utilities, -1, -2)
    mass = nonnegative(policy)
    n = utilities.shape[0]
    below = tree_sum([jnp.where(utilities[z] < utilities, mass[z], 0.0) for z in range(n)])

    def tied_mass():
        return tree_sum([jnp.where(utilities[z] == utilities, mass[z], 0.0) for z in range(n)])

    if ties is None:
        return below, tied_mass()
    untied = lambda: jnp.broadcast_to(mass[:, None], below.shape).astype(below.dtype)  # noqa: E731
    return below, jax.lax.cond(ties, tied_mass, untied)


def sorted_masses(sort: SortedTies, policy: Float[Array, " n"], k=None, engine: str = "scan"):
    """π-mass below each response's tie group and of the group itself, sorted layout ``[n, m]``.

    Returns ``(below, tied)``: ``below[j, i]`` is the mass strictly below the response at
    ascending position ``j`` of user ``i``; ``tied[j, i]`` the mass of its tie group. With ``k``
    given, returns ``share(below, tied, k)`` instead, fused into the same passes.

    ``"parallel"``: ``below = excl[tie_lo]`` and ``tied = incl[tie_hi] - below`` with
    ``incl``/``excl`` the inclusive/exclusive cumulative π-mass along each user's order.
    ``"scan"``: a forward scan carries the mass below the current group (compensated sum) and a
    reverse scan the mass up to the top of the current group; both step over positions with all
    ``m`` users at once. When these users have no ties (``sort.any_tie`` false, found from the
    values in the same program) one forward scan suffices and ``lax.cond`` takes it.
    """
    in_order = nonnegative(policy)[sort.order]
    finish = (lambda b, p: (b, p)) if k is None else (lambda b, p: share(b, p, k))
    if engine == "parallel":
        inclusive = jnp.cumsum(in_order, axis=0)
        exclusive = inclusive - in_order
        below = jnp.take_along_axis(exclusive, sort.tie_lo, axis=0)
        tied = jnp.take_along_axis(inclusive, sort.tie_hi, axis=0) - below
        return finish(below, tied)
    zeros = jnp.zeros_like(in_order[0])
    position = jnp.arange(in_order.shape[0], dtype=sort.tie_lo.dtype)[:, None]
    starts, ends = sort.tie_lo == position, sort.tie_hi == position

    def strict(in_order):  # no ties among these users: one scan, the group is the position

        def step(carry, mass):
            below = carry[0] + carry[1]
            return compensated_add(*carry, mass), finish(below, mass)

        return jax.lax.scan(step, (zeros, zeros), in_order)[1]

    def forward(carry, inputs):
        total, compensation, group_base = carry
        mass, start = inputs
        group_base = jnp.where(start, total + compensation, group_base)
        total, compensation = compensated_add(total, compensation, mass)
        return (total, compensation, group_base), (group_base, total + compensation)

    def backward(group_top, inputs):
        mass, below_j, upto_j, start, end = inputs
        group_top = jnp.where(end, upto_j, group_top)
        tied = jnp.where(start & end, mass, group_top - below_j)
        return group_top, finish(below_j, tied)

    def with_ties(in_order):
        _, (below, upto) = jax.lax.scan(forward, (zeros, zeros, zeros), (in_order, starts))
        inputs = (in_order, below, upto, starts, ends)
        return jax.lax.scan(backward, zeros, inputs, reverse=True)[1]

    # A branch, not a static flag: the structure follows the values (under vmap both run).
    return jax.lax.cond(sort.any_tie, with_ties, strict, in_order)
