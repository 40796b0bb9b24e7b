"""The run driver: self-play on the (k+1)-player game, one jitted loop, batched over prompts.

``solve(pop, k)`` runs a dynamic from ``ualign_jax.dynamics`` for ``steps`` steps in one
``lax.scan`` (or a bounded ``lax.while_loop`` when ``tol`` is given), evaluating
``g_t = u_k(·, π_t)`` with the closed-form payoffs, and returns a :class:`Solution`.
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
from jaxtyping import Array, Bool, Float, Int

from ._linalg import dot
from ._validation import static_count
from .checkpoint import fingerprint, load_checkpoint, save_checkpoint
from .dynamics import (
    anytime_hedge_rate,
    extragradient,
    hedge,
    hedge_rate,
    kl_regularised,
    logit_gradient,
    optimistic_gradient,
    optimistic_hedge,
    regret_matching_plus,
)
from .payoffs import check_population, jit_over_prompts, map_prompts, payoff_function
from .policies import ProductMixture, unchecked_mixture

__all__ = ["solve", "Solution", "Trace", "METHODS", "OUTCOMES", "DEFAULT_METHOD"]

#: Method names accepted by :func:`solve`.
METHODS = (
    "optimistic_gradient",
    "extragradient",
    "extragradient_entropy",
    "hedge",
    "anytime_hedge",
    "optimistic_hedge",
    "regret_matching_plus",
    "logit_gradient",
)
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
#: Iterates kept in ``Solution.mixture`` at most; longer runs keep every ``ceil(T / this)``-th.
DEFAULT_MIXTURE_SIZE = 4096
#: Steps between checkpoints when ``solve`` is given a checkpoint path.
DEFAULT_CHECKPOINT_EVERY = 1000


class Trace(NamedTuple):
    """Per-step diagnostics, ``[..., steps]`` (entries past ``num_steps`` repeat the last one).

    ``regret``: external regret ``max_y Σ_s g_s(y) − Σ_s <π_s, g_s>``; ``bound``:
    ``sqrt(t ln n / 2)`` (at ``t = T`` the Hedge bound, which then holds for every ``t <= T``);
    ``exploitability``: ``ε_k(π_t)`` of the played iterate;
    ``mixture_exploitability``: ``k/(k+1) − R_{k,1}`` of the uniform mixture of ``π_1..π_t``.
    """

    regret: Float[Array, "*batch T"]
    bound: Float[Array, "*batch T"]
    exploitability: Float[Array, "*batch T"]
    mixture_exploitability: Float[Array, "*batch T"]


class Solution(eqx.Module):
    """Result of :func:`solve`.

    Attributes:
        policy: ``[..., n]`` the last iterate at which payoffs were evaluated.
        mixture: ``ProductMixture`` of the evaluated iterates (uniform weights; strided past
            ``mixture_size``).
        trace: a :class:`Trace`.
        num_steps: ``[...]`` steps taken.
        outcome: ``[...]`` index into ``OUTCOMES``.
    """

    policy: Float[Array, "*batch n"]
    mixture: ProductMixture
    trace: Trace
    num_steps: Int[Array, "*batch"]
    outcome: Int[Array, "*batch"]

    @property
    def outcome_name(self):
        """The outcome as a name (a flat list of names, row-major, for a batch of prompts)."""
        codes = jnp.asarray(self.outcome)
        if codes.ndim == 0:
            return OUTCOMES[int(codes)]
        return [OUTCOMES[int(c)] for c in codes.reshape(-1)]


def make_dynamics(method: str, num_responses: int, steps: int, eta: float | None):
    """The dynamic for ``method`` with its default step size."""
    if method == "hedge":
        return hedge(eta if eta is not None else hedge_rate(num_responses, steps))
    if method == "anytime_hedge":
        return hedge(anytime_hedge_rate(num_responses) if eta is None else eta)
    if method == "optimistic_hedge":
        return optimistic_hedge(eta if eta is not None else 2.0)
    if method == "optimistic_gradient":
        return optimistic_gradient(eta if eta is not None else 1.0)
    if method == "extragradient":
        return extragradient(eta if eta is not None else 1.0)
    if method == "extragradient_entropy":
        return extragradient(eta if eta is not None else 1.0, geometry="entropy")
    if method == "regret_matching_plus":
        return regret_matching_plus()
    import optax  # noqa: PLC0415

    return logit_gradient(optax.sgd(eta if eta is not None else 10.0))


class RunConfig(NamedTuple):
    """The static configuration of one run (hashable: it keys the compiled program)."""

    k: int
    method: str
    steps: int
    tol: float | None
    eta: float | None
    tau: float
    stride: int


class RunState(NamedTuple):
    """Everything a run carries from one step to the next (one prompt); checkpoints save it.

    ``trace`` holds ``[steps]`` buffers filled up to ``step``; ``kept`` every ``stride``-th
    played iterate; ``done`` whether the played iterate reached ``tol``.
    """

    step: Int[Array, ""]
    dynamics: Any
    total_payoff: Float[Array, " n"]
    total_value: Float[Array, ""]
    kept: Float[Array, "slots n"]
    trace: Trace
    last: Float[Array, " n"]
    done: Bool[Array, ""]


def _dynamics_for(pop, config: RunConfig):
    dynamics = make_dynamics(config.method, pop.num_responses, config.steps, config.eta)
    return kl_regularised(dynamics, config.tau) if config.tau else dynamics


def _init_one(pop, *, config: RunConfig) -> RunState:
    n, dtype = pop.num_responses, pop.dtype
    uniform = jnp.full((n,), 1.0 / n, dtype)
    slots = -(-config.steps // config.stride)
    buffers = Trace(*(jnp.zeros(config.steps, dtype) for _ in Trace._fields))
    return RunState(
        step=jnp.asarray(0, jnp.int32),
        dynamics=_dynamics_for(pop, config).init(uniform),
        total_payoff=jnp.zeros(n, dtype),
        total_value=jnp.zeros((), dtype),
        kept=jnp.zeros((slots, n), dtype),
        trace=buffers,
        last=uniform,
        done=jnp.asarray(False),
    )


def _advance_one(pop, state: RunState, *, config: RunConfig, length: int) -> RunState:
    """``length`` more steps (one ``lax.scan``); with ``tol``, fewer once it is reached."""
    dynamics = _dynamics_for(pop, config)
    target = 1.0 / (config.k + 1)
    log_n = math.log(max(pop.num_responses, 2))

    payoff_fn = payoff_function(pop, config.k)  # population-only work (a sort) done once, here

    def advance(state: RunState, t):
        inner, played, g = dynamics.step(state.dynamics, payoff_fn, t)
        total_payoff = state.total_payoff + g
        total_value = state.total_value + dot(played, g)
        best = jnp.max(total_payoff)
        slot = (t - 1) // config.stride
        keep = jnp.where((t - 1) % config.stride == 0, played, state.kept[slot])
        t_float = t.astype(played.dtype)
        record = Trace(
            regret=best - total_value,
            bound=jnp.sqrt(t_float * log_n / 2),
            exploitability=jnp.max(g) - target,
            mixture_exploitability=best / t_float - target,
        )
        done = False if config.tol is None else (record.exploitability <= config.tol)
        done = done & _on_simplex(played)
        state = state._replace(
            step=t,
            dynamics=inner,
            total_payoff=total_payoff,
            total_value=total_value,
            kept=state.kept.at[slot].set(keep),
            last=played,
            done=jnp.asarray(done),
        )
        return state, record

    start = state.step
    if config.tol is None:
        times = start + jnp.arange(1, length + 1, dtype=start.dtype)
        state, records = jax.lax.scan(advance, state, times)
        trace = jax.tree.map(
            lambda buffer, new: jax.lax.dynamic_update_slice_in_dim(buffer, new, start, 0),
            state.trace,
            records,
        )
        return state._replace(trace=trace)

    def cond(state: RunState):
        return (state.step < start + length) & ~state.done

    def body(state: RunState):
        index = state.step
        state, record = advance(state, index + 1)
        trace = jax.tree.map(lambda b, v: b.at[index].set(v), state.trace, record)
        return state._replace(trace=trace)

    return jax.lax.while_loop(cond, body, state)


def _finish_one(pop, state: RunState, *, config: RunConfig):
    """The run's outputs: last iterate, kept iterates and weights, trace, steps, outcome."""
    num_steps = state.step
    index = jnp.arange(config.steps, dtype=num_steps.dtype)
    trace = Trace(*(jnp.where(index < num_steps, b, b[num_steps - 1]) for b in state.trace))
    slots = state.kept.shape[0]
    used = jnp.minimum(-(-num_steps // config.stride), slots)
    weights = jnp.where(jnp.arange(slots, dtype=used.dtype) < used, 1.0, 0.0).astype(
        state.kept.dtype
    )
    reached = jnp.asarray(True) if config.tol is None else state.done
    finite = _on_simplex(state.last) & jnp.all(jnp.isfinite(trace.regret))
    outcome = jnp.where(finite, jnp.where(reached, 0, 1), 2)
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
    metadata = {"config": config._asdict(), "population": fingerprint(pop), "format": 1}
    state = _map_run(_init_one, pop, config=config)
    if Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, state, metadata)
    start = int(jnp.max(state.step))
    for until in _segments(start, config.steps, every):
        if start >= until or (config.tol is not None and bool(jnp.all(state.done))):
            break
        state = _map_run(_advance_one, pop, state, config=config, length=until - start)
        start = until
        save_checkpoint(checkpoint, state, metadata)
    return _map_run(_finish_one, pop, state, config=config)


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
    pop,
    k,
    method: str = DEFAULT_METHOD,
    steps: int = 2000,
    tol: float | None = None,
    *,
    eta: float | None = None,
    tau: float = 0.0,
    mixture_size: int = DEFAULT_MIXTURE_SIZE,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
) -> Solution:
    """Self-play on the (k+1)-player alignment game from the uniform policy.

    Args:
        pop: a ranking, Plackett–Luce or dense population, optionally with prompt axes.
        k: responses per prompt (opponent draws in the payoff ``u_k``).
        method: one of ``METHODS``; ``"hedge"`` uses ``η = sqrt(8 ln n / steps)`` (THEORY T5).
        steps: the horizon ``T`` (with ``tol``, the most steps taken).
        tol: stop once the played iterate's exploitability is at most ``tol``.
        eta: step size (default: the method's own).
        tau: KL regularisation towards the uniform policy (0 = the game itself).
        mixture_size: iterates kept in ``Solution.mixture`` at most (bounded memory).
        checkpoint: a ``.npz`` path: the run's state is saved there atomically every
            ``checkpoint_every`` steps (default 1000); if the file exists, the run resumes from it
            (it must come from the same call on the same data) and ends where an uninterrupted
            run ends.
        checkpoint_every: steps between checkpoints (each segment is one jitted loop).

    Returns:
        A :class:`Solution`; ``robust_win_rate(pop, sol.policy, k) >= k/(k+1) − ε`` with
        ``ε = sol.trace.exploitability[-1]`` (T1).

    Example:
        >>> from ualign_jax import RankingPopulation
        >>> pop = RankingPopulation(jnp.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]))
        >>> sol = solve(pop, 2, tol=1e-6)
        >>> sol.outcome_name, bool(sol.trace.exploitability[-1] <= 1e-6)
        ('successful', True)
    """
    check_population(pop)
    k = static_count(k, "k")
    steps = static_count(steps, "steps")
    mixture_size = static_count(mixture_size, "mixture_size")
    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; choose from {', '.join(METHODS)}")
    if tol is not None and not (_is_real(tol) and tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a positive number or None, got {tol!r}")
    if eta is not None and not (_is_real(eta) and eta > 0 and math.isfinite(eta)):
        raise ValueError(f"eta must be a positive number, got {eta!r}")
    if not (_is_real(tau) and tau >= 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a nonnegative number, got {tau!r}")
    if checkpoint_every is not None:
        checkpoint_every = static_count(checkpoint_every, "checkpoint_every")
        if checkpoint is None:
            raise ValueError("checkpoint_every needs checkpoint (a file path) as well")
    config = RunConfig(
        k=k,
        method=method,
        steps=steps,
        tol=None if tol is None else float(tol),
        eta=None if eta is None else float(eta),
        tau=float(tau),
        stride=-(-steps // mixture_size),
    )
    if checkpoint is None:  # one jitted program, no host round trips (solve stays jit-able)
        outputs = map_prompts(_solve_one, pop, config=config)
    else:
        outputs = _solve_in_segments(pop, config, checkpoint, checkpoint_every)
    last, kept, weights, trace, steps_taken, outcome = outputs
    return Solution(last, unchecked_mixture(kept, weights), trace, steps_taken, outcome)
