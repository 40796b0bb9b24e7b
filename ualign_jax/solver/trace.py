"""The bounded records a run keeps: the :class:`Trace` layout and the folded mixture.

Both have a fixed size whatever the horizon ``T``. The trace records every step up to a budget
and then one step per block (:func:`trace_layout`); the mixture keeps every iterate up to
``mixture_size`` and then folds each further one into its last ``n + 1`` slots by an exact
Carathéodory step (:func:`absorb`), so its payoffs stay ``(1/T) Σ_t u_k(·, π_t)``
(docs/theory.md §4, T5).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float, Int32

__all__ = ["Trace", "trace_layout", "trace_slot", "trace_slots", "absorb", "keep_iterate"]


class Trace(NamedTuple):
    """Diagnostics of recorded steps, ``[..., S]`` with ``S <= trace_size`` slots.

    A run of ``T`` steps records every step when ``T <= trace_size``. Otherwise the first
    ``D = trace_size // 2`` steps are recorded one by one (a run stopped early at ``tol`` keeps
    its whole path) and the rest in blocks of ``stride = ceil((T − D) / (trace_size − D))``
    steps, each slot holding its block's last step. The run's last step is always recorded;
    slots past it repeat it, so ``[..., -1]`` is the final value and ``step`` says which step
    each slot holds (:meth:`Solution.recorded_trace` drops the repeats).

    ``step``: the 1-based step each slot records; ``regret``: external regret
    ``max_y Σ_s g_s(y) − Σ_s <π_s, g_s>``; ``bound``: ``sqrt(t ln n / 2)`` (at ``t = T`` the
    Hedge bound, which then holds for every ``t <= T``); ``exploitability``: ``ε_k(π_t)`` of the
    played iterate; ``mixture_exploitability``: ``k/(k+1) − R_{k,1} = max_y (1/t) Σ_s g_s(y)
    − 1/(k+1)`` of the uniform mixture ``(1/t) Σ_s π_s^{⊗k}`` of ``π_1..π_t``, which in
    self-play is ``regret / t`` (T5); at the last step it is ``exploitability(pop,
    Solution.mixture, k)``, whatever ``mixture_size``.
    """

    step: Int32[Array, "*batch S"]
    regret: Float[Array, "*batch S"]
    bound: Float[Array, "*batch S"]
    exploitability: Float[Array, "*batch S"]
    mixture_exploitability: Float[Array, "*batch S"]


def trace_layout(steps: int, trace_size: int) -> tuple[int, int]:
    """``(dense, stride)`` for ``steps`` under a budget of ``trace_size`` slots.

    Example:
        >>> trace_layout(10, 4096), trace_layout(10_000, 4096)
        ((10, 1), (2048, 4))
    """
    if steps <= trace_size:
        return steps, 1
    dense = trace_size // 2
    return dense, -(-(steps - dense) // (trace_size - dense))


def trace_slot(t, dense: int, stride: int):
    """The slot of step ``t`` (1-based): one per step up to ``dense``, then one per ``stride``."""
    return jnp.where(t <= dense, t - 1, dense + (t - dense - 1) // stride)


def trace_slots(steps: int, dense: int, stride: int) -> int:
    """Slots a run of ``steps`` fills under the layout ``(dense, stride)``."""
    return dense + -(-(steps - dense) // stride)


def absorb(weights, payoffs, payoff):
    """One Carathéodory step: ``m = n + 1`` weighted iterates and a new one of weight 1 become
    at most ``m`` with the same total weight and the same weighted sum of payoffs.

    The ``m + 1`` vectors ``a_j = (g_j, 1) ∈ R^{n+1}`` have a null vector ``c``
    (``Σ_j c_j a_j = 0``, so ``Σ_j c_j g_j = 0`` and ``Σ_j c_j = 0``): the last column of the
    complete QR factor of ``[a_0 … a_m]ᵀ``, orthogonal to its ``n + 1`` columns even when they
    are dependent. Moving ``w ← w − θ c`` keeps ``Σ_j w_j a_j``; the step
    ``θ = min_{c_j > 0} w_j / c_j`` (along ``c`` or ``−c``, whichever is shorter) keeps
    ``w >= 0`` and zeroes the weight of ``j* = argmin``. Nothing is approximated: the sums
    change only by rounding, ``O(θ ε ‖a‖)``.

    Args:
        weights: ``[m]`` nonnegative weights of the iterates in the window.
        payoffs: ``[m, n]`` their payoff vectors ``g_j = u_k(·, π_j)``.
        payoff: ``[n]`` the new iterate's payoffs.

    Returns:
        ``(weights, slot, weight)``: the window's new weights (``weights[slot] = 0`` where
        ``slot < m``: the new iterate goes there, with ``weight``); ``slot = m`` when the new
        iterate's own weight reached 0 (it is folded into the window and kept nowhere).
    """
    m = weights.shape[0]
    rows = jnp.concatenate([payoffs, payoff[None]])  # [m + 1, n]: one row per iterate
    rows = jnp.concatenate([rows, jnp.ones((m + 1, 1), rows.dtype)], axis=1)
    null = jnp.linalg.qr(rows, mode="complete")[0][:, -1]
    w = jnp.concatenate([weights, jnp.ones(1, weights.dtype)])
    up = jnp.where(null > 0, w / jnp.where(null > 0, null, 1), jnp.inf)
    down = jnp.where(null < 0, w / jnp.where(null < 0, -null, 1), jnp.inf)
    use_up = jnp.min(up) <= jnp.min(down)
    ratios = jnp.where(use_up, up, down)
    slot = jnp.argmin(ratios).astype(jnp.int32)
    theta = ratios[slot]
    finite = jnp.isfinite(theta)  # false only for a non-finite run: then drop the new one
    slot = jnp.where(finite, slot, m)
    step = jnp.where(finite, theta, 0) * jnp.where(use_up, null, -null)
    w = jnp.maximum(w - step, 0).at[slot].set(0)
    return w[:m], slot, w[m]


def keep_iterate(kept_weight, kept_payoff, kept, played, g, t, stride: int):
    """``(kept_weight, kept_payoff, kept)`` after step ``t``.

    The played iterate goes in slot ``t − 1`` with weight 1 while there is one (always, when
    ``stride`` is 1); past that it is folded into the last ``n + 1`` slots by :func:`absorb`
    (it replaces the iterate whose weight that zeroes). The weights count iterates:
    ``Σ_j w_j = t`` and ``Σ_j w_j g_j = Σ_{s <= t} g_s`` (to rounding).
    """
    one = jnp.ones((), kept_weight.dtype)
    if stride == 1:  # a slot per step
        return (
            kept_weight.at[t - 1].set(one),
            kept_payoff.at[t - 1].set(g),
            kept.at[t - 1].set(played),
        )
    slots, n = kept.shape
    window = n + 1  # solve checks slots >= n + 1
    start = slots - window
    weights, place, weight = absorb(kept_weight[start:], kept_payoff[start:], g)
    fill = t <= slots
    kept_weight = kept_weight.at[start:].set(jnp.where(fill, kept_weight[start:], weights))
    insert = fill | (place < window)
    slot = jnp.where(fill, t - 1, start + jnp.minimum(place, window - 1))
    weight = jnp.where(fill, one, jnp.where(insert, weight, kept_weight[slot]))
    payoff = jnp.where(insert, g, kept_payoff[slot])
    policy = jnp.where(insert, played, kept[slot])
    return (
        kept_weight.at[slot].set(weight),
        kept_payoff.at[slot].set(payoff),
        kept.at[slot].set(policy),
    )
