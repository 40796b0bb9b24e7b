"""The run driver: self-play on the (k+1)-player game, one jitted loop, batched over prompts.

``solve(pop, k)`` runs a dynamic from ``ualign_jax.dynamics`` for ``steps`` steps in one
``lax.scan`` (or a bounded ``lax.while_loop`` when ``tol`` is given), evaluating
``g_t = u_k(·, π_t)`` with the closed-form payoffs, and returns a :class:`Solution`.

``Solution.mixture`` is, for every ``T``, a mixture of evaluated iterates with the same payoff
profile ``u_k(·, A) = (1/T) Σ_t g_t`` as the uniform mixture ``(1/T) Σ_t π_t^{⊗k}`` of T5
(docs/theory.md §4): every iterate while they fit in ``mixture_size`` slots, and past that a
Carathéodory reduction of the later ones (:func:`_absorb`), so its robust win rate is that of
T5's mixture and memory stays bounded.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int32

from ._linalg import dot
from ._validation import is_concrete, static_count
from .checkpoint import fingerprint, load_checkpoint, save_checkpoint
from .dynamics import NAMED, Dynamics, kl_regularised, named
from .payoffs import (
    check_population,
    jit_over_prompts,
    map_prompts,
    payoff_function,
    single_policy_payoffs,
)
from .policies import ProductMixture, unchecked_mixture
from .populations import Population

__all__ = ["solve", "Solution", "Trace", "METHODS", "OUTCOMES", "DEFAULT_METHOD"]

#: Method names accepted by :func:`solve` (shortcuts for the dynamics in ``dynamics.NAMED``).
METHODS = tuple(NAMED)
#: The fastest reliable method measured: adaptive optimistic gradient, one payoff evaluation a
#: step; its last iterate reached exploitability 1e-7 within 2-72 steps on every bundled data set
#: and on Mallows / Plackett–Luce mixtures for k in 1..16 (float64; adaptive extragradient took
#: 2-68 steps of two evaluations each). Regret matching+ is faster still for k >= 2 but its last
#: iterate stalled at k = 1 (8e-3 after 5000 steps on a sampled impartial culture, n = 30).
#: See benchmarks/convergence.py and benchmarks/RESULTS.md.
DEFAULT_METHOD = "optimistic_gradient"
#: Outcome codes of a :class:`Solution`, by index.
#: ``nonfinite``: the iterate left the simplex (NaN, inf, or mass lost to under/overflow).
OUTCOMES = ("successful", "max_steps_reached", "nonfinite")
#: Slots of ``Solution.mixture`` at most. A run of ``T`` steps has ``ceil(T / ceil(T / this))``
#: of them: every iterate when ``T <= this``; otherwise the iterates that overflow are folded
#: into its last ``n + 1`` slots by Carathéodory steps that keep ``u_k(·, A)`` exactly.
DEFAULT_MIXTURE_SIZE = 4096
#: Steps recorded in ``Solution.trace`` at most; longer runs record every ``ceil(T / this)``-th.
DEFAULT_TRACE_SIZE = 4096
#: Steps between checkpoints when ``solve`` is given a checkpoint path.
DEFAULT_CHECKPOINT_EVERY = 1000


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


class Solution(eqx.Module):
    """Result of :func:`solve`.

    Attributes:
        policy: ``[..., n]`` the last iterate at which payoffs were evaluated; differentiable
            w.r.t. the population's floating leaves by implicit differentiation at the
            equilibrium (docs/theory.md §9).
        mixture: ``ProductMixture`` ``A = Σ_j α_j π_j^{⊗k}`` of evaluated iterates with
            ``Σ_j α_j u_k(·, π_j) = (1/T) Σ_t u_k(·, π_t)`` over the ``T = num_steps``
            iterates: the uniform mixture ``(1/T) Σ_t π_t^{⊗k}`` itself when ``T`` fits in
            ``mixture_size``, otherwise a reduction of it with the same payoffs ``u_k(·, A)``,
            hence the same ``R_{k,1}`` (T5: at least ``k/(k+1) − Reg_T/T``) and the same win
            rate against every single-output opponent (its marginal, ``R_{k,ℓ}`` for
            ``ℓ >= 2`` and payoffs at another ``k`` may differ). A constant for autodiff.
        trace: a :class:`Trace` (bounded by ``trace_size``); a constant for autodiff.
        num_steps: ``[...]`` steps taken (int32).
        outcome: ``[...]`` index into ``OUTCOMES`` (int32).
        method: the dynamic that ran, by name (e.g. ``"optimistic_gradient(eta=1, growth=1.2)"``).
    """

    policy: Float[Array, "*batch n"]
    mixture: ProductMixture
    trace: Trace
    num_steps: Int32[Array, "*batch"]
    outcome: Int32[Array, "*batch"]
    method: str = eqx.field(static=True, default="custom")

    @property
    def outcome_name(self) -> np.ndarray:
        """The outcome as a NumPy string array of the batch shape (0-d for one prompt).

        Host-side only: inside ``jit`` use the int32 codes ``outcome`` (indices into
        ``OUTCOMES``); this raises a ``ValueError`` saying so.
        """
        if not is_concrete(self.outcome):
            raise ValueError(
                "outcome_name needs concrete values; inside jit use Solution.outcome, int32 "
                "codes into ualign_jax.OUTCOMES"
            )
        return np.asarray(np.asarray(OUTCOMES)[np.asarray(self.outcome)])

    def recorded_trace(self) -> dict[str, np.ndarray]:
        """The trace's recorded slots only, as NumPy arrays (host side; for writing to disk).

        For a batch of prompts, the slots up to the longest run's last one (shorter runs repeat
        their last value). ``"step"`` gives the step index of each slot.
        """
        strides = np.asarray(self.trace.step)
        used = int(np.max(np.argmax(strides == strides[..., -1:], axis=-1))) + 1
        return {name: np.asarray(value)[..., :used] for name, value in self.trace._asdict().items()}


def _as_dynamics(method) -> Dynamics | str:
    """``method`` as a name in ``METHODS`` or a :class:`Dynamics`, else ``ValueError``."""
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"method {method!r} is unknown; choose from {', '.join(METHODS)}")
        return method
    if isinstance(method, Dynamics):
        return method
    if isinstance(method, tuple) and len(method) == 2 and all(map(callable, method)):
        return Dynamics(*method)
    if callable(getattr(method, "init", None)) and callable(getattr(method, "step", None)):
        return Dynamics(method.init, method.step, str(getattr(method, "name", "custom")))
    raise ValueError(
        f"method must be one of {', '.join(METHODS)} or a Dynamics (an (init, step) pair), "
        f"got {type(method).__name__}"
    )


class RunConfig(NamedTuple):
    """The static configuration of one run (hashable: it keys the compiled program)."""

    k: int
    method: str | Dynamics
    steps: int
    tol: float | None
    eta: float | None
    tau: float
    #: ``ceil(steps / mixture_size)``: the mixture has ``ceil(steps / stride)`` slots (every
    #: iterate when 1; otherwise later iterates are folded in by :func:`_absorb`).
    stride: int
    trace_dense: int
    trace_stride: int

    def dynamics(self, num_responses: int) -> Dynamics:
        """The dynamic this run steps (a named one built for ``n`` and ``steps``)."""
        if isinstance(self.method, str):
            dynamics = named(self.method, num_responses, self.steps, self.eta)
        else:
            dynamics = self.method
        return kl_regularised(dynamics, self.tau) if self.tau else dynamics


class RunState(NamedTuple):
    """Everything a run carries from one step to the next (one prompt); checkpoints save it.

    ``trace`` holds the recorded slots filled up to ``step``; ``kept`` the mixture's iterates
    (slots ``< min(step, slots)`` in use), ``kept_payoff`` their payoffs ``g = u_k(·, π)`` and
    ``kept_weight`` their weights, which count iterates: ``Σ_j w_j = step`` and
    ``Σ_j w_j kept_payoff_j = total_payoff`` (to rounding);
    ``done`` whether the played iterate reached ``tol``.
    """

    step: Int32[Array, ""]
    dynamics: Any
    total_payoff: Float[Array, " n"]
    total_value: Float[Array, ""]
    kept_weight: Float[Array, " slots"]
    kept_payoff: Float[Array, "slots n"]
    kept: Float[Array, "slots n"]
    trace: Trace
    last: Float[Array, " n"]
    done: Bool[Array, ""]


def _trace_slot(t, config: RunConfig):
    """The trace slot of step ``t`` (1-based): one slot per step up to ``trace_dense``, then one
    per block of ``trace_stride`` steps."""
    dense = config.trace_dense
    return jnp.where(t <= dense, t - 1, dense + (t - dense - 1) // config.trace_stride)


def _trace_slots(config: RunConfig) -> int:
    rest = config.steps - config.trace_dense
    return config.trace_dense + -(-rest // config.trace_stride)


def _trace_layout(steps: int, trace_size: int) -> tuple[int, int]:
    """``(trace_dense, trace_stride)`` for a run of ``steps`` under a budget of ``trace_size``."""
    if steps <= trace_size:
        return steps, 1
    dense = trace_size // 2
    return dense, -(-(steps - dense) // (trace_size - dense))


def _init_one(pop, *, config: RunConfig) -> RunState:
    n, dtype = pop.num_responses, pop.dtype
    uniform = jnp.full((n,), 1.0 / n, dtype)
    slots = -(-config.steps // config.stride)
    size = _trace_slots(config)
    buffers = Trace(jnp.zeros(size, jnp.int32), *(jnp.zeros(size, dtype) for _ in range(4)))
    return RunState(
        step=jnp.asarray(0, jnp.int32),
        dynamics=config.dynamics(n).init(uniform),
        total_payoff=jnp.zeros(n, dtype),
        total_value=jnp.zeros((), dtype),
        kept_weight=jnp.zeros(slots, dtype),
        kept_payoff=jnp.zeros((slots, n), dtype),
        kept=jnp.zeros((slots, n), dtype),
        trace=buffers,
        last=uniform,
        done=jnp.asarray(False),
    )


def _absorb(weights, payoffs, payoff):
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


def _keep(state: RunState, played, g, t, *, config: RunConfig):
    """``(kept_weight, kept_payoff, kept)`` after step ``t``: the played iterate in slot ``t − 1``
    with weight 1 while there is one (always, when ``stride`` is 1); past that, folded into the
    last ``n + 1`` slots by :func:`_absorb` (it replaces the iterate whose weight that zeroes)."""
    one = jnp.ones((), state.kept_weight.dtype)
    if config.stride == 1:  # a slot per step
        return (
            state.kept_weight.at[t - 1].set(one),
            state.kept_payoff.at[t - 1].set(g),
            state.kept.at[t - 1].set(played),
        )
    slots, n = state.kept.shape
    window = n + 1  # solve checks slots >= n + 1
    start = slots - window
    weights, place, weight = _absorb(state.kept_weight[start:], state.kept_payoff[start:], g)
    fill = t <= slots
    kept_weight = state.kept_weight.at[start:].set(
        jnp.where(fill, state.kept_weight[start:], weights)
    )
    insert = fill | (place < window)
    slot = jnp.where(fill, t - 1, start + jnp.minimum(place, window - 1))
    weight = jnp.where(fill, one, jnp.where(insert, weight, kept_weight[slot]))
    payoff = jnp.where(insert, g, state.kept_payoff[slot])
    policy = jnp.where(insert, played, state.kept[slot])
    return (
        kept_weight.at[slot].set(weight),
        state.kept_payoff.at[slot].set(payoff),
        state.kept.at[slot].set(policy),
    )


def _advance_one(pop, state: RunState, *, config: RunConfig, length: int) -> RunState:
    """``length`` more steps in one loop; with ``tol``, fewer once it is reached."""
    dynamics = config.dynamics(pop.num_responses)
    target = 1.0 / (config.k + 1)
    log_n = math.log(max(pop.num_responses, 2))

    payoff_fn = payoff_function(pop, config.k)  # population-only work (a sort) done once, here

    def advance(state: RunState) -> RunState:
        t = state.step + 1
        inner, played, g = dynamics.step(state.dynamics, payoff_fn, t)
        total_payoff = state.total_payoff + g
        total_value = state.total_value + dot(played, g)
        best = jnp.max(total_payoff)
        kept_weight, kept_payoff, kept = _keep(state, played, g, t, config=config)
        t_float = t.astype(played.dtype)
        record = Trace(
            step=t,
            regret=best - total_value,
            bound=jnp.sqrt(t_float * log_n / 2),
            exploitability=jnp.max(g) - target,
            mixture_exploitability=best / t_float - target,
        )
        # Slot i keeps the last step of its block: the run's final step is always recorded.
        at = _trace_slot(t, config)
        trace = jax.tree.map(lambda buffer, value: buffer.at[at].set(value), state.trace, record)
        done = False if config.tol is None else (record.exploitability <= config.tol)
        done = done & _on_simplex(played)
        return state._replace(
            step=t,
            dynamics=inner,
            total_payoff=total_payoff,
            total_value=total_value,
            kept_weight=kept_weight,
            kept_payoff=kept_payoff,
            kept=kept,
            trace=trace,
            last=played,
            done=jnp.asarray(done),
        )

    if config.tol is None:  # a fixed trip count: a scan without per-step outputs
        return jax.lax.fori_loop(0, length, lambda _, s: advance(s), state)
    until = state.step + length
    return jax.lax.while_loop(lambda s: (s.step < until) & ~s.done, advance, state)


def _finish_one(pop, state: RunState, *, config: RunConfig):
    """The run's outputs: last iterate, kept iterates and weights, trace, steps, outcome."""
    del pop
    num_steps = state.step
    used = _trace_slot(num_steps, config) + 1
    index = jnp.arange(_trace_slots(config), dtype=num_steps.dtype)
    trace = Trace(*(jnp.where(index < used, b, b[used - 1]) for b in state.trace))
    weights = state.kept_weight
    reached = jnp.asarray(True) if config.tol is None else state.done
    finite = _on_simplex(state.last) & jnp.all(jnp.isfinite(trace.regret))
    outcome = jnp.where(finite, jnp.where(reached, 0, 1), 2).astype(jnp.int32)
    return state.last, state.kept, weights / jnp.sum(weights), trace, num_steps, outcome


