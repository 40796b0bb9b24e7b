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
``pop.with_engine(...)``).

Each user's sort order is the one piece of work that depends on the population alone
(docs/theory.md §3). It is found once per call, before any loop over policies: on the host with
NumPy when the utilities are known at trace time (an eager call, or a population closed over by
a jitted function; XLA then has nothing left to constant-fold), inside the program otherwise (a
host callback on CPU, whose sort is several times faster than XLA's; XLA's own sort elsewhere).
:meth:`RankingPopulation.prepare` (``ua.prepare``) stores it as the leaf ``order``, so that a
population passed to many jitted calls is sorted once; every call checks that the stored order
still sorts ``utilities`` (O(m·n), no sort) and refuses a stale one.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, Shaped

from ._linalg import einsum
from ._numerics import (
    USER_BLOCK,
    USER_SLICE,
    chunked_user_sum,
    compensated_add,
    gauss_legendre_unit,
    nonnegative,
    power_from_top,
    share,
    tied_top_share,
    tree_sum,
    unfoldable,
    unit_nodes,
    user_average,
)
from ._validation import as_float_array, cast_keeping_ties, check_finite, is_concrete
from .population import (
    PayoffFunction,
    UserTable,
    check_names,
    check_user_chunk,
    normalised_weights,
    preparation_trusted,
    slice_users,
    unchecked_replace,
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

    The constructor leaves ``order`` and ``rank`` unset (``None``); :meth:`prepare` fills them.

    Example:
        >>> pop = RankingPopulation([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
        >>> pop.num_users, pop.num_responses
        (2, 3)
        >>> pop.prepare().order.tolist()  # each user's responses, worst first
        [[2, 1, 0], [0, 1, 2]]
    """

    table_field: ClassVar[str] = "utilities"
    utilities: Float[Array, "*batch m n"]
    #: Each user's responses in ascending order of utility and each response's place in that
    #: order (int32), stored by :meth:`prepare`; ``None`` when unprepared (found in each call).
    order: Int[Array, "*batch m n"] | None
    rank: Int[Array, "*batch m n"] | None
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
        self.order = self.rank = None
        self.weights = normalised_weights(weights, u.shape[:-2], u.shape[-2], u.dtype)
        self.names = check_names(names, u.shape[-1])
        self.user_chunk = check_user_chunk(user_chunk)
        self.strided_users = False
        self.engine = check_engine(engine)

    def with_engine(self, engine: str) -> RankingPopulation:
        """The same population, its payoffs computed by ``engine`` (see :data:`ENGINES`)."""
        return unchecked_replace(self, engine=check_engine(engine))

    def pick_probabilities(self, pool: Int[Array, " N"]) -> Float[Array, "m N"]:
        values = self.utilities[..., pool]
        top = (values == jnp.max(values, axis=-1, keepdims=True)).astype(values.dtype)
        return top / jnp.sum(top, axis=-1, keepdims=True)

    def prepare(self) -> RankingPopulation:
        """The same population with each user's sort order stored: the leaves ``order`` (each
        user's responses, worst first) and ``rank`` (each response's place in it), int32
        ``[..., m, n]`` each.

        Payoffs and metrics of a prepared population skip the sort (the only work on the
        population alone that costs more than reading it); each call checks in O(m·n) that the
        stored order still sorts ``utilities`` and raises if a leaf was edited since (prepare
        the edited population again). Sorted on the host when the utilities are concrete, in
        the program otherwise; prompt axes are sorted together. Example: ``ua.prepare(pop)``,
        then pass it to jitted functions as an argument.
        """
        order, rank = sort_orders(self.utilities, sharded=self.sharded)
        return eqx.tree_at(
            lambda p: (p.order, p.rank), self, (order, rank), is_leaf=lambda x: x is None
        )

    @property
    def prepared(self) -> bool:
        """Whether :meth:`prepare` stored the sort order."""
        return self.order is not None

    def check_prepared(self) -> RankingPopulation:
        """``self`` after checking (concrete leaves, any prompt axes) that the stored order
        still sorts the utilities; ``ValueError`` naming the fix otherwise."""
        if self.prepared:
            raise_if_stale(self)
        return self

    @property
    def sharded(self) -> bool:
        """Whether the users are spread over devices (``shard_users``, or a concrete array on
        several devices): the sort then stays inside the program, on the devices."""
        u = self.utilities
        spread = isinstance(u, jax.Array) and is_concrete(u) and len(u.sharding.device_set) > 1
        return spread or self.strided_users

    @property
    def user_axes(self) -> dict[str, int]:
        return {"utilities": -2, "weights": -1, "order": -2, "rank": -2}

    def judge_scores(self):
        return self.utilities, "best"

    def sharded_chunk_cap(self, num_users: int, devices: int) -> int | None:
        """The pairwise engine's chunks stay within one ``USER_SLICE`` product (its static slices
        of a sharded axis would move data between devices)."""
        if ranking_engine(self.num_responses, num_users, self.engine) == "pairwise":
            return max(USER_SLICE, devices * USER_BLOCK)
        return None

    def tables(self) -> RankingTables:
        """What the payoffs need beyond the leaves, computed now (one prompt; see
        :class:`RankingTables`): the sort order (stored and checked, or found now) and, for the
        pairwise engine, whether any user has ties."""
        engine = ranking_engine(self.num_responses, self.num_users, self.engine)
        u, weights = self.utilities, self.weights
        concrete = is_concrete(u) and (not self.prepared or is_concrete(self.order))
        ties, order, rank = None, self.order, self.rank
        if self.prepared:
            if not preparation_trusted():
                ties, stale = checked_order(self)
                # Every payoff reads the weights: a stale order fails the computation at run time.
                weights = eqx.error_if(weights, stale, STALE_ORDER)
        elif engine != "pairwise" or concrete:
            order, rank = sort_orders(u, sharded=self.sharded)
        values = None
        if engine == "pairwise":
            if ties is None:
                ties = tie_flag(self, order)
            order = rank = None
        elif concrete:  # the sorted values and the tie flag too, now: nothing left to fold
            values, ties = host_sorted_values(u, order)
        tables = RankingTables(
            u, weights, order, rank, values, ties, self.user_chunk, self.strided_users, engine
        )
        return unfoldable(tables)

    def payoff_function(self, k):
        return RankingPayoffs(self.tables(), k)

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

        weights = self.user_weights.astype(dtype)

        def value(state):
            _, count, best = state
            return jax.vmap(
                lambda b, p: user_average(
                    weights, tied_top_share(count, b[users, best], p[users, best], k, *nodes)
                )
            )(below, tied)

        return init, add, value


# --------------------------------------------------------------------------- derived tables


class SortedTies(NamedTuple):
    """Each user's ascending order and what the engines read along it (one prompt).

    ``order``: ``[n, m]`` (sorted position first, so a scan over positions runs along the
    leading axis); ``rank``: ``[m, n]`` (each response's sorted position, user-major, so mapping
    back is a row-local gather); ``values``: ``[m, n]`` each user's utilities in ascending
    order; ``any_tie``: whether some user ties two responses. The tie groups' bounds are derived
    from ``values`` where a computation needs them (:meth:`bounds`), so users without ties
    never pay for them.
    """

    order: Int[Array, "n m"]
    rank: Int[Array, "m n"]
    values: Float[Array, "m n"]
    any_tie: Bool[Array, ""]

    def bounds(self) -> tuple[Int[Array, "n m"], Int[Array, "n m"]]:
        """``(tie_lo, tie_hi)``: the first and last sorted position of each position's tie
        group, ``[n, m]``."""
        su = self.values
        n = su.shape[-1]
        pos = jnp.arange(n)
        differs = su[..., 1:] != su[..., :-1]
        first = jnp.ones_like(su[..., :1], dtype=bool)
        starts = jnp.concatenate([first, differs], -1)
        ends = jnp.concatenate([differs, first], -1)
        tie_lo = jax.lax.cummax(jnp.where(starts, pos, 0), axis=su.ndim - 1)
        tie_hi = jax.lax.cummin(jnp.where(ends, pos, n - 1), axis=su.ndim - 1, reverse=True)
        position_major = lambda a: jnp.swapaxes(a.astype(jnp.int32), -1, -2)
        return position_major(tie_lo), position_major(tie_hi)

    def edges(self) -> tuple[Bool[Array, "n m"], Bool[Array, "n m"]]:
        """``(starts, ends)``: whether each sorted position starts / ends its tie group."""
        su = self.values.T
        differs = su[1:] != su[:-1]
        first = jnp.ones_like(su[:1], dtype=bool)
        return jnp.concatenate([first, differs], 0), jnp.concatenate([differs, first], 0)


def sort_orders(utilities: Float[Array, "*batch m n"], sharded: bool = False):
    """``(order, rank)``: each user's responses in ascending order of utility (equal utilities
    in any order) and each response's place in that order, int32, same shape as ``utilities``.

    Concrete utilities are sorted now on the host by NumPy (several times faster than XLA's CPU
    sort), traced ones inside the program: by a host callback on CPU, by XLA's sort elsewhere
    or when ``sharded`` (users spread over devices, which a callback would gather).

    Example:
        >>> [a.tolist() for a in sort_orders(jnp.array([[2.0, 0.0, 1.0]]))]
        [[[1, 2, 0]], [[2, 0, 1]]]
    """
    if sharded:
        return jax.jit(device_sort_orders)(utilities)
    if is_concrete(utilities):
        return tuple(jnp.asarray(a) for a in host_sort_orders(np.asarray(utilities)))
    return jax.lax.platform_dependent(
        jax.lax.stop_gradient(utilities), cpu=callback_sort_orders, default=device_sort_orders
    )


#: Entries (users x responses) from which the host sort splits the users over threads.
THREADED_SORT_ENTRIES = 2**16


def host_sort_orders(utilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sort_orders` by NumPy (any leading axes), the users split over the CPU's cores
    (NumPy's sort releases the GIL) when there are many."""
    values = np.asarray(utilities)
    n = values.shape[-1]
    flat = values.reshape(-1, n)
    order = np.empty(flat.shape, np.int32)
    rank = np.empty(flat.shape, np.int32)
    places = np.arange(n, dtype=np.int32)

    def sort_rows(rows: slice):
        part = np.argsort(flat[rows], axis=-1)
        order[rows] = part
        np.put_along_axis(rank[rows], part, np.broadcast_to(places, part.shape), axis=-1)

    workers = min(os.cpu_count() or 1, 8) if flat.size >= THREADED_SORT_ENTRIES else 1
    bounds = np.linspace(0, flat.shape[0], workers + 1).astype(int)
    blocks = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    if len(blocks) > 1:
        list(_sort_pool(len(blocks)).map(sort_rows, blocks))
    else:
        sort_rows(slice(None))
    return order.reshape(values.shape), rank.reshape(values.shape)


