"""Who the users are: populations of choice rules over a prompt's responses (THEORY §1).

Each population is an ``equinox.Module`` (a pytree). Leading axes before the documented core
shape are prompt (batch) axes, so a batch of games is one population and ``jax.vmap`` maps over
it. Every population exposes its choice rule through :meth:`pick_probabilities`: offered a pool
of positions (response ids, repeats allowed) each user type returns the probability of picking
each position. Payoffs and metrics are computed elsewhere (``payoffs``, ``metrics``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._combinatorics import rotations
from ._validation import (
    as_float_array,
    check_finite,
    check_weights,
    is_concrete,
    static_count,
)

__all__ = [
    "RankingPopulation",
    "PlackettLucePopulation",
    "DenseGame",
    "SampledPopulation",
    "Population",
]


def _normalised_weights(weights, batch_shape, num_users, dtype, name="weights"):
    if weights is None:
        return jnp.full((*batch_shape, num_users), 1.0 / num_users, dtype=dtype)
    w = as_float_array(weights, name)
    if w.shape != (*batch_shape, num_users):
        raise ValueError(
            f"{name} must have shape {(*batch_shape, num_users)} (one per user), got {w.shape}"
        )
    check_weights(w, name)
    return w / jnp.sum(w, axis=-1, keepdims=True)


def _check_names(names, num_responses):
    if names is None:
        return None
    if isinstance(names, str | bytes) or not hasattr(names, "__iter__"):
        raise ValueError(f"names must be a sequence of {num_responses} strings, got {names!r}")
    names = tuple(str(s) for s in names)
    if len(names) != num_responses:
        raise ValueError(f"names must have {num_responses} entries, got {len(names)}")
    return names


def _check_user_chunk(user_chunk):
    if user_chunk is None:
        return None
    return static_count(user_chunk, "user_chunk")


def _with_static(module, **changes):
    """A copy of ``module`` with static fields changed (its arrays shared, no re-validation)."""
    copy = object.__new__(type(module))
    for field in dataclasses.fields(module):
        object.__setattr__(copy, field.name, changes.get(field.name, getattr(module, field.name)))
    return copy


def _slice_users(module, leaves, start, size: int):
    """``module`` with ``size`` users from ``start`` kept; ``leaves`` maps field -> user axis."""
    sliced = [
        jax.lax.dynamic_slice_in_dim(getattr(module, name), start, size, axis)
        for name, axis in leaves.items()
    ]
    return eqx.tree_at(lambda p: [getattr(p, name) for name in leaves], module, sliced)


def _sorted_ties(utilities):
    """Ascending order of each user's responses and the tie-group bounds in that order.

    Returns ``order, tie_lo, tie_hi`` with shapes ``[..., n, m]`` (sorted position first, so a
    scan over positions runs along the leading core axis), ``rank`` ``[..., m, n]`` (each
    response's sorted position; user-major, so mapping back is a row-local gather) and whether
    any tie exists.
    Uses NumPy when the utilities are concrete (XLA's CPU sort is slow), JAX otherwise.
    """
    concrete = is_concrete(utilities)
    xp = np if concrete else jnp
    u = np.asarray(utilities) if concrete else utilities
    n = u.shape[-1]
    order = xp.argsort(u, axis=-1, kind="stable") if concrete else jnp.argsort(u, axis=-1)
    su = xp.take_along_axis(u, order, axis=-1)
    pos = xp.arange(n)
    starts = xp.concatenate(
        [xp.ones_like(su[..., :1], dtype=bool), su[..., 1:] != su[..., :-1]], -1
    )
    ends = xp.concatenate([su[..., 1:] != su[..., :-1], xp.ones_like(su[..., :1], dtype=bool)], -1)
    lo_marks = xp.where(starts, pos, 0)
    hi_marks = xp.where(ends, pos, n - 1)
    if concrete:
        tie_lo = np.maximum.accumulate(lo_marks, axis=-1)
        tie_hi = np.flip(np.minimum.accumulate(np.flip(hi_marks, -1), axis=-1), -1)
        rank = np.argsort(order, axis=-1, kind="stable")
        has_ties = bool(np.any(~starts))
    else:
        tie_lo = jax.lax.cummax(lo_marks, axis=lo_marks.ndim - 1)
        tie_hi = jax.lax.cummin(hi_marks, axis=hi_marks.ndim - 1, reverse=True)
        rank = jnp.argsort(order, axis=-1)
        has_ties = True
    position_major = lambda a: jnp.swapaxes(jnp.asarray(a, dtype=jnp.int32), -1, -2)
    rank = jnp.asarray(rank, dtype=jnp.int32)
    return position_major(order), rank, position_major(tie_lo), position_major(tie_hi), has_ties


class RankingPopulation(eqx.Module):
    """Users with utilities over responses; each picks uniformly among the top positions.

    A user offered positions ``(y_1..y_N)`` picks uniformly among those whose response has the
    highest utility on offer (copies and equal-utility responses split the win per position).
    The sort each payoff needs is done once, here, at construction.

    Args:
        utilities: ``[..., m, n]`` finite; higher is better; equal values tie.
        weights: ``[..., m]`` nonnegative user-type weights (normalised here); default uniform.
        names: optional ``n`` response names.
        user_chunk: users processed at a time by the payoffs (peak memory ``O(user_chunk · n)``
            beyond the population itself); default about ``2**22 / n``.

    Example:
        >>> pop = RankingPopulation([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
        >>> pop.num_users, pop.num_responses
        (2, 3)
    """

    utilities: Float[Array, "*batch m n"]
    weights: Float[Array, "*batch m"]
    order: Int[Array, "*batch n m"]
    rank: Int[Array, "*batch m n"]
    tie_lo: Int[Array, "*batch n m"]
    tie_hi: Int[Array, "*batch n m"]
    has_ties: bool = eqx.field(static=True)
    names: tuple[str, ...] | None = eqx.field(static=True)
    user_chunk: int | None = eqx.field(static=True)

    def __init__(self, utilities, weights=None, names=None, user_chunk=None):
        u = as_float_array(utilities, "utilities", min_ndim=2)
        check_finite(u, "utilities")
        if is_concrete(u):  # XLA flushes subnormals to zero on CPU: let the sort agree with it
            tiny = jnp.finfo(u.dtype).tiny
            u = jnp.where(jnp.abs(u) < tiny, jnp.zeros((), u.dtype), u)
        self.utilities = u
        self.weights = _normalised_weights(weights, u.shape[:-2], u.shape[-2], u.dtype)
        self.order, self.rank, self.tie_lo, self.tie_hi, self.has_ties = _sorted_ties(u)
        self.names = _check_names(names, u.shape[-1])
        self.user_chunk = _check_user_chunk(user_chunk)

    def with_user_chunk(self, user_chunk: int | None) -> RankingPopulation:
        """The same population, its payoffs computed ``user_chunk`` users at a time."""
        return _with_static(self, user_chunk=_check_user_chunk(user_chunk))

    def user_slice(self, start, size: int) -> RankingPopulation:
        """Users ``start .. start + size - 1`` of an unbatched population (``start`` may be traced;
        weights are not renormalised)."""
        axes = {"utilities": 0, "weights": 0, "order": 1, "rank": 0, "tie_lo": 1, "tie_hi": 1}
        return _slice_users(self, axes, start, size)

    @property
    def dtype(self):
        """The floating dtype of this population's arrays."""
        return self.utilities.dtype

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.utilities.shape[:-2]

    @property
    def num_users(self) -> int:
        return self.utilities.shape[-2]

    @property
    def num_responses(self) -> int:
        return self.utilities.shape[-1]

    def pick_probabilities(self, pool: Int[Array, " N"]) -> Float[Array, "m N"]:
        """Each user type's pick probability of each pooled position (unbatched population)."""
        values = self.utilities[..., pool]
        top = (values == jnp.max(values, axis=-1, keepdims=True)).astype(values.dtype)
        return top / jnp.sum(top, axis=-1, keepdims=True)


#: Trapezoid nodes (in log time) for Plackett–Luce integrals when log-weights spread <= 60.
PL_QUADRATURE_NODES = 256


def pl_quadrature_nodes(spread: float) -> int:
    """Nodes for users whose log-weights span ``spread``: the trapezoid's log-time step stays
    near 0.35 (error ~1e-12 in float64); a power of two, so few distinct programs compile."""
    needed = PL_QUADRATURE_NODES * (spread + 30.0) / 90.0
    return int(max(PL_QUADRATURE_NODES, 2 ** math.ceil(math.log2(max(needed, 1.0)))))


def _pl_spread_nodes(log_weights) -> int:
    """Quadrature nodes for these (concrete) log-weights; rejects spreads the dtype can't hold."""
    if not is_concrete(log_weights):
        return PL_QUADRATURE_NODES
    values = np.asarray(log_weights, np.float64)
    spread = float(np.max(values.max(axis=-1) - values.min(axis=-1)))
    limit = -math.log(np.finfo(np.dtype(log_weights.dtype)).tiny) - 10.0
    if spread > limit:
        raise ValueError(
            f"log_weights spread {spread:.4g} within one user, beyond {limit:.0f}: the weight "
            f"ratio exp({spread:.4g}) underflows {log_weights.dtype}"
            + ("; use float64" if log_weights.dtype != np.float64 else "")
        )
    return pl_quadrature_nodes(spread)


class PlackettLucePopulation(eqx.Module):
    """Users who pick position ``j`` with probability ``exp(s[y_j]) / sum_l exp(s[y_l])``.

    Args:
        log_weights: ``[..., m, n]`` finite scores ``s``; only differences within a user matter.
        weights: ``[..., m]`` nonnegative user-type weights (normalised); default uniform.
        names: optional ``n`` response names.
        user_chunk: users processed at a time by the payoffs (see :class:`RankingPopulation`).

    Integrals over users use a trapezoid rule in log time with ``quadrature_nodes`` nodes: 256
    for log-weights spanning up to 60 within a user, more for wider spans (chosen here from the
    data); a span whose weight ratio underflows the dtype (about 77 in float32, 698 in float64)
    is refused.

    Example:
        >>> pop = PlackettLucePopulation([[0.0, 1.0], [1.0, 0.0]])
        >>> pop.num_responses
        2
    """

    log_weights: Float[Array, "*batch m n"]
    weights: Float[Array, "*batch m"]
    names: tuple[str, ...] | None = eqx.field(static=True)
    user_chunk: int | None = eqx.field(static=True)
    quadrature_nodes: int = eqx.field(static=True)

    def __init__(self, log_weights, weights=None, names=None, user_chunk=None):
        s = as_float_array(log_weights, "log_weights", min_ndim=2)
        check_finite(s, "log_weights")
        self.quadrature_nodes = _pl_spread_nodes(s)
        self.log_weights = s
        self.weights = _normalised_weights(weights, s.shape[:-2], s.shape[-2], s.dtype)
        self.names = _check_names(names, s.shape[-1])
        self.user_chunk = _check_user_chunk(user_chunk)

    def with_user_chunk(self, user_chunk: int | None) -> PlackettLucePopulation:
        """The same population, its payoffs computed ``user_chunk`` users at a time."""
        return _with_static(self, user_chunk=_check_user_chunk(user_chunk))

    def user_slice(self, start, size: int) -> PlackettLucePopulation:
        """Users ``start .. start + size - 1`` of an unbatched population (``start`` may be traced;
        weights are not renormalised)."""
        return _slice_users(self, {"log_weights": 0, "weights": 0}, start, size)

    @property
    def dtype(self):
        """The floating dtype of this population's arrays."""
        return self.log_weights.dtype

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.log_weights.shape[:-2]

    @property
    def num_users(self) -> int:
        return self.log_weights.shape[-2]

    @property
    def num_responses(self) -> int:
        return self.log_weights.shape[-1]

    def pick_probabilities(self, pool: Int[Array, " N"]) -> Float[Array, "m N"]:
        """Each user type's pick probability of each pooled position (unbatched population)."""
        return jax.nn.softmax(self.log_weights[..., pool], axis=-1)


def _check_win_tensor(w: np.ndarray, num_players: int, tol: float = 1e-6) -> None:
    """Entries in [0, 1], symmetric in the opponents' axes, and constant-sum (total 1)."""
    if w.min() < -tol or w.max() > 1 + tol:
        raise ValueError("win_tensor entries must be probabilities in [0, 1]")
    b = w.ndim - num_players
    for a in range(b + 1, w.ndim - 1):
        perm = list(range(w.ndim))
        perm[a], perm[a + 1] = perm[a + 1], perm[a]
        if np.max(np.abs(w - np.transpose(w, perm))) > tol:
            raise ValueError("win_tensor must be symmetric in its last num_players - 1 axes")
    total = np.zeros_like(w)
    for j in range(num_players):
        perm = list(range(b))
        perm += [b + (i + j) % num_players for i in range(num_players)]
        total = total + np.transpose(w, np.argsort(perm))
    if np.max(np.abs(total - 1.0)) > tol * num_players:
        raise ValueError(
            "win_tensor must be constant-sum: the pick probabilities of all positions of a pool "
            "must add up to 1"
        )


class DenseGame(eqx.Module):
    """A game given by its win tensor ``W[y_0, ..., y_{N-1}]`` = pick probability of position 0.

    Args:
        win_tensor: ``[..., n, ..., n]`` with ``num_players`` response axes last; symmetric in
            the last ``num_players - 1`` axes and constant-sum (checked when concrete).
        num_players: number of response axes; default all axes (no batch axes).

    Example:
        >>> game = DenseGame([[0.5, 1.0], [0.0, 0.5]])   # 2 players: response 0 always wins
        >>> game.num_players
        2
    """

    win_tensor: Float[Array, "*batch ..."]
    num_players: int = eqx.field(static=True)

    def __init__(self, win_tensor, num_players=None):
        w = as_float_array(win_tensor, "win_tensor", min_ndim=2)
        check_finite(w, "win_tensor")
        num_players = w.ndim if num_players is None else static_count(num_players, "num_players", 2)
        if num_players > w.ndim:
            raise ValueError(f"num_players={num_players} exceeds win_tensor's {w.ndim} axes")
        player_axes = w.shape[w.ndim - num_players :]
        if len(set(player_axes)) != 1:
            raise ValueError(f"win_tensor's player axes must all have length n, got {player_axes}")
        if is_concrete(w) and w.size <= 10**7:
            _check_win_tensor(np.asarray(w, np.float64), num_players)
        self.win_tensor = w
        self.num_players = num_players

    @property
    def dtype(self):
        """The floating dtype of this population's arrays."""
        return self.win_tensor.dtype

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.win_tensor.shape[: self.win_tensor.ndim - self.num_players]

    @property
    def num_users(self) -> int:
        return 1

    @property
    def num_responses(self) -> int:
        return self.win_tensor.shape[-1]

    @property
    def names(self) -> None:
        return None

    def pick_probabilities(self, pool: Int[Array, " N"]) -> Float[Array, "1 N"]:
        """Pick probability of each pooled position; the pool must hold ``num_players`` entries."""
        n_players = self.num_players
        if pool.shape[-1] != n_players:
            raise ValueError(f"a DenseGame pool has {n_players} positions, got {pool.shape[-1]}")
        tuples = pool[rotations(n_players)]
        return self.win_tensor[tuple(tuples.T)][None, :]


class SampledPopulation(eqx.Module):
    """Users given by a sampler and a choice function: Monte Carlo estimates only.

    Args:
        sample_users: ``sample_users(key, num) -> users`` (a pytree with leading axis ``num``).
        choose: ``choose(user, pool) -> [N]`` pick probabilities of the pooled positions.
        num_responses: ``n``.

    Example:
        >>> sample = lambda key, num: jax.random.normal(key, (num, 3))
        >>> choose = lambda v, pool: jax.nn.one_hot(jnp.argmax(v[pool]), pool.shape[0])
        >>> SampledPopulation(sample, choose, 3).num_responses
        3
    """

    sample_users: Callable[[Any, int], Any] = eqx.field(static=True)
    choose: Callable[[Any, Any], Any] = eqx.field(static=True)
    num_responses: int = eqx.field(static=True)

    def __init__(self, sample_users, choose, num_responses):
        if not callable(sample_users):
            raise ValueError("sample_users must be callable: sample_users(key, num) -> users")
        if not callable(choose):
            raise ValueError("choose must be callable: choose(user, pool) -> pick probabilities")
        self.sample_users = sample_users
        self.choose = choose
        self.num_responses = static_count(num_responses, "num_responses")

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def names(self) -> None:
        return None


Population = RankingPopulation | PlackettLucePopulation | DenseGame | SampledPopulation
