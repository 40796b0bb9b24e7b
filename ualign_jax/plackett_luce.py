"""Plackett–Luce users: position ``j`` is picked with probability ``exp(s[y_j]) / Σ_l exp(s[y_l])``.

Payoffs are ``W_y ∫_0^∞ e^{-W_y t} M(t)^k dt`` with ``M(t) = Σ_z π_z e^{-W_z t}`` and
``W = exp(s - max s)`` per user (docs/theory.md §3), by a trapezoid rule in ``log t``. The
number of nodes is a static setting chosen from the dtype (enough for the widest spread of
log-weights the dtype can represent) or from an explicit ``max_spread``; it never depends on the
values, so same-shape populations share one tree structure.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._linalg import dot
from ._numerics import chunked_user_sum, nonnegative, user_average
from ._validation import as_float_array, check_finite, is_concrete
from .population import BoundPayoffs, UserTable, check_names, check_user_chunk, normalised_weights

__all__ = [
    "PlackettLucePopulation",
    "PL_QUADRATURE_NODES",
    "default_max_spread",
    "pl_quadrature_nodes",
    "spread_limit",
]

#: Fewest trapezoid nodes (in log time) used; enough for log-weight spreads up to 60 in float64.
PL_QUADRATURE_NODES = 256

#: Log-time step (float64) and the extra span the grid covers beyond the spread: 256 nodes for
#: spread 60 (error ~1e-12 in float64). Float32 needs only ~1e-8, met by a step twice as wide.
_STEP_FLOAT64 = 90.0 / PL_QUADRATURE_NODES
_EXTRA_SPAN = 30.0


def spread_limit(dtype) -> float:
    """The widest log-weight spread within a user that ``dtype`` represents: the weight ratio
    ``exp(-spread)`` stays above the smallest normal number by a factor ``e^10``.

    Example: ``round(spread_limit(jnp.float32))`` is 77, ``round(spread_limit(jnp.float64))``
    is 698.
    """
    return -math.log(float(jnp.finfo(dtype).tiny)) - 10.0


def pl_quadrature_nodes(spread: float, dtype=np.float64) -> int:
    """Nodes for users whose log-weights span up to ``spread``, accurate to the ``dtype``: a
    multiple of 256 (so few distinct programs compile), at least 256.

    Example: ``pl_quadrature_nodes(60.0)`` is 256; ``pl_quadrature_nodes(77.3, jnp.float32)``
    is 256; ``pl_quadrature_nodes(698.0)`` is 2304.
    """
    step = _STEP_FLOAT64 * (2.0 if jnp.finfo(dtype).bits <= 32 else 1.0)
    needed = (spread + _EXTRA_SPAN) / step
    return int(PL_QUADRATURE_NODES * max(1, math.ceil(needed / PL_QUADRATURE_NODES - 1e-9)))


def default_max_spread(dtype) -> float:
    """The ``max_spread`` used when none is given: the widest spread the fewest nodes
    (``PL_QUADRATURE_NODES``) cover in ``dtype``, at most :func:`spread_limit`.

    Example: ``default_max_spread(jnp.float64)`` is 60.0 (256 nodes);
    ``round(default_max_spread(jnp.float32))`` is 77 (float32's own limit, also 256 nodes).
    """
    step = _STEP_FLOAT64 * (2.0 if jnp.finfo(dtype).bits <= 32 else 1.0)
    return min(PL_QUADRATURE_NODES * step - _EXTRA_SPAN, spread_limit(dtype))


def spread_of(log_weights) -> float:
    """The widest spread ``max s - min s`` within one user of concrete ``log_weights``."""
    values = np.asarray(log_weights, np.float64)
    return float(np.max(values.max(axis=-1) - values.min(axis=-1)))


def _check_spread(log_weights, max_spread: float) -> None:
    """Refuse concrete log-weights whose spread within a user exceeds ``max_spread``."""
    if not is_concrete(log_weights):
        return
    spread = spread_of(log_weights)
    if spread > max_spread:
        limit = spread_limit(log_weights.dtype)
        if max_spread >= limit:
            raise ValueError(
                f"log_weights spread {spread:.4g} within one user, beyond {limit:.0f}: the weight "
                f"ratio exp({spread:.4g}) underflows {log_weights.dtype}"
                + ("; use float64" if log_weights.dtype != np.float64 else "")
            )
        raise ValueError(
            f"log_weights spread {spread:.4g} within one user exceeds max_spread={max_spread:.4g}; "
            f"pass max_spread={math.ceil(spread)} (up to {limit:.0f} in {log_weights.dtype}; more "
            "quadrature nodes, slower)"
        )


class PlackettLucePopulation(UserTable):
    """Users who pick position ``j`` with probability ``exp(s[y_j]) / sum_l exp(s[y_l])``.

    Args:
        log_weights: ``[..., m, n]`` finite scores ``s``; only differences within a user matter.
        weights: ``[..., m]`` nonnegative user-type weights (normalised); default uniform.
        names: optional ``n`` response names.
        user_chunk: users processed at a time by the payoffs (see ``RankingPopulation``).
        max_spread: the widest spread ``max s - min s`` within a user the quadrature is built
            for; default (``None``) :func:`default_max_spread`: what 256 trapezoid nodes cover,
            77 in float32 (all the dtype represents) and 60 in float64. Up to
            :func:`spread_limit` (about 698 in float64) may be asked for; it sets the number of
            nodes (:func:`pl_quadrature_nodes`: 2304 for 698 in float64, about 9x slower). A
            concrete spread beyond it is refused with the value to pass; traced log-weights are
            clamped to ``max s - max_spread`` (a response further below gets weight
            ``exp(-max_spread)`` relative to the user's best), never NaN.

    Example:
        >>> pop = PlackettLucePopulation(jnp.array([[0.0, 1.0], [1.0, 0.0]], jnp.float32))
        >>> pop.num_responses, pop.quadrature_nodes
        (2, 256)
        >>> PlackettLucePopulation(jnp.zeros((2, 2), jnp.float64), max_spread=60).quadrature_nodes
        256
    """

    table_field: ClassVar[str] = "log_weights"
    log_weights: Float[Array, "*batch m n"]
    max_spread: float = eqx.field(static=True)

    def __init__(self, log_weights, weights=None, names=None, user_chunk=None, max_spread=None):
        s = as_float_array(log_weights, "log_weights", min_ndim=2)
        check_finite(s, "log_weights")
        limit = spread_limit(s.dtype)
        if max_spread is None:
            max_spread = default_max_spread(s.dtype)
        elif isinstance(max_spread, bool) or not isinstance(max_spread, int | float):
            raise ValueError(f"max_spread must be a positive number, got {max_spread!r}")
        elif not 0 < max_spread <= limit:
            raise ValueError(
                f"max_spread must be in (0, {limit:.0f}] for {s.dtype}, got {max_spread!r}"
            )
        self.max_spread = float(max_spread)
        _check_spread(s, self.max_spread)
        self.log_weights = s
        self.weights = normalised_weights(weights, s.shape[:-2], s.shape[-2], s.dtype)
        self.names = check_names(names, s.shape[-1])
        self.user_chunk = check_user_chunk(user_chunk)
        self.strided_users = False

    @property
    def quadrature_nodes(self) -> int:
        """Trapezoid nodes per user (from the dtype and ``max_spread`` only)."""
        return pl_quadrature_nodes(self.max_spread, self.dtype)

    def scaled_weights(self, dtype=None) -> Float[Array, "*batch m n"]:
        """``W = exp(s - max s)`` per user, ``s`` clamped to ``max s - max_spread``."""
        s = self.log_weights if dtype is None else self.log_weights.astype(dtype)
        spread = min(self.max_spread, spread_limit(s.dtype))
        return jnp.exp(jnp.maximum(s - jnp.max(s, axis=-1, keepdims=True), -spread))

    def pick_probabilities(self, pool: Int[Array, " N"]) -> Float[Array, "m N"]:
        return jax.nn.softmax(self.log_weights[..., pool], axis=-1)

    def judge_scores(self):
        return self.log_weights, "plackett_luce"

    def sharded_chunk_cap(self, num_users: int, devices: int) -> int | None:
        """One vectorised block of users per chunk (see :func:`_user_batch`)."""
        per_user = (self.quadrature_nodes + 1) * self.num_responses
        return max(1, (8 * 2**20) // per_user)

    def payoff_function(self, k):
        return BoundPayoffs(self, k, _normalised_payoffs)

    def win_factors(self, num_players: int):
        """``W_0/(W_0 + ΣW_j) = ∫ W_0 e^{-W_0 t} Π e^{-W_j t} dt`` on the log-time grid."""
        nodes = self.quadrature_nodes

        def one_user(w):
            grid = log_time_grid(w, num_players - 1, nodes)
            decay = jnp.exp(-grid.times[:, None] * w[None, :])  # [N, n]
            return grid.weights[:, None] * w[None, :] * decay, decay

        coef, decay = jax.vmap(one_user)(self.scaled_weights())
        coef = coef * self.user_weights[:, None, None]
        m, num_nodes, n = decay.shape
        base = jnp.broadcast_to(decay[:, :, None, :], (m, num_nodes, n, n))
        return coef.reshape(-1, n), base.reshape(-1, n, n)

    # ------------------------------------------------------------- metric kernels

    def designated_values(self, own, other, k: int, ell: int):
        """``W_y ∫ e^{-W_y t} M_own^{k-1} M_other^ell dt`` averaged over users."""
        nodes = self.quadrature_nodes

        def one_user(w):
            grid = log_time_grid(w, float(k + ell), nodes)
            field = (k - 1) * pl_log_mgf(w, own, grid) + ell * pl_log_mgf(w, other, grid)
            return pl_position_integrals(w, grid, field)

        per_user = jax.vmap(one_user)(self.scaled_weights(own.dtype))
        return user_average(self.user_weights.astype(own.dtype), per_user)

    def set_wins(self, policy, k: int, sets):
        size = sets.shape[1]
        sets = jnp.asarray(sets)
        nodes = self.quadrature_nodes

        def one_user(w):
            grid = log_time_grid(w, float(k + size), nodes)
            return pl_position_integrals(
                jnp.sum(w[sets], axis=1), grid, k * pl_log_mgf(w, policy, grid)
            )

        per_user = jax.vmap(one_user)(self.scaled_weights(policy.dtype))
        return user_average(self.user_weights.astype(policy.dtype), per_user)

    def greedy_parts(self, policies, k: int, ell: int):
        """A set of total weight ``S`` is picked with ``S ∫ e^{-S t} M(t)^k dt``; the summary
        per user is the set's total weight."""
        scaled = self.scaled_weights(policies.dtype)  # [m, n]
        nodes = self.quadrature_nodes
        grids = jax.vmap(lambda w: log_time_grid(w, float(k + ell), nodes))(scaled)
        fields = jax.vmap(  # [T, m, N]
            lambda pi: jax.vmap(lambda w, g: g.weights * jnp.exp(k * pl_log_mgf(w, pi, g)))(
                scaled, grids
            )
        )(policies)
        init = jnp.zeros(self.num_users, policies.dtype)

        def add(total, y):
            return total + scaled[:, y]

        weights = self.user_weights.astype(policies.dtype)

        def value(total):
            decay = jnp.exp(-grids.times * total[:, None])  # [m, N]
            shares = total * jnp.sum(fields * decay, axis=-1)  # [T, m]
            return jax.vmap(lambda share: user_average(weights, share))(shares)

        return init, add, value


# --------------------------------------------------------------------------- quadrature


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
    pi = nonnegative(policy)
    deficit = dot(-jnp.expm1(-wt), pi)
    mass = dot(jnp.exp(-wt), pi)
    tiny = jnp.finfo(mass.dtype).tiny
    small = deficit < 0.5
    return jnp.where(
        small, jnp.log1p(-jnp.where(small, deficit, 0.0)), jnp.log(jnp.maximum(mass, tiny))
    )


def _normalised_payoffs(pop: PlackettLucePopulation, policy, k):
    total = jnp.sum(pop.weights)  # normalised again: a pytree operation may rescale them
    return _pl_payoffs(pop, policy, k) / total.astype(policy.dtype)


def _pl_payoffs(pop: PlackettLucePopulation, policy, k):
    dtype = policy.dtype
    nodes = pop.quadrature_nodes

    def one_user(w):
        grid = log_time_grid(w, k, nodes)
        return pl_position_integrals(w, grid, k * pl_log_mgf(w, policy, grid))

    def per_chunk(sub: PlackettLucePopulation):
        scaled = sub.scaled_weights(dtype)
        per_user = jax.lax.map(one_user, scaled, batch_size=_user_batch(sub))
        return user_average(sub.weights.astype(dtype), per_user)

    return chunked_user_sum(pop, per_chunk)


def _user_batch(pop) -> int:
    """Users per vectorised block, keeping ``[block, N, n]`` temporaries near 32 MiB."""
    per_user = (pop.quadrature_nodes + 1) * pop.num_responses
    return int(max(1, min(pop.num_users, (8 * 2**20) // per_user)))