@functools.cache
def _sort_pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="ualign-sort")


def device_sort_orders(utilities):
    """:func:`sort_orders` by XLA's sort (any leading axes; traced, sharded, any device)."""
    order = jnp.argsort(utilities, axis=-1).astype(jnp.int32)
    return order, jnp.argsort(order, axis=-1).astype(jnp.int32)


def callback_sort_orders(utilities):
    """:func:`sort_orders` by NumPy from inside a program (a ``pure_callback``; vmaps)."""
    result = jax.ShapeDtypeStruct(utilities.shape, jnp.int32)
    return jax.pure_callback(
        host_sort_orders, (result, result), utilities, vmap_method="expand_dims"
    )


STALE_ORDER = (
    "the population's stored order no longer sorts its utilities (a leaf was edited after "
    "ua.prepare): call ua.prepare on the edited population"
)


def order_defects(utilities, order, rank, xp=jnp):
    """Per user: whether ``(order, rank)`` is not an ascending sort of the utilities and its
    inverse, and whether the user has ties (``[..., m]`` each; O(m·n): two gathers and
    comparisons, no sort). ``xp`` is ``jax.numpy`` (traced arrays) or ``numpy`` (concrete ones).

    ``rank[order[j]] = j`` for every place ``j`` makes ``order`` a permutation and ``rank`` its
    inverse; ascending utilities along ``order`` make it a sort.
    """
    n = utilities.shape[-1]
    index = xp.clip(order, 0, n - 1)
    values = xp.take_along_axis(utilities, index, axis=-1)
    places = xp.take_along_axis(rank, index, axis=-1)
    step = values[..., 1:] - values[..., :-1]
    misplaced = (places != xp.arange(n, dtype=places.dtype)) | (index != order)
    wrong = xp.any(misplaced, axis=-1) | xp.any(step < 0, axis=-1)
    return wrong, xp.any(step == 0, axis=-1)