def _map_run(fn, pop, *states, **options):
    """``fn(pop, *states, **options)`` over the population's prompt axes, jitted."""
    depth = len(pop.batch_shape)
    in_axes = (0,) * (1 + len(states))
    return jit_over_prompts(fn, in_axes, depth, pop, states, options)


def _solve_one(pop, *, config: RunConfig):
    state = _init_one(pop, config=config)
    state = _advance_one(pop, state, config=config, length=config.steps)
    return _finish_one(pop, state, config=config)


def _solve_in_segments(pop, config: RunConfig, checkpoint, every: int | None):
    """The run in segments of ``every`` steps, the state saved after each (resumed if saved)."""
    every = every or DEFAULT_CHECKPOINT_EVERY
    metadata = {"config": config._asdict(), "population": fingerprint(pop), "format": 3}
    state = _map_run(_init_one, pop, config=config)
    if Path(checkpoint).exists():
        state = load_checkpoint(
            checkpoint, state, metadata, check=lambda saved: _check_saved(saved, config)
        )
    start = int(jnp.max(state.step))
    for until in _segments(start, config.steps, every):
        if start >= until or (config.tol is not None and bool(jnp.all(state.done))):
            break
        state = _map_run(_advance_one, pop, state, config=config, length=until - start)
        start = until
        save_checkpoint(checkpoint, state, metadata)
    return _map_run(_finish_one, pop, state, config=config)


