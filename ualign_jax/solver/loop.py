"""One run for one prompt as pure functions: ``init_one``, ``advance_one``, ``finish_one``.

:func:`~ualign_jax.solve` maps them over the prompt axes in one jitted program
(:func:`solve_one`), or in segments with a checkpoint between them (``segments``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int32

from .._linalg import dot
from .._validation import ITERATE_TOLERANCE
from ..dynamics import Dynamics, kl_regularised, named
from ..payoffs import jit_over_prompts, payoff_function
from .equilibrium import kinks
from .outcomes import Outcome
from .trace import Trace, keep_iterate, trace_slot, trace_slots

__all__ = [
    "RunConfig",
    "RunState",
    "init_one",
    "advance_one",
    "finish_one",
    "solve_one",
    "map_run",
    "on_simplex",
]


class RunConfig(NamedTuple):
    """The static configuration of one run (hashable: it keys the compiled program, and its
    fields are a checkpoint's ``config`` record)."""

    k: int
    method: str | Dynamics
    steps: int
    tol: float | None
    eta: float | None
    tau: float
    #: ``ceil(steps / mixture_size)``: the mixture has ``ceil(steps / stride)`` slots (every
    #: iterate when 1; otherwise later iterates are folded in by ``trace.absorb``).
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

    def trace_slot(self, t):
        """The trace slot of step ``t`` (1-based)."""
        return trace_slot(t, self.trace_dense, self.trace_stride)

    @property
    def trace_slots(self) -> int:
        """Slots of the run's trace."""
        return trace_slots(self.steps, self.trace_dense, self.trace_stride)


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


def on_simplex(policy) -> Bool[Array, ""]:
    """Finite, nonnegative and summing to 1 (to ``ITERATE_TOLERANCE``): a valid iterate."""
    return (
        jnp.all(jnp.isfinite(policy))
        & jnp.all(policy >= 0)
        & (jnp.abs(jnp.sum(policy) - 1) <= ITERATE_TOLERANCE)
    )


def init_one(pop, *, config: RunConfig) -> RunState:
    """The state before the first step: the uniform policy, empty records."""
    n, dtype = pop.num_responses, pop.dtype
    uniform = jnp.full((n,), 1.0 / n, dtype)
    slots = -(-config.steps // config.stride)
    size = config.trace_slots
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


def advance_one(
    pop, state: RunState, *, config: RunConfig, length: int, unrolled: bool = False
) -> RunState:
    """``length`` more steps in one loop; with ``tol``, fewer once it is reached.

    ``unrolled``: the loop is to be differentiated (``UnrolledAdjoint``): each step of the
    dynamic is rematerialised in the backward pass (``jax.checkpoint``), so memory grows with
    the dynamic's state per step, and the records (trace, mixture) are cut from autodiff.
    """
    dynamics = config.dynamics(pop.num_responses)
    target = 1.0 / (config.k + 1)
    log_n = math.log(max(pop.num_responses, 2))

    payoff_fn = payoff_function(pop, config.k)  # population-only work (a sort) done once, here

    def dynamic_step(inner, t):
        return dynamics.step(inner, payoff_fn, t)

    if unrolled:
        dynamic_step = jax.checkpoint(dynamic_step)

    def advance(state: RunState) -> RunState:
        t = state.step + 1
        inner, played, g = dynamic_step(state.dynamics, t)
        last = played
        if unrolled:  # only the iterate carries derivatives
            played, g = jax.lax.stop_gradient((played, g))
        total_payoff = state.total_payoff + g
        total_value = state.total_value + dot(played, g)
        best = jnp.max(total_payoff)
        kept_weight, kept_payoff, kept = keep_iterate(
            state.kept_weight, state.kept_payoff, state.kept, played, g, t, config.stride
        )
        t_float = t.astype(played.dtype)
        record = Trace(
            step=t,
            regret=best - total_value,
            bound=jnp.sqrt(t_float * log_n / 2),
            exploitability=jnp.max(g) - target,
            mixture_exploitability=best / t_float - target,
        )
        # Slot i keeps the last step of its block: the run's final step is always recorded.
        at = config.trace_slot(t)
        trace = jax.tree.map(lambda buffer, value: buffer.at[at].set(value), state.trace, record)
        done = False if config.tol is None else (record.exploitability <= config.tol)
        done = done & on_simplex(played)
        return state._replace(
            step=t,
            dynamics=inner,
            total_payoff=total_payoff,
            total_value=total_value,
            kept_weight=kept_weight,
            kept_payoff=kept_payoff,
            kept=kept,
            trace=trace,
            last=last,
            done=jnp.asarray(done),
        )

    if config.tol is None:  # a fixed trip count: a scan without per-step outputs
        return jax.lax.fori_loop(0, length, lambda _, s: advance(s), state)
    until = state.step + length
    return jax.lax.while_loop(lambda s: (s.step < until) & ~s.done, advance, state)


def finish_one(pop, state: RunState, *, config: RunConfig):
    """The run's outputs: last iterate, kept iterates and weights, trace, steps, outcome, and
    the responses at a kink of the equilibrium map (``equilibrium.kinks``)."""
    num_steps = state.step
    used = config.trace_slot(num_steps) + 1
    index = jnp.arange(config.trace_slots, dtype=num_steps.dtype)
    trace = Trace(*(jnp.where(index < used, b, b[used - 1]) for b in state.trace))
    weights = state.kept_weight
    reached = jnp.asarray(True) if config.tol is None else state.done
    finite = on_simplex(state.last) & jnp.all(jnp.isfinite(trace.regret))
    outcome = jnp.where(
        finite,
        jnp.where(reached, int(Outcome.successful), int(Outcome.max_steps_reached)),
        int(Outcome.nonfinite),
    ).astype(jnp.int32)
    at_kink = kinks(pop, state.last, k=config.k, tau=config.tau)
    return state.last, state.kept, weights / jnp.sum(weights), trace, num_steps, outcome, at_kink


def map_run(fn, pop, *states, **options):
    """``fn(pop, *states, **options)`` over the population's prompt axes, jitted."""
    depth = len(pop.batch_shape)
    in_axes = (0,) * (1 + len(states))
    return jit_over_prompts(fn, in_axes, depth, pop, states, options)


def solve_one(pop, *, config: RunConfig, unrolled: bool = False):
    """A whole run for one prompt: ``finish_one(advance_one(init_one))``."""
    state = init_one(pop, config=config)
    state = advance_one(pop, state, config=config, length=config.steps, unrolled=unrolled)
    return finish_one(pop, state, config=config)