def raise_if_stale(pop: RankingPopulation) -> bool:
    """``ValueError`` unless the concrete stored order still sorts the utilities (any prompt
    axes); returns whether any user has ties."""
    check_leaves(pop)
    arrays = (np.asarray(pop.utilities), np.asarray(pop.order), np.asarray(pop.rank))
    wrong, tied = order_defects(*arrays, xp=np)
    if np.any(wrong):
        raise ValueError(f"{STALE_ORDER} ({int(np.sum(wrong))} users' orders are wrong)")
    return bool(np.any(tied))


def check_leaves(pop: RankingPopulation) -> None:
    """``ValueError`` unless ``order`` and ``rank`` are int arrays shaped like ``utilities``
    (a pytree operation may have cast or reshaped them)."""
    for name in ("order", "rank"):
        leaf = getattr(pop, name)
        if not jnp.issubdtype(leaf.dtype, jnp.integer) or leaf.shape != pop.utilities.shape:
            raise ValueError(
                f"{STALE_ORDER} ({name} has dtype {leaf.dtype} and shape {leaf.shape}, "
                f"expected int32 {pop.utilities.shape})"
            )


def checked_order(pop: RankingPopulation):
    """``(any_tie, stale)`` for a prepared population (one prompt): ``stale`` says whether the
    stored ``order``/``rank`` no longer sort ``pop.utilities`` (``ValueError`` right here when
    all are concrete; the caller makes a traced flag a runtime error)."""
    if all(is_concrete(x) for x in (pop.utilities, pop.order, pop.rank)):
        return raise_if_stale(pop), False
    check_leaves(pop)
    tables = RankingTables(
        pop.utilities,
        pop.weights,
        pop.order,
        pop.rank,
        None,
        None,
        pop.user_chunk,
        pop.strided_users,
        "scan",
    )

    def summary(t: RankingTables):
        wrong, tied = order_defects(t.utilities, t.order, t.rank)
        return jnp.stack([jnp.sum(wrong), jnp.sum(tied)]).astype(pop.dtype)

    zeros = jnp.zeros(2, pop.dtype)
    wrong, tied = chunked_user_sum(tables, summary, None, zeros)
    return tied > 0, wrong > 0