def _check_saved(state: RunState, config: RunConfig) -> None:
    """Refuse a saved state no run of ``config`` reaches (a damaged or hand-edited checkpoint):
    ``0 <= step <= steps``; the last iterate and the kept iterates in use on the simplex (to
    1e-3, as ``_on_simplex``), their weights nonnegative, the unused slots zero."""
    step = np.asarray(state.step)
    if step.min() < 0 or step.max() > config.steps:
        bad = int(step.min() if step.min() < 0 else step.max())
        raise ValueError(f"step {bad} is outside 0..{config.steps} (the run's steps)")
    last = np.asarray(state.last)
    if np.any(last < 0) or np.any(np.abs(last.sum(-1) - 1) > 1e-3):
        raise ValueError("the last iterate is not a probability vector")
    kept = np.asarray(state.kept)
    in_use = np.arange(kept.shape[-2]) < step[..., None]
    sums = kept.sum(-1)
    if np.any(kept < 0) or np.any(np.where(in_use, np.abs(sums - 1) > 1e-3, sums != 0)):
        raise ValueError("the kept iterates are not probability vectors (or unused slots not 0)")
    weights = np.asarray(state.kept_weight)
    if np.any(weights < 0) or np.any(np.where(in_use, False, weights != 0)):
        raise ValueError("the kept weights are negative (or unused slots not 0)")


