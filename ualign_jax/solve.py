"""The run driver: self-play on the (k+1)-player game, one jitted loop, batched over prompts.

``solve(pop, k)`` runs a dynamic from ``ualign_jax.dynamics`` for ``steps`` steps in one
``lax.scan`` (or a bounded ``lax.while_loop`` when ``tol`` is given), evaluating
``g_t = u_k(·, π_t)`` with the closed-form payoffs, and returns a :class:`Solution`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._validation import static_count
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
from .payoffs import check_population, map_prompts, single_policy_payoffs
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
OUTCOMES = ("successful", "max_steps_reached", "nonfinite")
#: Iterates kept in ``Solution.mixture`` at most; longer runs keep every ``ceil(T / this)``-th.
DEFAULT_MIXTURE_SIZE = 4096


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


def _solve_one(pop, *, k, method, steps, tol, eta, tau, stride):
    n = pop.num_responses
    dtype = pop.dtype
    dynamics = make_dynamics(method, n, steps, eta)
    if tau:
        dynamics = kl_regularised(dynamics, tau)
    target = 1.0 / (k + 1)
    log_n = math.log(max(n, 2))
    slots = -(-steps // stride)

    def payoff_fn(policy):
        return single_policy_payoffs(pop, policy, k)

    def advance(carry, t):
        state, total_payoff, total_value, kept = carry
        state, played, g = dynamics.step(state, payoff_fn, t)
        total_payoff = total_payoff + g
        total_value = total_value + played @ g
        best = jnp.max(total_payoff)
        kept = jax.lax.cond(
            (t - 1) % stride == 0,
            lambda kept: kept.at[(t - 1) // stride].set(played),
            lambda kept: kept,
            kept,
        )
        t_float = t.astype(dtype)
        record = (
            best - total_value,
            jnp.sqrt(t_float * log_n / 2),
            jnp.max(g) - target,
            best / t_float - target,
            played,
        )
        return (state, total_payoff, total_value, kept), record

    uniform = jnp.full((n,), 1.0 / n, dtype)
    carry0 = (
        dynamics.init(uniform),
        jnp.zeros(n, dtype),
        jnp.zeros((), dtype),
        jnp.zeros((slots, n), dtype),
    )
    if tol is None:
        carry, records = jax.lax.scan(advance, carry0, jnp.arange(1, steps + 1))
        *trace, played = records
        num_steps = jnp.asarray(steps)
        last = played[-1]
        reached = jnp.asarray(True)
    else:
        buffers = tuple(jnp.zeros(steps, dtype) for _ in range(4))

        def cond(loop):
            t, _, _, eps, _ = loop
            return (t < steps) & ~(eps <= tol)

        def body(loop):
            t, carry, buffers, _, _ = loop
            carry, record = advance(carry, t + 1)
            *values, played = record
            buffers = tuple(b.at[t].set(v) for b, v in zip(buffers, values, strict=True))
            return t + 1, carry, buffers, values[2], played

        loop0 = (jnp.asarray(0), carry0, buffers, jnp.asarray(jnp.inf, dtype), uniform)
        num_steps, carry, buffers, eps, last = jax.lax.while_loop(cond, body, loop0)
        index = jnp.arange(steps)
        trace = [jnp.where(index < num_steps, b, b[num_steps - 1]) for b in buffers]
        reached = eps <= tol
    kept = carry[3]
    used = jnp.minimum(-(-num_steps // stride), slots)
    weights = jnp.where(jnp.arange(slots) < used, 1.0, 0.0).astype(dtype)
    finite = jnp.all(jnp.isfinite(last)) & jnp.all(jnp.isfinite(trace[0]))
    outcome = jnp.where(finite, jnp.where(reached, 0, 1), 2)
    return last, kept, weights / jnp.sum(weights), Trace(*trace), num_steps, outcome


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
    if tol is not None and not (isinstance(tol, int | float) and tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a positive number or None, got {tol!r}")
    if eta is not None and not (isinstance(eta, int | float) and eta > 0 and math.isfinite(eta)):
        raise ValueError(f"eta must be a positive number, got {eta!r}")
    if not (isinstance(tau, int | float) and tau >= 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a nonnegative number, got {tau!r}")
    stride = -(-steps // mixture_size)
    last, kept, weights, trace, num_steps, outcome = map_prompts(
        _solve_one,
        pop,
        k=k,
        method=method,
        steps=steps,
        tol=None if tol is None else float(tol),
        eta=None if eta is None else float(eta),
        tau=float(tau),
        stride=stride,
    )
    return Solution(last, unchecked_mixture(kept, weights), trace, num_steps, outcome)
