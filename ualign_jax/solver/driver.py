"""The run driver: self-play on the (k+1)-player game, one jitted loop, batched over prompts.

``solve(pop, k)`` runs a dynamic from ``ualign_jax.dynamics`` for ``steps`` steps in one loop
(or a bounded ``lax.while_loop`` when ``tol`` is given), evaluating ``g_t = u_k(·, π_t)`` with
the closed-form payoffs, and returns a :class:`Solution`.

``Solution.mixture`` is, for every ``T``, a mixture of evaluated iterates with the same payoff
profile ``u_k(·, A) = (1/T) Σ_t g_t`` as the uniform mixture ``(1/T) Σ_t π_t^{⊗k}`` of T5
(docs/theory.md §4): every iterate while they fit in ``mixture_size`` slots, and past that a
Carathéodory reduction of the later ones (``trace.absorb``), so its robust win rate is that of
T5's mixture and memory stays bounded.
"""

from __future__ import annotations

import os

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int32

from .._validation import check_real, is_concrete, static_count
from ..dynamics import NAMED, Dynamics
from ..payoffs import check_population, map_prompts
from ..policies import ProductMixture, unchecked_mixture
from ..populations import Population
from .adjoint import AbstractAdjoint, ImplicitAdjoint
from .equilibrium import constant
from .loop import RunConfig, solve_one
from .outcomes import OUTCOMES, Outcome
from .segments import solve_in_segments
from .trace import Trace, trace_layout

__all__ = [
    "solve",
    "Solution",
    "METHODS",
    "DEFAULT_METHOD",
    "DEFAULT_MIXTURE_SIZE",
    "DEFAULT_TRACE_SIZE",
]

#: Method names accepted by :func:`solve` (shortcuts for the dynamics in ``dynamics.NAMED``).
METHODS = tuple(NAMED)
#: The fastest reliable method measured: adaptive optimistic gradient, one payoff evaluation a
#: step, whose last iterate converges on every bundled data set (benchmarks/RESULTS.md,
#: "Convergence", has the measurements and the alternatives).
DEFAULT_METHOD = "optimistic_gradient"
#: Slots of ``Solution.mixture`` at most. A run of ``T`` steps has ``ceil(T / ceil(T / this))``
#: of them: every iterate when ``T <= this``; otherwise the iterates that overflow are folded
#: into its last ``n + 1`` slots by Carathéodory steps that keep ``u_k(·, A)`` exactly.
DEFAULT_MIXTURE_SIZE = 4096
#: Steps recorded in ``Solution.trace`` at most; longer runs record every ``ceil(T / this)``-th.
DEFAULT_TRACE_SIZE = 4096


class Solution(eqx.Module):
    """Result of :func:`solve`.

    Attributes:
        policy: ``[..., n]`` the last iterate at which payoffs were evaluated; its derivative
            w.r.t. the population's floating leaves is set by ``solve``'s ``adjoint``
            (default: implicit differentiation at the equilibrium, docs/theory.md §9).
        mixture: ``ProductMixture`` ``A = Σ_j α_j π_j^{⊗k}`` of evaluated iterates with
            ``Σ_j α_j u_k(·, π_j) = (1/T) Σ_t u_k(·, π_t)`` over the ``T = num_steps``
            iterates: the uniform mixture ``(1/T) Σ_t π_t^{⊗k}`` itself when ``T`` fits in
            ``mixture_size``, otherwise a reduction of it with the same payoffs ``u_k(·, A)``,
            hence the same ``R_{k,1}`` (T5: at least ``k/(k+1) − Reg_T/T``) and the same win
            rate against every single-output opponent (its marginal, ``R_{k,ℓ}`` for
            ``ℓ >= 2`` and payoffs at another ``k`` may differ). A constant for autodiff.
        trace: a :class:`Trace` (bounded by ``trace_size``); a constant for autodiff.
        num_steps: ``[...]`` steps taken (int32).
        outcome: ``[...]`` an :class:`Outcome` code, index into ``OUTCOMES`` (int32).
        kinks: ``[..., n]`` responses at which strict complementarity fails at ``policy``
            (probability and payoff gap both within ``δ`` of 0, ``equilibrium.kinks``): there the
            equilibrium map has a kink and the implicit gradient is one-sided (§9).
        method: the dynamic that ran, by name (e.g. ``"optimistic_gradient(eta=1, growth=1.2)"``).
    """

    policy: Float[Array, "*batch n"]
    mixture: ProductMixture
    trace: Trace
    num_steps: Int32[Array, "*batch"]
    outcome: Int32[Array, "*batch"]
    kinks: Bool[Array, "*batch n"]
    method: str = eqx.field(static=True, default="custom")

    @property
    def degenerate(self) -> Bool[Array, "*batch"]:
        """``[...]`` whether any response is at a kink (:attr:`kinks`), per prompt.

        Where true, ``jax.grad`` through ``policy`` (implicit adjoint) is a one-sided
        derivative, not a gradient: see docs/theory.md §9 for what to do.
        """
        return jnp.any(self.kinks, axis=-1)

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


