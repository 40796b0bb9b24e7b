"""Payoffs of the (k+1)-player alignment game: ``u_k(y, π)``, the win tensor, its count form.

``u_k(y, π) = WR(δ_y, π^{⊗k})`` is the payoff of naming ``y`` against ``k`` i.i.d. copies of
``π`` (THEORY §3). Engines, from fastest to most general:

* ranking users: the closed form ``(1/(k+1)) Σ_j x^j b^(k-j)``, with the π-mass below and tied
  with each response found by comparing every pair of responses (small games, O(m·n²), no loop)
  or by one pass over each user's sorted order (O(m·n) after one sort per user, at construction);
* Plackett–Luce users: ``W_y ∫_0^∞ e^{-W_y t} M(t)^k dt`` by a trapezoid rule in ``log t``;
* dense games: contraction of the win tensor;
* anything with a choice rule: the dense win tensor and its symmetric count form, and an
  unbiased Monte Carlo estimate with a standard error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, Shaped

from ._combinatorics import all_multisets, log_multinomial, multiset_counts, num_multisets
from ._linalg import dot, einsum, tensordot
from ._validation import as_float_array, check_count, check_simplex, float_dtype, static_count
from .policies import ProductMixture, as_mixture
from .populations import (
    PL_QUADRATURE_NODES,
    DenseGame,
    PlackettLucePopulation,
    RankingPopulation,
    SampledPopulation,
)

__all__ = [
    "response_payoffs",
    "win_tensor",
    "CountForm",
    "count_form",
    "count_form_payoffs",
    "monte_carlo_payoffs",
]

_EXACT_POPULATIONS = (RankingPopulation, PlackettLucePopulation, DenseGame)


# --------------------------------------------------------------------------- batching


def prompt_batch_shape(named_shapes) -> tuple[int, ...]:
    """The prompt axes shared by ``(name, batch_shape)`` pairs: each equals the longest or is
    empty; otherwise a ``ValueError`` naming the argument that differs."""
    batch = max((shape for _, shape in named_shapes), key=len)
    for name, shape in named_shapes:
        if shape and shape != batch:
            raise ValueError(
                f"{name} has prompt (batch) axes {shape}, but another argument has {batch}; "
                "batch axes must match or be absent"
            )
    return batch


def map_prompts(fn, pop, *mixtures, **options):
    """``fn(pop, *mixtures, **options)``, written for one prompt, over shared prompt axes, jitted.

    A population or mixture without batch axes is shared by every prompt (``in_axes=None``).
    ``fn`` should be a module-level function (the compiled program is cached on it); Python
    scalars in ``options`` are static, arrays are traced.
    """
    shapes = [pop.batch_shape] + [mx.batch_shape for mx in mixtures]
    names = ["population", *["policy"] * len(mixtures)]
    batch = prompt_batch_shape(list(zip(names, shapes, strict=True)))
    in_axes = tuple(0 if s else None for s in shapes)
    return jit_over_prompts(fn, in_axes, len(batch), pop, mixtures, options)


@eqx.filter_jit
def jit_over_prompts(fn, in_axes, depth, pop, mixtures, options):
    f = lambda p, *mx: fn(p, *mx, **options)
    for _ in range(depth):
        f = jax.vmap(f, in_axes=in_axes)
    return f(pop, *mixtures)


def check_population(pop, name: str = "pop", exact: bool = True):
    """Raise unless ``pop`` is a population (an exact one when ``exact``)."""
    kinds = _EXACT_POPULATIONS if exact else (*_EXACT_POPULATIONS, SampledPopulation)
    if not isinstance(pop, kinds):
        if isinstance(pop, SampledPopulation):
            raise ValueError(
                f"{name} is a SampledPopulation: exact values are not available; use "
                "monte_carlo_payoffs for an estimate with a standard error"
            )
        raise ValueError(
            f"{name} must be one of {[k.__name__ for k in kinds]}, got {type(pop).__name__}"
        )
    return pop


def tree_sum(terms: list):
    """``terms[0] + terms[1] + ...`` added as a balanced tree (rounding grows as log₂ of n)."""
    while len(terms) > 1:
        pairs = [a + b for a, b in zip(terms[0::2], terms[1::2], strict=False)]
        terms = pairs + terms[2 * len(pairs) :]  # an odd one out waits for the next level
    return terms[0]


#: Users per block in :func:`user_average` (two-level summation).
USER_BLOCK = 64

#: Users per product when the users are on the last axis (see :func:`user_average`).
USER_SLICE = 1024


def user_average(weights: Float[Array, " m"], values: Array, users_last: bool = False):
    """``Σ_i w_i values[i]`` summed in two levels: within blocks of users, then over blocks.

    A plain float32 matvec over thousands of users accumulates ~1e-6 error (measured: 1.2e-6 on
    sushi's 4926 users); two-level summation keeps it near 1e-7. Users are on the first axis of
    ``values`` (``[m, ...]``, blocks of ``USER_BLOCK``) or, with ``users_last``, on the last
    (``[..., m]``, one product per static slice of ``USER_SLICE``, so meant for a few thousand
    users: XLA merges nested reduces into one plain sum, and batched products over blocks of 64
    users ran 3-5x slower on CPU).
    Example: ``user_average(w, jnp.ones((m, 3)))`` is ``Σ_i w_i`` in each of the 3 entries.
    """
    values = values.astype(weights.dtype) if values.dtype != weights.dtype else values
    m = weights.shape[0]
    if users_last:
        spans = [slice(a, a + USER_SLICE) for a in range(0, m, USER_SLICE)]
        return tree_sum([dot(values[..., span], weights[span]) for span in spans])
    if m <= USER_BLOCK:
        return tensordot(weights, values)
    pad = (-m) % USER_BLOCK
    w = jnp.pad(weights, (0, pad)).reshape(-1, USER_BLOCK)
    v = jnp.pad(values, [(0, pad)] + [(0, 0)] * (values.ndim - 1))
    v = v.reshape(-1, USER_BLOCK, *values.shape[1:])
    return jnp.sum(einsum("bk,bk...->b...", w, v), axis=0)


#: Entries (users x responses) per chunk when a population leaves ``user_chunk`` unset.
CHUNK_ENTRIES = 2**22


def user_chunk_size(pop) -> int:
    """Users per chunk: the population's ``user_chunk``, else about ``CHUNK_ENTRIES / n``."""
    if pop.user_chunk is not None:
        return pop.user_chunk
    return max(USER_BLOCK, CHUNK_ENTRIES // pop.num_responses)


#: The user axis of each population array, counted from the end (arrays not named here have
#: none): the chunk loop and ``shard_users`` split these axes.
USER_AXES = {
    "utilities": -2,
    "log_weights": -2,
    "weights": -1,
    "rank": -2,
    "order": -1,
    "tie_lo": -1,
    "tie_hi": -1,
}


class StridedChunk(int):
    """A ``user_chunk`` whose chunks are strided over the users (see :func:`strided_users`).

    ``shard_users`` sets it; it compares unequal to a plain int of the same value, so a
    population's compiled programs are never shared between the two layouts.
    Example: ``StridedChunk(64) == 64`` is ``False``; ``int(StridedChunk(64))`` is ``64``.
    """

    def __eq__(self, other):
        return type(other) is StridedChunk and int(self) == int(other)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(("strided", int(self)))

    def __repr__(self):
        return f"StridedChunk({int(self)})"


def strided_users(pop, index, num_chunks: int):
    """Users ``index, index + num_chunks, index + 2·num_chunks, ...`` of an unbatched population.

    ``num_users`` must be a multiple of ``num_chunks``; ``index`` may be traced; weights are not
    renormalised. Example: users ``[0..5]`` with ``num_chunks = 2`` and ``index = 1`` keep
    ``[1, 3, 5]``.
    """
    names = [f.name for f in dataclasses.fields(pop) if f.name in USER_AXES]

    def take(array, axis: int):
        axis += array.ndim
        split = array.reshape(*array.shape[:axis], -1, num_chunks, *array.shape[axis + 1 :])
        return jax.lax.dynamic_index_in_dim(split, index, axis + 1, keepdims=False)

    taken = [take(getattr(pop, name), USER_AXES[name]) for name in names]
    return eqx.tree_at(lambda p: [getattr(p, name) for name in names], pop, taken)


def chunked_user_sum(pop, per_chunk, max_chunk: int | None = None):
    """``Σ_chunks per_chunk(users of the chunk)`` with one chunk live at a time (unbatched pop).

    ``per_chunk(sub_pop) -> [n]`` sums over the users it is given (with their weights). Chunks
    are ``user_chunk_size(pop)`` users, at most ``max_chunk``. With a :class:`StridedChunk`
    (users sharded by ``shard_users``) chunks are strided over the users; otherwise contiguous,
    the last one shifted back to end at user ``m`` and the users it shares with the previous
    chunk given weight 0, so no padded copy is made.
    """
    m, chunk = pop.num_users, min(user_chunk_size(pop), max_chunk or pop.num_users)
    if m <= chunk:
        return per_chunk(pop)
    num_chunks = -(-m // chunk)
    if isinstance(pop.user_chunk, StridedChunk) and m % num_chunks == 0:
        # Strided chunks (users b, b + num_chunks, ...), set by ``shard_users``: with the user
        # axis sharded over d devices (padded so that d divides m / num_chunks) each device
        # holds its own m / (d·num_chunks) users of every chunk, so the loop reads only local
        # data and one all-reduce per chunk adds the devices' sums. Contiguous slices of a
        # sharded axis make XLA all-gather every user onto every device; on one device the
        # strided gather is slower (1.8x per Hedge step measured, 524,288 x 16, scan engine).
        def add_strided(b, total):
            return total + per_chunk(strided_users(pop, b, num_chunks))

        zeros = jnp.zeros(pop.num_responses, pop.weights.dtype)
        return jax.lax.fori_loop(0, num_chunks, add_strided, zeros)

    def add_chunk(i, total):
        start = jnp.minimum(i * chunk, m - chunk)
        sub = pop.user_slice(start, chunk)
        fresh = start + jnp.arange(chunk) >= i * chunk
        sub = eqx.tree_at(lambda p: p.weights, sub, jnp.where(fresh, sub.weights, 0.0))
        return total + per_chunk(sub)

    zeros = jnp.zeros(pop.num_responses, pop.weights.dtype)
    return jax.lax.fori_loop(0, -(-m // chunk), add_chunk, zeros)


def mixture_average(fn, mixture: ProductMixture):
    """``Σ_t α_t fn(π_t)``: a quantity linear in the law of the k-tuple, over a mixture."""
    if mixture.num_components == 1:  # a plain policy: skip the vmap (it costs layout changes)
        return fn(mixture.policies[0])
    values = jax.vmap(fn)(mixture.policies)
    return tensordot(mixture.weights.astype(values.dtype), values)


# --------------------------------------------------------------------------- ranking users


def tie_share(x, p, k):
    """``(1/(k+1)) Σ_{j=0..k} x^j b^(k-j)`` with ``b = x - p``, stable in float32, O(1) in k.

    This is the expected share of a position whose tie group holds π-mass ``p`` with ``b`` below
    it (``x = p + b``) against ``k`` i.i.d. draws. Evaluated as
    ``x^k · (1 - (1 - r)^(k+1)) / ((k+1) r)`` with ``r = p / x`` via ``expm1``/``log1p``; exact
    limits ``b^k`` at ``p = 0`` and ``0`` at ``x = 0``. ``k`` may be traced.
    """
    dtype = x.dtype
    k = jnp.asarray(k, dtype)
    x = jnp.clip(x, 0.0, 1.0)
    positive = x > 0
    safe_x = jnp.where(positive, x, 1.0)
    r = jnp.clip(p / safe_x, 0.0, 1.0)
    below_one = r < 1
    safe_r = jnp.where(below_one, r, 0.0)
    gain = jnp.where(below_one, -jnp.expm1((k + 1) * jnp.log1p(-safe_r)), 1.0)
    has_mass = r > 0
    ratio = jnp.where(has_mass, gain / ((k + 1) * jnp.where(has_mass, r, 1.0)), 1.0)
    return jnp.where(positive, jnp.exp(k * jnp.log(safe_x)), 0.0) * ratio


#: Up to this static k the share is summed by Horner's rule (2k multiplies, no transcendental).
HORNER_MAX_K = 24


def tie_share_horner(x, b, k: int):
    """``(1/(k+1)) Σ_{j=0..k} x^(k-j) b^j`` by Horner's rule: all terms positive, no cancellation.

    Faster than :func:`tie_share` for small static ``k`` and as accurate (relative error
    ``O(k·eps)``); expects ``0 <= b <= x`` (no clipping: it costs more than the sum here).
    Example: ``tie_share_horner(1.0, 0.0, 2) = 1/3`` (a three-way tie at the top).
    """
    total = jnp.ones_like(x)
    b_power = jnp.ones_like(x)
    for _ in range(k):
        b_power = b_power * b
        total = total * x + b_power
    return total / (k + 1)


def share(below, tied, k):
    """The share function for this ``k``: Horner's rule when ``k`` is small and static."""
    if isinstance(k, int) and k <= HORNER_MAX_K:
        return tie_share_horner(below + tied, below, k)
    return tie_share(below + tied, tied, k)


def compensated_add(total, compensation, value):
    """One step of Neumaier's compensated sum: ``total + compensation`` tracks the exact sum.

    Summing n float32 masses in order loses ~sqrt(n)·eps in plain arithmetic (1.5e-5 in the
    payoffs at n = 10^4, k = 8); the compensation term keeps the running sum to ~eps.
    """
    new_total = total + value
    lost = jnp.where(total >= value, (total - new_total) + value, (value - new_total) + total)
    return new_total, compensation + lost


#: How the ranking closed form finds each response's π-mass below and tied, per user:
#: ``"pairwise"`` (compares every pair of responses, O(m·n²) work with no sort, gather or loop;
#: fastest for few responses), ``"scan"`` (a sequential loop over sorted positions with all users
#: at once, compensated sums; fastest on CPU for more responses), ``"parallel"`` (cumulative sums
#: over sorted positions, no sequential loop: for accelerators, where each loop step is a kernel
#: launch) or ``"auto"``: pairwise for small games (``PAIRWISE_MAX_RESPONSES``,
#: ``PAIRWISE_MAX_USERS``), else the scan on CPU and the parallel engine elsewhere.
RANKING_ENGINE = "auto"

#: Largest games ``"auto"`` compares pairwise: at most this many responses and users. Measured
#: per Hedge step on the 2-core CPU (benchmarks/RESULTS.md, float32, k = 6): pairwise is about
#: 3x faster than the scan at 1000 x 10 and 4926 x 10, 2.6x at 8192 x 16, 1.3x at 1000 x 24.
#: The user limit bounds scratch (about n² floats per user) and the static slices of the user
#: sum; past it the engine works in chunks of ``PAIRWISE_MAX_USERS`` (1.1x at 16,384 x 16).
PAIRWISE_MAX_RESPONSES = 16
PAIRWISE_MAX_USERS = 8192


def sorted_engine() -> str:
    """The engine over sorted positions in use now: ``"scan"`` or ``"parallel"``."""
    if RANKING_ENGINE in ("scan", "parallel"):
        return RANKING_ENGINE
    return "scan" if jax.default_backend() == "cpu" else "parallel"


def ranking_engine(num_responses: int, num_users: int) -> str:
    """The engine the ranking payoffs use now for a game of this size."""
    small = num_responses <= PAIRWISE_MAX_RESPONSES and num_users <= PAIRWISE_MAX_USERS
    if RANKING_ENGINE == "pairwise" or (RANKING_ENGINE == "auto" and small):
        return "pairwise"
    return sorted_engine()


def pairwise_ranking_masses(pop: RankingPopulation, policy: Float[Array, " n"]):
    """``(below, tied)`` in response order with users last, ``[n, m]``, by comparing responses.

    ``below[y, i] = Σ_z π_z [U_iz < U_iy]`` and ``tied[y, i] = Σ_z π_z [U_iz = U_iy]`` (``y``
    itself included): ``n`` broadcast comparisons, each a fused elementwise pass over ``[n, m]``.
    Example: one user with utilities ``[0, 1, 1]`` and ``π = [.5, .25, .25]`` has
    ``below = [0, .5, .5]`` and ``tied = [.5, .5, .5]``.
    """
    utilities = jnp.swapaxes(pop.utilities, -1, -2)
    mass = jnp.clip(policy, 0.0, None)
    n = pop.num_responses
    below = tree_sum([jnp.where(utilities[z] < utilities, mass[z], 0.0) for z in range(n)])
    if not pop.has_ties:
        return below, jnp.broadcast_to(mass[:, None], below.shape)
    tied = tree_sum([jnp.where(utilities[z] == utilities, mass[z], 0.0) for z in range(n)])
    return below, tied


def parallel_ranking_masses(pop: RankingPopulation, policy: Float[Array, " n"], k=None):
    """:func:`ranking_masses` by cumulative sums over positions (no sequential loop).

    ``below = excl[tie_lo]`` and ``tied = incl[tie_hi] - below`` with ``incl``/``excl`` the
    inclusive/exclusive cumulative π-mass along each user's ascending order.
    """
    in_order = jnp.clip(policy, 0.0, None)[pop.order]
    inclusive = jnp.cumsum(in_order, axis=0)
    exclusive = inclusive - in_order
    if pop.has_ties:
        below = jnp.take_along_axis(exclusive, pop.tie_lo, axis=0)
        tied = jnp.take_along_axis(inclusive, pop.tie_hi, axis=0) - below
    else:
        below, tied = exclusive, in_order
    return (below, tied) if k is None else share(below, tied, k)


def ranking_masses(pop: RankingPopulation, policy: Float[Array, " n"], k=None):
    """π-mass below each response's tie group and of the group itself, sorted layout ``[n, m]``.

    Returns ``(below, tied)``: ``below[j, i]`` is the mass strictly below the response at
    ascending position ``j`` of user ``i``; ``tied[j, i]`` the mass of its tie group. With ``k``
    given, returns ``share(below, tied, k)`` instead, fused into the same scans.

    Without ties this is one scan (the carry is the mass below, summed with compensation). With
    ties, a forward scan carries the mass below the current group and a reverse scan carries the
    mass up to the top of the current group; both step over positions with all ``m`` users at
    once.
    """
    if sorted_engine() == "parallel":
        return parallel_ranking_masses(pop, policy, k)
    in_order = jnp.clip(policy, 0.0, None)[pop.order]
    finish = (lambda b, p: (b, p)) if k is None else (lambda b, p: share(b, p, k))
    zeros = jnp.zeros_like(in_order[0])
    if not pop.has_ties:

        def step(carry, mass):
            below = carry[0] + carry[1]
            return compensated_add(*carry, mass), finish(below, mass)

        return jax.lax.scan(step, (zeros, zeros), in_order)[1]
    position = jnp.arange(pop.num_responses, dtype=pop.tie_lo.dtype)[:, None]
    starts, ends = pop.tie_lo == position, pop.tie_hi == position

    def forward(carry, inputs):
        total, compensation, group_base = carry
        mass, start = inputs
        group_base = jnp.where(start, total + compensation, group_base)
        total, compensation = compensated_add(total, compensation, mass)
        return (total, compensation, group_base), (group_base, total + compensation)

    _, (below, upto) = jax.lax.scan(forward, (zeros, zeros, zeros), (in_order, starts))

    def backward(group_top, inputs):
        mass, below_j, upto_j, start, end = inputs
        group_top = jnp.where(end, upto_j, group_top)
        tied = jnp.where(start & end, mass, group_top - below_j)
        return group_top, finish(below_j, tied)

    inputs = (in_order, below, upto, starts, ends)
    return jax.lax.scan(backward, zeros, inputs, reverse=True)[1]


def to_response_order(pop: RankingPopulation, sorted_values: Shaped[Array, "n m"]):
    """Sorted-layout values ``[n, m]`` back to response order, user-major ``[m, n]``."""
    return jnp.take_along_axis(sorted_values.T, pop.rank, axis=1)


def ranking_response_masses(pop: RankingPopulation, policy: Float[Array, " n"]):
    """``(below, tied)`` π-masses in response order, user-major ``[m, n]`` (any engine)."""
    if ranking_engine(pop.num_responses, pop.num_users) == "pairwise":
        return tuple(mass.T for mass in pairwise_ranking_masses(pop, policy))
    below, tied = ranking_masses(pop, policy)
    return to_response_order(pop, below), to_response_order(pop, tied)


def _ranking_payoffs(pop: RankingPopulation, policy, k):
    if ranking_engine(pop.num_responses, pop.num_users) == "pairwise":

        def per_chunk(sub: RankingPopulation):
            shares = share(*pairwise_ranking_masses(sub, policy), k)  # [n, users]
            return user_average(sub.weights.astype(shares.dtype), shares, users_last=True)

        return chunked_user_sum(pop, per_chunk, max_chunk=PAIRWISE_MAX_USERS)

    def per_chunk(sub: RankingPopulation):
        shares = to_response_order(sub, ranking_masses(sub, policy, k))
        return user_average(sub.weights.astype(shares.dtype), shares)

    return chunked_user_sum(pop, per_chunk)


# --------------------------------------------------------------------------- Plackett–Luce users


class LogTimeGrid(NamedTuple):
    """Nodes ``t`` and weights ``ω`` with ``∫_0^∞ f(t) dt ≈ Σ_j ω_j f(t_j)`` for one user."""

    times: Float[Array, " N"]
    weights: Float[Array, " N"]


def log_time_grid(scaled_weights, total_draws, num_nodes: int = PL_QUADRATURE_NODES):
    """Quadrature grid for ``∫_0^∞ W e^{-W t} Π M(t) dt`` with ``max W = 1`` (one user).

    A trapezoid rule in ``z = log t`` converges geometrically for these integrands; the range
    runs from ``1e-9/(total_draws+1)`` (below it the integrand is ~constant: one left rectangle
    from ``t = 0`` covers it) to ``50 / min W`` (beyond it ``e^{-W t} < e^{-50}``).
    """
    dtype = scaled_weights.dtype
    z_lo = jnp.log(jnp.asarray(1e-9, dtype)) - jnp.log1p(jnp.asarray(total_draws, dtype))
    z_hi = jnp.log(jnp.asarray(50.0, dtype)) - jnp.log(jnp.min(scaled_weights))
    steps = jnp.linspace(0.0, 1.0, num_nodes, dtype=dtype)
    z = z_lo + (z_hi - z_lo) * steps
    h = (z_hi - z_lo) / (num_nodes - 1)
    t = jnp.exp(z)
    trapezoid = jnp.ones(num_nodes, dtype).at[0].set(0.5).at[-1].set(0.5)
    times = jnp.concatenate([jnp.zeros(1, dtype), t])
    weights = jnp.concatenate([t[:1], h * t * trapezoid])
    return LogTimeGrid(times, weights)


def pl_scaled_weights(log_weights: Float[Array, "*m n"]) -> Float[Array, "*m n"]:
    """``W = exp(s - max s)`` per user: the choice rule is shift-invariant, so ``max W = 1``."""
    return jnp.exp(log_weights - jnp.max(log_weights, axis=-1, keepdims=True))


def pl_position_integrals(pick_weights, grid: LogTimeGrid, log_field):
    """``W ∫ e^{-W t} exp(log_field(t)) dt`` for each entry of ``pick_weights`` (one user)."""
    field = grid.weights * jnp.exp(log_field)
    decay = jnp.exp(-grid.times[:, None] * pick_weights[None, :])
    return pick_weights * dot(field, decay)


def pl_log_mgf(scaled_weights, policy, grid: LogTimeGrid):
    """``log M(t) = log Σ_z π_z e^{-W_z t}`` on the grid (one user), ``-inf``-safe.

    Near ``t = 0`` (where ``M^k`` lives for large ``k``) it is ``log1p(-Σ_z π_z (1 - e^{-W_z t}))``
    so that ``k · log M`` keeps its relative accuracy in float32.
    """
    wt = grid.times[:, None] * scaled_weights[None, :]
    pi = jnp.clip(policy, 0.0, None)
    deficit = dot(-jnp.expm1(-wt), pi)
    mass = dot(jnp.exp(-wt), pi)
    tiny = jnp.finfo(mass.dtype).tiny
    small = deficit < 0.5
    return jnp.where(
        small, jnp.log1p(-jnp.where(small, deficit, 0.0)), jnp.log(jnp.maximum(mass, tiny))
    )


def _pl_payoffs(pop: PlackettLucePopulation, policy, k):
    dtype = policy.dtype

    def one_user(log_weights):
        w = pl_scaled_weights(log_weights.astype(dtype))
        grid = log_time_grid(w, k, pop.quadrature_nodes)
        return pl_position_integrals(w, grid, k * pl_log_mgf(w, policy, grid))

    def per_chunk(sub: PlackettLucePopulation):
        per_user = jax.lax.map(one_user, sub.log_weights, batch_size=_user_batch(sub))
        return user_average(sub.weights.astype(dtype), per_user)

    return chunked_user_sum(pop, per_chunk)


def _user_batch(pop) -> int:
    """Users per vectorised block, keeping ``[block, N, n]`` temporaries near 32 MiB."""
    per_user = (pop.quadrature_nodes + 1) * pop.num_responses
    return int(max(1, min(pop.num_users, (8 * 2**20) // per_user)))


# --------------------------------------------------------------------------- dense games


def contract_opponents(tensor, policies):
    """Contract the trailing axes of ``tensor`` with the given policies, last axis first."""
    for p in reversed(policies):
        tensor = dot(tensor, p)
    return tensor


def _dense_payoffs(game: DenseGame, policy, k):
    if k != game.num_players - 1:
        raise ValueError(
            f"k={k} does not match this DenseGame: its {game.num_players}-player win tensor "
            f"gives payoffs for k = {game.num_players - 1} only"
        )
    return contract_opponents(game.win_tensor.astype(policy.dtype), [policy] * k)


# --------------------------------------------------------------------------- public payoffs


def single_policy_payoffs(pop, policy, k):
    """``u_k(·, π)`` for one prompt and one single-output policy ``π`` (no validation)."""
    if isinstance(pop, RankingPopulation):
        return _ranking_payoffs(pop, policy, k)
    if isinstance(pop, PlackettLucePopulation):
        return _pl_payoffs(pop, policy, k)
    return _dense_payoffs(pop, policy, k)


def response_payoffs(pop, policy, k) -> Float[Array, "*batch n"]:
    """Payoff ``u_k(y, π) = WR(δ_y, π^{⊗k})`` of naming each response against k draws of π.

    Args:
        pop: a ranking, Plackett–Luce or dense population ``[..., m, n]``.
        policy: ``[..., n]`` on the simplex, or a ``ProductMixture`` (then the payoff against the
            mixture, ``Σ_t α_t u_k(y, π_t)``).
        k: number of opponent draws, an int >= 1 (may be traced for ranking / Plackett–Luce).

    Returns:
        ``[..., n]``; ``<π, u_k(·, π)> = 1/(k+1)`` for a single-output ``π``.

    Example:
        >>> pop = RankingPopulation([[2.0, 1.0, 0.0]])
        >>> u = response_payoffs(pop, jnp.array([0.0, 1.0, 0.0]), k=2)  # y=1 ties three ways
        >>> [round(float(v), 4) for v in u]
        [1.0, 0.3333, 0.0]
    """
    check_population(pop)
    k = check_count(k, "k")
    if isinstance(pop, DenseGame):
        k = static_count(k, "k")
    mixture = as_mixture(policy, pop.num_responses)
    return map_prompts(mixture_payoffs, pop, mixture, k=k)


def mixture_payoffs(pop, mixture: ProductMixture, k):
    """``u_k(·, A)`` for one prompt and a mixture ``A`` (no validation)."""
    return mixture_average(lambda pi: single_policy_payoffs(pop, pi, k), mixture)


# --------------------------------------------------------------------------- win tensor


def gauss_legendre_unit(num_nodes: int, dtype):
    """Gauss–Legendre nodes and weights on ``[0, 1]`` (exact for degree ``2·num_nodes - 1``)."""
    x, w = np.polynomial.legendre.leggauss(num_nodes)
    return jnp.asarray((x + 1) / 2, dtype), jnp.asarray(w / 2, dtype)


def win_factors(pop, num_players: int):
    """A sum-of-products form of the win tensor for one prompt.

    ``W[y_0, y_1..y_K] = Σ_r coef[r, y_0] Π_{j=1..K} base[r, y_0, y_j]`` with ``K =
    num_players - 1``. Ranking users use ``1/(1+c) = ∫_0^1 t^c dt`` (exact by Gauss–Legendre);
    Plackett–Luce users ``W_0/(W_0 + ΣW_j) = ∫ W_0 e^{-W_0 t} Π e^{-W_j t} dt``.
    """
    if isinstance(pop, RankingPopulation):
        dtype = pop.utilities.dtype
        t, w_t = gauss_legendre_unit(max(1, math.ceil(num_players / 2)), dtype)
        u = pop.utilities
        below = (u[:, None, :] < u[:, :, None]).astype(dtype)  # [m, y0, y]
        tied = (u[:, None, :] == u[:, :, None]).astype(dtype)
        base = below[:, None] + t[None, :, None, None] * tied[:, None]  # [m, Q, y0, y]
        coef = (pop.weights[:, None] * w_t[None, :])[..., None] * jnp.ones_like(u)[:, None, :]
    else:  # Plackett–Luce
        dtype = pop.log_weights.dtype

        def one_user(log_weights):
            w = pl_scaled_weights(log_weights)
            grid = log_time_grid(w, num_players - 1, pop.quadrature_nodes)
            decay = jnp.exp(-grid.times[:, None] * w[None, :])  # [N, n]
            return grid.weights[:, None] * w[None, :] * decay, decay

        coef, decay = jax.vmap(one_user)(pop.log_weights)
        coef = coef * pop.weights[:, None, None]
        m, nodes, n = decay.shape
        base = jnp.broadcast_to(decay[:, :, None, :], (m, nodes, n, n))
    n = pop.num_responses
    return coef.reshape(-1, n), base.reshape(-1, n, n)


def _khatri_rao_power(rows: Float[Array, "R n"], times: int) -> Float[Array, "R _"]:
    out = jnp.ones((rows.shape[0], 1), rows.dtype)
    for _ in range(times):
        out = (out[:, :, None] * rows[:, None, :]).reshape(rows.shape[0], -1)
    return out


def _win_tensor_one(pop, num_players: int):
    if isinstance(pop, DenseGame):
        if num_players != pop.num_players:
            raise ValueError(
                f"num_players={num_players} does not match the DenseGame's {pop.num_players}"
            )
        return pop.win_tensor
    coef, base = win_factors(pop, num_players)
    n, opponents = pop.num_responses, num_players - 1
    half = opponents // 2

    def slice_for(y0):
        b = base[:, y0, :]
        left = _khatri_rao_power(b, half) * coef[:, y0, None]
        right = _khatri_rao_power(b, opponents - half)
        return dot(left.T, right).reshape((n,) * opponents)

    return jax.lax.map(slice_for, jnp.arange(n))


#: Most axes :func:`win_tensor` builds (past 28 even n = 2 exceeds the entry limit).
MAX_TENSOR_PLAYERS = 28


def win_tensor(pop, num_players: int) -> Float[Array, "*batch ..."]:
    """The dense win tensor ``W[y_0..y_{N-1}] = E_user[pick prob of position 0]``, ``[n]*N``.

    Exact for ranking users (and for dense games); Plackett–Luce entries are accurate to ~1e-9.
    Built from a sum-of-products form with vmap and jit; ``n**num_players`` entries, so keep
    ``n`` and ``num_players`` small.

    Example:
        >>> win_tensor(RankingPopulation([[1.0, 0.0]]), 2).tolist()
        [[0.5, 1.0], [0.0, 0.5]]
    """
    check_population(pop)
    num_players = static_count(num_players, "num_players")
    n = pop.num_responses
    if num_players > MAX_TENSOR_PLAYERS or n**num_players > 2**28:
        raise ValueError(
            f"win_tensor would have n**num_players = {n}**{num_players} entries (limit 2**28, "
            f"and at most {MAX_TENSOR_PLAYERS} players); lower num_players, or use "
            "response_payoffs or count_form instead"
        )
    return map_prompts(_win_tensor_one, pop, num_players=num_players)


# --------------------------------------------------------------------------- symmetric count form


class CountForm(NamedTuple):
    """The win tensor folded over its symmetric opponent axes.

    ``table[y, r]`` is the payoff of ``y`` against the opponent multiset with counts
    ``counts[r]``; ``u_k(y, π) = Σ_r exp(log_multinomial[r]) Π_z π_z^{counts[r,z]} table[y, r]``.
    """

    counts: Int[Array, "R n"]
    log_multinomial: Float[Array, " R"]
    table: Float[Array, "*batch n R"]


def _count_table_one(pop, counts, multisets, k: int):
    if isinstance(pop, DenseGame):
        return pop.win_tensor[(slice(None), *multisets.T)]
    coef, base = win_factors(pop, k + 1)
    safe_base = jnp.where(base > 0, base, 1.0)
    log_base = jnp.where(base > 0, jnp.log(safe_base), -jnp.inf)  # [Rf, y0, z]

    def column(c):
        log_prod = jnp.sum(jnp.where(c > 0, c.astype(log_base.dtype) * log_base, 0.0), -1)
        return jnp.sum(coef * jnp.exp(log_prod), axis=0)

    return jax.lax.map(column, jnp.asarray(counts), batch_size=64).T


def count_form(pop, k) -> CountForm:
    """The symmetric count form of the ``(k+1)``-player game: ``C(n+k-1, k)`` rows per response.

    Example:
        >>> form = count_form(RankingPopulation([[1.0, 0.0]]), 2)
        >>> form.counts.tolist()
        [[2, 0], [1, 1], [0, 2]]
        >>> [[round(float(v), 4) for v in row] for row in form.table]
        [[0.3333, 0.5, 1.0], [0.0, 0.0, 0.3333]]
    """
    check_population(pop)
    k = static_count(k, "k")
    n = pop.num_responses
    if num_multisets(n, k) > 10**6:
        raise ValueError(f"count_form: C(n+k-1, k) = {num_multisets(n, k):,} rows exceed 10**6")
    if isinstance(pop, DenseGame) and k != pop.num_players - 1:
        raise ValueError(f"k={k} does not match the DenseGame's {pop.num_players} players")
    multisets = all_multisets(n, k)
    counts = multiset_counts(multisets, n)
    table = map_prompts(_count_table_one, pop, counts=counts, multisets=multisets, k=k)
    return CountForm(jnp.asarray(counts), jnp.asarray(log_multinomial(counts)), table)


def count_form_payoffs(form: CountForm, policy) -> Float[Array, "*batch n"]:
    """``u_k(·, π)`` from a :class:`CountForm` (multinomial law of the opponents' counts)."""
    n = form.counts.shape[-1]
    p = as_float_array(policy, "policy")
    if p.shape[-1] != n:
        raise ValueError(f"policy has {p.shape[-1]} responses, the count form has {n}")
    check_simplex(p, "policy")
    log_p = jnp.log(jnp.where(p > 0, p, 1.0))
    zero_hit = jnp.any((form.counts > 0) & (p[..., None, :] <= 0), axis=-1)
    log_prob = form.log_multinomial.astype(p.dtype) + einsum(
        "rz,...z->...r", form.counts.astype(p.dtype), log_p
    )
    prob = jnp.where(zero_hit, 0.0, jnp.exp(log_prob))
    return einsum("...yr,...r->...y", form.table.astype(p.dtype), prob)


# --------------------------------------------------------------------------- Monte Carlo


def monte_carlo_payoffs(pop, policy, k, key, num_samples: int = 4096):
    """Unbiased Monte Carlo estimate of ``u_k(·, π)`` and its standard error.

    Each sample draws a mixture component, ``k`` i.i.d. opponents and (for a
    ``SampledPopulation``) one user; every response ``y`` is scored on the same draws. For
    finite populations the expectation over users is taken exactly. With prompt axes, each prompt
    gets its own key (``key`` split over the prompts).

    Returns:
        ``(estimate [..., n], standard_error [..., n])``.
    """
    check_population(pop, exact=False)
    k = static_count(k, "k")
    num_samples = static_count(num_samples, "num_samples", 2)
    mixture = as_mixture(policy, pop.num_responses)
    shapes = (pop.batch_shape, mixture.batch_shape)
    batch = prompt_batch_shape(list(zip(("population", "policy"), shapes, strict=True)))
    keys = jax.random.split(key, batch) if batch else key
    in_axes = (*(0 if s else None for s in shapes), 0)
    options = {"k": k, "num_samples": num_samples}
    return jit_over_prompts(_monte_carlo_one, in_axes, len(batch), pop, (mixture, keys), options)


def _monte_carlo_one(pop, mixture: ProductMixture, key, *, k: int, num_samples: int):
    n = pop.num_responses
    dtype = float_dtype(mixture.policies)

    def one_sample(sample_key):
        k_comp, k_draw, k_user = jax.random.split(sample_key, 3)
        t = jax.random.categorical(k_comp, jnp.log(mixture.weights))
        draws = jax.random.categorical(k_draw, jnp.log(mixture.policies[t]), shape=(k,))
        pools = jnp.concatenate([jnp.arange(n)[:, None], jnp.broadcast_to(draws, (n, k))], 1)
        if isinstance(pop, SampledPopulation):
            user = jax.tree.map(lambda a: a[0], pop.sample_users(k_user, 1))
            return jax.vmap(lambda pool: pop.choose(user, pool)[0])(pools).astype(dtype)
        picks = jax.vmap(pop.pick_probabilities)(pools)[..., 0]  # [n, m]
        weights = getattr(pop, "weights", jnp.ones(1, dtype))
        return dot(picks, weights.astype(picks.dtype)).astype(dtype)

    samples = jax.vmap(one_sample)(jax.random.split(key, num_samples))
    mean = samples.mean(axis=0)
    stderr = samples.std(axis=0, ddof=1) / math.sqrt(num_samples)
    return mean, stderr