# --------------------------------------------------------------------------- implicit gradient


def _constant(tree):
    """``tree`` with its array leaves cut from autodiff (other leaves unchanged)."""
    return jax.tree.map(lambda x: jax.lax.stop_gradient(x) if eqx.is_array(x) else x, tree)


def _field(pop, policy, k: int, tau: float):
    """The equilibrium's payoff field ``u_k(·, π) − τ log(n π)`` (docs/theory.md §9)."""
    g = single_policy_payoffs(pop, policy, k)
    if not tau:
        return g
    tiny = jnp.finfo(policy.dtype).tiny
    return g - tau * (jnp.log(jnp.maximum(policy, tiny)) + math.log(policy.shape[-1]))


@eqx.filter_custom_vjp
def _equilibrium(pop, policy, k, tau):
    """``policy`` unchanged; its VJP is that of the equilibrium map ``θ ↦ π*(θ)``."""
    del pop, k, tau
    return policy


@_equilibrium.def_fwd
def _equilibrium_fwd(perturbed, pop, policy, k, tau):
    del perturbed, pop, k, tau
    return policy, None


@_equilibrium.def_bwd
def _equilibrium_bwd(residuals, cotangent, perturbed, pop, policy, k, tau):
    """Implicit function theorem on the KKT system of the equilibrium's support ``S``.

    Unknowns ``(π, v)``: ``F_y = field_y(π; θ) − v`` for ``y ∈ S``, ``F_y = π_y`` for
    ``y ∉ S``, ``F_{n} = Σ_y π_y − 1``. With ``A = ∂F/∂(π, v)`` and ``λ`` solving
    ``Aᵀ λ = (w, 0)`` for the cotangent ``w``, the parameter cotangent is
    ``−∂_θ <λ_S, field_S(π; θ)>``. ``A`` is solved by least squares (the minimum-norm answer
    where the equilibrium is degenerate), so the gradient is always finite.
    """
    del residuals
    n, dtype = policy.shape[-1], policy.dtype
    pop = _constant(pop)
    policy = jax.lax.stop_gradient(policy)
    g = _field(pop, policy, k, tau)
    # The support: the responses within δ of the best payoff (at an exact equilibrium with
    # strict complementarity, exactly those played). δ covers the iterate's own exploitability.
    epsilon = jnp.max(g) - dot(policy, g)
    delta = 10 * jnp.abs(epsilon) + math.sqrt(float(jnp.finfo(dtype).eps))
    support = (g >= jnp.max(g) - delta).astype(dtype)
    jacobian = jax.jacfwd(lambda p: _field(pop, p, k, tau))(policy)
    top = jnp.concatenate(
        [
            support[:, None] * jacobian * support[None, :] + jnp.diag(1 - support),
            -support[:, None],
        ],
        axis=1,
    )
    bottom = jnp.concatenate([support, jnp.zeros(1, dtype)])[None, :]
    system = jnp.concatenate([top, bottom], axis=0)
    rhs = jnp.concatenate([jnp.asarray(cotangent, dtype), jnp.zeros(1, dtype)])
    multipliers = jnp.linalg.lstsq(system.T, rhs)[0][:n] * support

    def weighted(pop_diff):
        pop_full = eqx.combine(pop_diff, pop_rest)
        return -dot(multipliers, _field(pop_full, policy, k, tau))

    pop_diff, pop_rest = eqx.partition(pop, eqx.is_inexact_array)
    grads = jax.grad(weighted)(pop_diff)
    return jax.tree.map(
        lambda grad, wanted: grad if wanted else None,
        grads,
        perturbed,
        is_leaf=lambda x: x is None,
    )


