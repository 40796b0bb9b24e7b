"""Games given by their win tensor (docs/theory.md §3): any constant-sum symmetric game."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._combinatorics import rotations
from ._linalg import dot
from ._validation import (
    as_float_array,
    check_finite,
    is_concrete,
    simplex_tolerance,
    static_count,
)
from .population import BoundPayoffs, Population, pairwise_pool_shares

__all__ = ["DenseGame", "contract_opponents"]


def contract_opponents(tensor, policies):
    """Contract the trailing axes of ``tensor`` with the given policies, last axis first."""
    for p in reversed(policies):
        tensor = dot(tensor, p)
    return tensor


def _check_win_tensor(w: np.ndarray, num_players: int, tol: float) -> None:
    """Entries in [0, 1], symmetric in the opponents' axes, and constant-sum (total 1), each to
    ``tol`` (the simplex tolerance of the tensor's dtype)."""
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


class DenseGame(Population):
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
    players: int = eqx.field(static=True)

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
            _check_win_tensor(np.asarray(w, np.float64), num_players, simplex_tolerance(w.dtype))
        self.win_tensor = w
        self.players = num_players

    @property
    def num_players(self) -> int:
        """The number of players (response axes of the win tensor)."""
        return self.players

    @property
    def dtype(self):
        return self.win_tensor.dtype

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.win_tensor.shape[: self.win_tensor.ndim - self.num_players]

    @property
    def num_responses(self) -> int:
        return self.win_tensor.shape[-1]

    @property
    def names(self) -> None:
        return None

    def pick_probabilities(self, pool: Int[Array, " N"]) -> Float[Array, "1 N"]:
        """Pick probability of each pooled position; the pool must hold ``num_players`` entries."""
        if pool.shape[-1] != self.num_players:
            raise ValueError(
                f"a DenseGame pool has {self.num_players} positions, got {pool.shape[-1]}"
            )
        tuples = pool[rotations(self.num_players)]
        return self.win_tensor[tuple(tuples.T)][None, :]

    def payoff_function(self, k):
        self.check_players(k + 1)
        return BoundPayoffs(self, k, _dense_payoffs)

    def win_tensor_one(self, num_players: int):
        self.check_players(num_players, "num_players")
        return self.win_tensor

    def count_table(self, counts, multisets, k: int):
        self.check_players(k + 1)
        return self.win_tensor[(slice(None), *jnp.asarray(multisets).T)]

    def expected_picks(self, key, pools):
        self.check_players(pools.shape[-1], "the pool size")
        return self.win_tensor[tuple(jnp.moveaxis(pools, -1, 0))]

    def designated_values(self, own, other, k: int, ell: int):
        self.check_players(k + ell, "k + ell")
        tensor = self.win_tensor.astype(own.dtype)
        return contract_opponents(tensor, [own] * (k - 1) + [other] * ell)

    def set_wins(self, policy, k: int, sets):
        size = sets.shape[1]
        self.check_players(k + size, "k + ell")
        tensor = contract_opponents(self.win_tensor.astype(policy.dtype), [policy] * k)
        rotated = jnp.asarray(sets)[:, rotations(size)]  # each member moved to the front
        return jnp.sum(tensor[tuple(jnp.moveaxis(rotated, -1, 0))], axis=-1)

    def pool_shares(self, sets, opponents):
        """``Σ_{j < k} W[pool rotated so position j is first]`` for each pool ``sets[s] ⊕
        opponents[r]`` (``k + ell`` must be the number of players)."""
        self.check_players(sets.shape[-1] + opponents.shape[-1], "k + ell")
        return pairwise_pool_shares(self, sets, opponents, 1)


def _dense_payoffs(game: DenseGame, policy, k: int):
    return contract_opponents(game.win_tensor.astype(policy.dtype), [policy] * k)