def _raise_on_failure(policy, outcome):
    """``policy``, after raising if any prompt's ``outcome`` is not ``successful``.

    Concrete outcomes raise a ``RuntimeError`` here; traced ones (inside ``jit``) go through
    ``eqx.branched_error_if``, which raises when the program runs.
    """
    failures = [member for member in Outcome if member is not Outcome.successful]
    if is_concrete(outcome):
        codes = np.asarray(outcome)
        failed = codes != Outcome.successful
        if np.any(failed):
            worst = Outcome(int(codes.max()))
            where = "" if codes.ndim == 0 else f" ({int(failed.sum())} of {codes.size} prompts)"
            raise RuntimeError(f"solve: {worst.name}{where}: {worst.message}")
        return policy
    messages = ["solve: successful"] + [f"solve: {m.name}: {m.message}" for m in failures]
    return eqx.branched_error_if(policy, jnp.any(outcome != 0), jnp.max(outcome), messages)


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
    adjoint: AbstractAdjoint = ImplicitAdjoint(),  # noqa: B008  (an immutable module)
    throw: bool = False,
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
        adjoint: how ``jax.grad`` through ``Solution.policy`` is computed:
            :class:`~ualign_jax.ImplicitAdjoint` (default; the equilibrium's derivative,
            docs/theory.md §9) or :class:`~ualign_jax.UnrolledAdjoint` (through the ``steps``
            iterations; needs ``tol=None`` and no ``checkpoint``).
        throw: raise unless every prompt's outcome is ``successful``: a ``RuntimeError`` with
            the :class:`~ualign_jax.Outcome`'s message when called eagerly, an
            ``eqx.branched_error_if`` error when the program runs under ``jit``.

    Returns:
        A :class:`Solution`; ``robust_win_rate(pop, sol.policy, k) >= k/(k+1) − ε`` with
        ``ε = sol.trace.exploitability[-1]`` (T1), and ``robust_win_rate(pop, sol.mixture, k)
        = k/(k+1) − sol.trace.mixture_exploitability[-1]``, in self-play
        ``k/(k+1) − Reg_T/T`` with ``Reg_T = sol.trace.regret[-1]`` (T5). Where
        ``sol.degenerate`` the implicit gradient is one-sided (docs/theory.md §9).

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
    tol = check_real(tol, "tol", 0, low_open=True, none_ok=True, static=True)
    eta = check_real(eta, "eta", 0, low_open=True, none_ok=True, static=True)
    if eta is not None and not isinstance(method, str):
        raise ValueError("eta applies to a method given by name; a Dynamics carries its own")
    tau = check_real(tau, "tau", 0, static=True)
    if not isinstance(throw, bool):
        raise ValueError(f"throw must be True or False, got {throw!r}")
    if not isinstance(adjoint, AbstractAdjoint):
        raise ValueError(
            "adjoint must be an AbstractAdjoint (ua.ImplicitAdjoint() or ua.UnrolledAdjoint()), "
            f"got {type(adjoint).__name__}"
        )
    if adjoint.unrolled and (tol is not None or checkpoint is not None):
        raise ValueError(
            "adjoint=UnrolledAdjoint() differentiates a fixed number of steps in one program: "
            "use tol=None and no checkpoint (or the default ImplicitAdjoint())"
        )
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
    trace_dense, trace_stride = trace_layout(steps, trace_size)
    config = RunConfig(
        k=k,
        method=method,
        steps=steps,
        tol=None if tol is None else float(tol),
        eta=None if eta is None else float(eta),
        tau=float(tau),
        stride=stride,
        trace_dense=trace_dense,
        trace_stride=trace_stride,
    )
    if adjoint.unrolled:  # the derivative flows through the loop
        outputs = map_prompts(solve_one, pop, config=config, unrolled=True)
    elif checkpoint is None:  # one jitted program, no host round trips (solve stays jit-able)
        outputs = map_prompts(solve_one, constant(pop), config=config)
    else:
        outputs = solve_in_segments(constant(pop), config, checkpoint, checkpoint_every)
    last, kept, weights, trace, steps_taken, outcome, kinks = outputs
    policy = adjoint.attach(pop, last, k=k, tau=config.tau)
    if throw:
        policy = _raise_on_failure(policy, outcome)
    mixture = unchecked_mixture(kept, weights)
    name = config.dynamics(pop.num_responses).name
    return Solution(policy, mixture, trace, steps_taken, outcome, kinks, name)