def host_sorted_values(utilities, order) -> tuple[jax.Array, bool]:
    """Each user's utilities along ``order`` and whether any user has ties (concrete arrays,
    NumPy)."""
    values = np.take_along_axis(np.asarray(utilities), np.asarray(order), axis=-1)
    return jnp.asarray(values), bool(np.any(values[..., 1:] == values[..., :-1]))


def tie_flag(pop: RankingPopulation, order) -> Bool[Array, ""] | bool:
    """Whether any user ties two responses (one prompt): from ``order`` when given (O(m·n)),
    else by comparing responses chunk by chunk (O(m·n²), no sort; scratch bounded by the
    chunk)."""
    if order is not None and is_concrete(order) and is_concrete(pop.utilities):
        return host_sorted_values(pop.utilities, order)[1]
    tables = RankingTables(
        pop.utilities,
        pop.weights,
        None,
        None,
        None,
        None,
        pop.user_chunk,
        pop.strided_users,
        "pairwise",
    )
    flag = lambda sub: jnp.broadcast_to(any_ties(sub.utilities), (pop.num_responses,))
    found = chunked_user_sum(tables, lambda sub: flag(sub).astype(pop.dtype), PAIRWISE_MAX_USERS)
    return found[0] > 0


class RankingPayoffs(PayoffFunction):
    """``π -> u_k(·, π)`` for one prompt of ranking users, their sort order found once (the
    result of :meth:`RankingPopulation.payoff_function`; a pytree, so it may be a jit argument).
    """

    tables: RankingTables
    k: int | Int[Array, ""]

    def __call__(self, policy):
        tables = unfoldable(self.tables)  # concrete when closed over by a jitted function
        total = jnp.sum(tables.weights)  # normalised again: a pytree edit may rescale them
        return tables.payoffs(policy, self.k) / total.astype(policy.dtype)