def _implicit_one(pop, policy, *, k: int, tau: float):
    return _equilibrium(pop, policy, k, tau)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _on_simplex(policy) -> Bool[Array, ""]:
    """Finite, nonnegative and summing to 1 (to 1e-3): a valid iterate."""
    return (
        jnp.all(jnp.isfinite(policy))
        & jnp.all(policy >= 0)
        & (jnp.abs(jnp.sum(policy) - 1) <= 1e-3)
    )


def _segments(first: int, steps: int, every: int) -> list[int]:
    """Where the run stops to save a checkpoint: ``every`` steps apart, then ``steps``."""
    return [*range(first - first % every + every, steps, every), steps]


def solve(
    pop: Population,
    k: int,
    method: str | Dynamics = DEFAULT_METHOD,
    steps: int = 2000,
    tol: float | None = None,
    *,
    eta: float | None = None,
    tau: float = 0.0,
    mixture_size: int = DEFAULT_MIXTURE_SIZE,
    trace_size: int = DEFAULT_TRACE_SIZE,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
) -> Solution:
    """Self-play on the (k+1)-player alignment game from the uniform policy.

    Args:
        pop: a ranking, Plackett–Luce or dense population, optionally with prompt axes.
        k: responses per prompt (opponent draws in the payoff ``u_k``).
        method: a name in ``METHODS`` (``"hedge"`` uses ``η = sqrt(8 ln n / steps)``,
            docs/theory.md §4 T5) or any :class:`~ualign_jax.Dynamics`: a factory's or
            wrapper's result (``hedge(0.3)``, ``optimistic(...)``, ``averaged(...)``,
            ``kl_regularised(...)``) or a user's own ``(init, step)`` pair. A Dynamics object
            keys the compiled program by identity: reuse one object to avoid recompiling.
        steps: the horizon ``T`` (with ``tol``, the most steps taken).
        tol: stop once the played iterate's exploitability is at most ``tol``.
        eta: step size of a named method (default: the method's own); a Dynamics carries its own.
        tau: KL regularisation towards the uniform policy (0 = the game itself).
        mixture_size: slots of ``Solution.mixture`` at most (bounded memory). Runs of up to
            this many steps keep every iterate: the mixture is ``(1/T) Σ_t π_t^{⊗k}`` itself.
            Longer runs keep ``ceil(T / ceil(T / mixture_size))`` slots and fold each further
            iterate into the last ``n + 1`` of them by a Carathéodory step, which keeps the
            mixture's payoffs ``u_k(·, A) = (1/T) Σ_t u_k(·, π_t)`` exactly (so its
            ``R_{k,1}`` is T5's), at ``O(n^3)`` extra work per step (a QR factorisation of
            ``n + 2`` rows); such runs need at least ``n + 1`` slots.
        trace_size: steps recorded in ``Solution.trace`` at most (bounded memory; strided).
        checkpoint: a ``.npz`` path: the run's state is saved there atomically every
            ``checkpoint_every`` steps (default 1000); if the file exists, the run resumes from it
            (it must come from the same call on the same data) and ends where an uninterrupted
            run ends. Needs ``method`` by name (a Dynamics object's closures have no identity
            that survives the process, so the checkpoint could not be matched to the run).
        checkpoint_every: steps between checkpoints (each segment is one jitted loop).

    Returns:
        A :class:`Solution`; ``robust_win_rate(pop, sol.policy, k) >= k/(k+1) − ε`` with
        ``ε = sol.trace.exploitability[-1]`` (T1), and ``robust_win_rate(pop, sol.mixture, k)
        = k/(k+1) − sol.trace.mixture_exploitability[-1]``, in self-play
        ``k/(k+1) − Reg_T/T`` with ``Reg_T = sol.trace.regret[-1]`` (T5). ``jax.grad``
        through ``sol.policy`` is the derivative of the equilibrium (implicit differentiation,
        docs/theory.md §9), whatever the method.

    Example:
        >>> from ualign_jax import RankingPopulation, hedge
        >>> pop = RankingPopulation(jnp.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]))
        >>> sol = solve(pop, 2, tol=1e-6)
        >>> str(sol.outcome_name), bool(sol.trace.exploitability[-1] <= 1e-6)
        ('successful', True)
        >>> solve(pop, 2, method=hedge(0.3), steps=10).method
        'hedge(eta=0.3)'
    """
    check_population(pop)
    k = static_count(k, "k")
    steps = static_count(steps, "steps")
    mixture_size = static_count(mixture_size, "mixture_size")
    trace_size = static_count(trace_size, "trace_size")
    method = _as_dynamics(method)
    if tol is not None and not (_is_real(tol) and tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a positive number or None, got {tol!r}")
    if eta is not None and not (_is_real(eta) and eta > 0 and math.isfinite(eta)):
        raise ValueError(f"eta must be a positive number, got {eta!r}")
    if eta is not None and not isinstance(method, str):
        raise ValueError("eta applies to a method given by name; a Dynamics carries its own")
    if not (_is_real(tau) and tau >= 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a nonnegative number, got {tau!r}")
    if checkpoint_every is not None:
        checkpoint_every = static_count(checkpoint_every, "checkpoint_every")
        if checkpoint is None:
            raise ValueError("checkpoint_every needs checkpoint (a file path) as well")
    if checkpoint is not None and not isinstance(method, str):
        raise ValueError(
            "checkpoint needs method given by name (one of METHODS): a Dynamics object cannot "
            "be identified across processes, so a saved run could not be matched to it"
        )
    stride = -(-steps // mixture_size)
    slots = -(-steps // stride)
    n = pop.num_responses
    if stride > 1 and slots < n + 1:
        raise ValueError(
            f"mixture_size={mixture_size} gives a run of {steps} steps {slots} mixture slots, "
            f"fewer than the {n + 1} (the {n} responses + 1) needed to fold in the iterates "
            f"that do not fit; use mixture_size >= {2 * (n + 1)}, or >= steps to keep every "
            "iterate"
        )
    config = RunConfig(
        k=k,
        method=method,
        steps=steps,
        tol=None if tol is None else float(tol),
        eta=None if eta is None else float(eta),
        tau=float(tau),
        stride=stride,
        **dict(zip(("trace_dense", "trace_stride"), _trace_layout(steps, trace_size), strict=True)),
    )
    # The loop sees constants: gradients come from the implicit layer below, not the path.
    frozen = _constant(pop)
    if checkpoint is None:  # one jitted program, no host round trips (solve stays jit-able)
        outputs = map_prompts(_solve_one, frozen, config=config)
    else:
        outputs = _solve_in_segments(frozen, config, checkpoint, checkpoint_every)
    last, kept, weights, trace, steps_taken, outcome = outputs
    policy = _map_run(_implicit_one, pop, last, k=k, tau=config.tau)
    mixture = unchecked_mixture(kept, weights)
    name = config.dynamics(pop.num_responses).name
    return Solution(policy, mixture, trace, steps_taken, outcome, name)
