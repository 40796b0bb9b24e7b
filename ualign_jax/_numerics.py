"""Numerical building blocks shared by the population kinds, payoffs and metrics.

Accurate sums over users (two-level, compensated, balanced trees), user chunking, the share of a
tie group against ``k`` draws (docs/theory.md §3) and Gauss–Legendre rules on ``[0, 1]``
(docs/theory.md §8). Nothing here knows a population kind.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._linalg import dot, einsum, tensordot
from ._validation import is_concrete


def nonnegative(policy):
    """``max(π, 0)`` in value, identity in gradient.

    Round-off can leave a policy entry slightly below 0; its value is clipped, but the derivative
    is the one-sided derivative from inside the simplex (``jnp.clip`` would give half of it at an
    exact 0). Example: ``jax.grad(lambda p: nonnegative(p) ** 2)(0.0)`` is ``0.0``, and
    ``jax.grad(lambda p: nonnegative(p))(0.0)`` is ``1.0``.
    """
    return policy + jax.lax.stop_gradient(jnp.maximum(policy, 0.0) - policy)


#: Entries (of its largest array) from which a concrete tree is hidden from XLA's constant
#: folding (see :func:`unfoldable`): below it folding the little work left on known arrays is
#: quick and lets XLA hoist that work out of a loop; above it folding would take seconds.
FOLD_ENTRIES = 2**19


def unfoldable(tree):
    """``tree`` behind an optimization barrier when its arrays are concrete and large.

    Arrays known at trace time (a population closed over by a jitted function) are constants to
    XLA, which folds the work on them at compile time: minutes for a sort of 10^6 entries.
    Behind the barrier they are opaque and the work runs in the compiled program, but XLA can
    no longer hoist it out of a loop around the call, so trees whose largest array has fewer
    than :data:`FOLD_ENTRIES` entries are left as they are.
    Example: ``jax.jit(lambda x: unfoldable(big) @ x)`` compiles without folding ``big``.
    """
    leaves = [x for x in jax.tree.leaves(tree) if eqx.is_array(x)]
    if not leaves or not all(is_concrete(x) for x in leaves):
        return tree
    return unfoldable_arrays(tree)


def unfoldable_arrays(tree):
    """``tree`` with its arrays behind one optimization barrier when its largest array has at
    least :data:`FOLD_ENTRIES` entries (see :func:`unfoldable`; the arrays may be traced)."""
    arrays, rest = eqx.partition(tree, eqx.is_array)
    if max((x.size for x in jax.tree.leaves(arrays)), default=0) < FOLD_ENTRIES:
        return tree
    return eqx.combine(jax.lax.optimization_barrier(arrays), rest)


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

    A plain float32 matvec over thousands of users accumulates ~1e-6 error; two-level summation
    keeps it near 1e-7 (benchmarks/RESULTS.md, "Measurements behind constants"). Users are on
    the first axis of ``values`` (``[m, ...]``, blocks of ``USER_BLOCK``) or, with
    ``users_last``, on the last (``[..., m]``, one product per static slice of ``USER_SLICE``,
    so meant for a few thousand users: XLA merges nested reduces into one plain sum, and batched
    products over blocks of users are slower on CPU).
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


#: Most partial sums :func:`user_contraction` and :func:`user_sum` keep (their extra memory is
#: this many copies of the result).
MAX_USER_BLOCKS = 64


def _user_blocks(m: int) -> int:
    """Rows per block: at least ``USER_BLOCK``, at most ``MAX_USER_BLOCKS`` blocks."""
    return max(USER_BLOCK, -(-m // MAX_USER_BLOCKS))


def user_sum(values: Array) -> Array:
    """``Σ_i values[i]`` over the first (user) axis in two levels, like :func:`user_average`:
    float32 rounding grows with the block size plus the number of blocks, not with ``m``.
    Example: ``user_sum(jnp.ones((3, 2)))`` is ``[3, 3]``."""
    m, block = values.shape[0], _user_blocks(values.shape[0])
    if m <= block:
        return jnp.sum(values, axis=0)
    v = jnp.pad(values, [(0, (-m) % block)] + [(0, 0)] * (values.ndim - 1))
    return jnp.sum(jnp.sum(v.reshape(-1, block, *values.shape[1:]), axis=1), axis=0)


def user_contraction(left: Float[Array, "m a"], right: Float[Array, "m b"]) -> Float[Array, "a b"]:
    """``Σ_i left[i] ⊗ right[i]`` (``leftᵀ right``) summed in two levels over the users ``i``.
    Example: ``user_contraction(jnp.ones((3, 1)), jnp.ones((3, 2)))`` is ``[[3, 3]]``."""
    m, block = left.shape[0], _user_blocks(left.shape[0])
    if m <= block:
        return dot(left.T, right)
    pad = [(0, (-m) % block), (0, 0)]
    lb = jnp.pad(left, pad).reshape(-1, block, left.shape[1])
    rb = jnp.pad(right, pad).reshape(-1, block, right.shape[1])
    return jnp.sum(einsum("kia,kib->kab", lb, rb), axis=0)


#: Entries (users x responses) per chunk when a population leaves ``user_chunk`` unset.
CHUNK_ENTRIES = 2**22


def user_chunk_size(pop) -> int:
    """Users per chunk: the population's ``user_chunk``, else about ``CHUNK_ENTRIES / n``."""
    if pop.user_chunk is not None:
        return pop.user_chunk
    return max(USER_BLOCK, CHUNK_ENTRIES // pop.num_responses)


def strided_user_slice(pop, index, num_chunks: int):
    """Users ``index, index + num_chunks, index + 2·num_chunks, ...`` of an unbatched population.

    The arrays split are the population's ``user_axes``; ``num_users`` must be a multiple of
    ``num_chunks``; ``index`` may be traced; weights are not renormalised. Example: users
    ``[0..5]`` with ``num_chunks = 2`` and ``index = 1`` keep ``[1, 3, 5]``.
    """
    names = [name for name in pop.user_axes if getattr(pop, name) is not None]

    def take(array, axis: int):
        axis += array.ndim
        split = array.reshape(*array.shape[:axis], -1, num_chunks, *array.shape[axis + 1 :])
        return jax.lax.dynamic_index_in_dim(split, index, axis + 1, keepdims=False)

    taken = [take(getattr(pop, name), pop.user_axes[name]) for name in names]
    return eqx.tree_at(lambda p: [getattr(p, name) for name in names], pop, taken)


def chunked_user_sum(pop, per_chunk, max_chunk: int | None = None, zeros=None):
    """``Σ_chunks per_chunk(users of the chunk)`` with one chunk live at a time (unbatched pop).

    ``pop`` needs ``num_users``, ``num_responses``, ``user_chunk``, ``weights`` and
    ``user_slice(start, size)``. ``per_chunk(sub_pop) -> [n]`` sums over the users it is given
    (with their weights); with ``zeros`` given it returns arrays of that shape instead. Chunks are
    ``user_chunk_size(pop)`` users, at most ``max_chunk``. With a
    ``pop.strided_users`` (users sharded by ``shard_users``) chunks are strided over the users;
    otherwise contiguous, the last one shifted back to end at user ``m`` and the users it shares
    with the previous chunk given weight 0, so no padded copy is made.
    """
    m, chunk = pop.num_users, min(user_chunk_size(pop), max_chunk or pop.num_users)
    if m <= chunk:
        return per_chunk(pop)
    num_chunks = -(-m // chunk)
    if zeros is None:
        zeros = jnp.zeros(pop.num_responses, pop.weights.dtype)
    if pop.strided_users and m % num_chunks == 0:
        # Strided chunks (users b, b + num_chunks, ...), set by ``shard_users``: with the user
        # axis sharded over d devices (padded so that d divides m / num_chunks) each device
        # holds its own m / (d·num_chunks) users of every chunk, so the loop reads only local
        # data and one all-reduce per chunk adds the devices' sums. Contiguous slices of a
        # sharded axis make XLA all-gather every user onto every device; on one device the
        # strided gather is slower, hence strided only when ``shard_users`` asks for it.
        def add_strided(b, total):
            return total + per_chunk(strided_user_slice(pop, b, num_chunks))

        return jax.lax.fori_loop(0, num_chunks, add_strided, zeros)

    def add_chunk(i, total):
        start = jnp.minimum(i * chunk, m - chunk)
        sub = pop.user_slice(start, chunk)
        fresh = start + jnp.arange(chunk) >= i * chunk
        sub = eqx.tree_at(lambda p: p.weights, sub, jnp.where(fresh, sub.weights, 0.0))
        return total + per_chunk(sub)

    return jax.lax.fori_loop(0, num_chunks, add_chunk, zeros)


# --------------------------------------------------------------------------- tie-group shares


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


# --------------------------------------------------------------------------- rules on [0, 1]


def gauss_legendre_unit(num_nodes: int, dtype):
    """Gauss–Legendre nodes and weights on ``[0, 1]`` (exact for degree ``2·num_nodes - 1``)."""
    x, w = np.polynomial.legendre.leggauss(num_nodes)
    return jnp.asarray((x + 1) / 2, dtype), jnp.asarray(w / 2, dtype)


#: Gauss–Legendre nodes used at most; exact for polynomial degree up to ``2 * MAX_NODES - 1``.
MAX_GAUSS_NODES = 1024
#: Gauss–Legendre nodes per dyadic interval of the composite rule used past that degree.
COMPOSITE_NODES = 16


def power_from_top(top, drop, s, exponent: int):
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


def unit_nodes(degree: int, dtype):
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


def tied_top_share(count, below, tied, k: int, s, w_s):
    """``c ∫_0^1 t^(c-1) (b + p t)^k dt``: share of ``c`` tied top positions against ``k`` draws.

    ``count``, ``below``, ``tied``: ``[m]``; ``s, w_s`` from :func:`unit_nodes`. Returns ``[m]``.
    """
    s = s[:, None]
    c = count.astype(below.dtype)
    own = jnp.exp((c - 1) * jnp.log1p(-s))  # t^(c-1), c >= 1 and s < 1
    return dot(w_s, c * own * power_from_top(below + tied, tied, s, k))


def khatri_rao_power(rows: Float[Array, "R n"], times: int) -> Float[Array, "R _"]:
    """Row-wise Kronecker power: ``out[r] = rows[r] ⊗ ... ⊗ rows[r]`` (``times`` factors)."""
    out = jnp.ones((rows.shape[0], 1), rows.dtype)
    for _ in range(times):
        out = (out[:, :, None] * rows[:, None, :]).reshape(rows.shape[0], -1)
    return out