class RankingTables(eqx.Module):
    """One prompt's utilities and weights with the derived data the engine needs (each user's
    sort order and its inverse, or only a tie flag for the pairwise engine). Built by
    :meth:`RankingPopulation.tables` once per computation. The sorted values and tie groups
    along the order are derived chunk by chunk (O(chunk·n) scratch beyond the order)."""

    utilities: Float[Array, "m n"]
    weights: Float[Array, " m"]
    order: Int[Array, "m n"] | None
    rank: Int[Array, "m n"] | None
    values: Float[Array, "m n"] | None  # utilities along ``order``, when found beforehand
    ties: Bool[Array, ""] | bool | None  # whether any user ties two responses, when known
    user_chunk: int | None = eqx.field(static=True)
    strided_users: bool = eqx.field(static=True)
    engine: str = eqx.field(static=True)

    @property
    def num_users(self) -> int:
        return self.utilities.shape[-2]

    @property
    def num_responses(self) -> int:
        return self.utilities.shape[-1]

    @property
    def user_axes(self) -> dict[str, int]:
        return {"utilities": -2, "weights": -1, "order": -2, "rank": -2, "values": -2}

    def user_slice(self, start, size: int) -> RankingTables:
        leaves = {name: 0 for name in self.user_axes if getattr(self, name) is not None}
        return slice_users(self, leaves, start, size)

    def sort(self) -> SortedTies:
        """The sorted values and tie flag along each user's order (these users only; a flag
        known for all users stands for these too)."""
        values = self.values
        if values is None:
            values = jnp.take_along_axis(self.utilities, self.order, axis=-1)
        any_tie = self.ties
        if any_tie is None:
            any_tie = jnp.any(values[:, 1:] == values[:, :-1])
        return SortedTies(self.order.T, self.rank, values, any_tie)

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
        return to_response_order(sort, sort.bounds()[0])


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

    if ties is None or ties is True:
        return below, tied_mass()
    untied = lambda: jnp.broadcast_to(mass[:, None], below.shape).astype(below.dtype)  # noqa: E731
    if ties is False:  # known at trace time
        return below, untied()
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
    values in the same program) the group is the position itself, and ``lax.cond`` takes the
    branch that never builds the tie groups (one forward scan, or one cumulative sum).
    """
    in_order = nonnegative(policy)[sort.order]
    finish = (lambda b, p: (b, p)) if k is None else (lambda b, p: share(b, p, k))
    zeros = jnp.zeros_like(in_order[0])
    if engine == "parallel":

        def parallel(in_order, grouped):
            inclusive = jnp.cumsum(in_order, axis=0)
            exclusive = inclusive - in_order
            if not grouped:
                return finish(exclusive, in_order)
            tie_lo, tie_hi = sort.bounds()
            below = jnp.take_along_axis(exclusive, tie_lo, axis=0)
            tied = jnp.take_along_axis(inclusive, tie_hi, axis=0) - below
            return finish(below, tied)

        if isinstance(sort.any_tie, bool):  # known when the program is built
            return parallel(in_order, sort.any_tie)
        return jax.lax.cond(
            sort.any_tie, lambda x: parallel(x, True), lambda x: parallel(x, False), in_order
        )

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
        starts, ends = sort.edges()
        _, (below, upto) = jax.lax.scan(forward, (zeros, zeros, zeros), (in_order, starts))
        inputs = (in_order, below, upto, starts, ends)
        return jax.lax.scan(backward, zeros, inputs, reverse=True)[1]

    if isinstance(sort.any_tie, bool):  # known when the program is built
        return (with_ties if sort.any_tie else strict)(in_order)
    # A branch, not a static flag: the structure follows the values (under vmap both run).
    return jax.lax.cond(sort.any_tie, with_ties, strict, in_order)
