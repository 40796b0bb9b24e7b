"""Self-play learning dynamics as ``(init, step)`` pairs of pure functions (docs/theory.md §4, T5).

Every player of the symmetric (k+1)-player game runs the same learner on the payoff vector
``g_t = u_k(·, π_t)``. A dynamic is a :class:`Dynamics` made by a factory that closes over its
hyperparameters (as optax's ``GradientTransformation``):

* ``init(policy) -> state``, a ``NamedTuple`` whose field ``policy`` is the current iterate;
* ``step(state, payoff_fn, t) -> (state, played, payoffs)`` where ``payoff_fn(π) -> [n]`` is the
  payoff oracle, ``t`` the 1-based step, ``played`` the policy at which this step's regret is
  charged (the extrapolated point for extragradient and optimism) and ``payoffs`` the raw game
  payoffs there.

Step sizes may be floats or schedules ``t -> η_t`` (optax schedules work). Wrappers compose:
:func:`kl_regularised` turns any dynamic into one for the KL-regularised game.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from ._linalg import dot

__all__ = [
    "Dynamics",
    "hedge",
    "optimistic_hedge",
    "extragradient",
    "optimistic_gradient",
    "regret_matching_plus",
    "logit_gradient",
    "kl_regularised",
    "optimistic",
    "averaged",
    "project_simplex",
    "named",
    "NAMED",
]

Schedule = float | Callable[[Any], Any]


class Dynamics(NamedTuple):
    """A learning dynamic: ``init(policy) -> state``; ``step(state, payoff_fn, t)``.

    ``name`` describes it in a :class:`~ualign_jax.Solution` and in reports (the factories set
    it, e.g. ``"hedge(eta=0.3)"``; a user's own dynamic may leave the default).
    """

    init: Callable
    step: Callable
    name: str = "custom"


def _describe(value) -> str:
    """A short text for a hyperparameter: the number, or ``"schedule"`` for a callable."""
    return "schedule" if callable(value) else f"{float(value):g}"


def _norm(x):
    """``||x||_2`` with a finite gradient at ``x = 0`` (``jnp.linalg.norm``'s is NaN there)."""
    squared = jnp.sum(x * x)
    safe = jnp.where(squared > 0, squared, 1.0)
    return jnp.where(squared > 0, jnp.sqrt(safe), 0.0)


def _rate(eta: Schedule, t, dtype):
    return jnp.asarray(eta(t) if callable(eta) else eta, dtype)


def project_simplex(v: Float[Array, " n"]) -> Float[Array, " n"]:
    """Euclidean projection onto the simplex: ``argmin_{p ∈ Δ} ||p - v||`` (sort-based, O(n log n)).

    Example:
        >>> project_simplex(jnp.array([2.0, 0.0])).tolist()
        [1.0, 0.0]
    """
    n = v.shape[-1]
    top = jnp.sort(v)[::-1]
    excess = jnp.cumsum(top) - 1.0
    ranks = jnp.arange(1, n + 1, dtype=v.dtype)
    support = jnp.sum(top - excess / ranks > 0)
    theta = excess[support - 1] / support.astype(v.dtype)
    return jnp.maximum(v - theta, 0.0)


# --------------------------------------------------------------------------- Hedge


class HedgeState(NamedTuple):
    policy: Any
    log_weights: Any


def hedge_rate(num_responses: int, horizon: int) -> float:
    """The fixed Hedge rate ``η = sqrt(8 ln n / T)`` behind ``Reg_T <= sqrt(T ln n / 2)``."""
    return math.sqrt(8.0 * math.log(max(num_responses, 2)) / horizon)


def anytime_hedge_rate(num_responses: int) -> Callable:
    """The anytime schedule ``η_t = sqrt(8 ln n / t)`` (same O(sqrt(T ln n)) order, no horizon)."""
    c = 8.0 * math.log(max(num_responses, 2))
    return lambda t: jnp.sqrt(c / jnp.asarray(t).astype(float))


def hedge(eta: Schedule) -> Dynamics:
    """Hedge / multiplicative weights: ``π_{t+1} ∝ π_t · exp(η_t g_t)``.

    With ``η = hedge_rate(n, T)`` and payoffs in [0, 1], ``Reg_T <= sqrt(T ln n / 2)`` (T5).

    Example:
        >>> dyn = hedge(0.5)
        >>> state = dyn.init(jnp.full(2, 0.5))
        >>> state, played, g = dyn.step(state, lambda p: jnp.array([1.0, 0.0]), 1)
        >>> round(float(state.policy[0]), 4)
        0.6225
    """

    def init(policy):
        return HedgeState(policy, jnp.log(jnp.maximum(policy, jnp.finfo(policy.dtype).tiny)))

    def step(state, payoff_fn, t):
        g = payoff_fn(state.policy)
        log_weights = state.log_weights + _rate(eta, t, g.dtype) * g
        log_weights = log_weights - jnp.max(log_weights)
        return HedgeState(jax.nn.softmax(log_weights), log_weights), state.policy, g

    return Dynamics(init, step, f"hedge(eta={_describe(eta)})")


def optimistic_hedge(eta: Schedule) -> Dynamics:
    """Optimistic Hedge: play ``π_t ∝ exp(L_{t-1} + η g_{t-1})`` with ``L_t = L_{t-1} + η g_t``.

    This is :func:`optimistic` applied to :func:`hedge`.
    """
    return optimistic(hedge(eta))._replace(name=f"optimistic_hedge(eta={_describe(eta)})")


# --------------------------------------------------------------------------- extragradient


class ExtragradientState(NamedTuple):
    policy: Any
    rate: Any


def extragradient(eta: float = 1.0, adaptive: bool = True, geometry: str = "euclidean") -> Dynamics:
    """Extragradient (mirror-prox): ``h = P(π + η g(π))``, ``π' = P(π + η g(h))``.

    ``geometry="euclidean"`` projects onto the simplex; ``"entropy"`` uses multiplicative
    steps. With ``adaptive=True`` the rate adapts to the local Lipschitz constant: a step is
    taken only when ``η ||g(h) - g(π)|| <= 0.9 ||h - π||`` (then η grows by 1.2), otherwise η
    shrinks and the step repeats. Regret is charged at the extrapolated point ``h``.
    """
    if geometry not in ("euclidean", "entropy"):
        raise ValueError(f"geometry must be 'euclidean' or 'entropy', got {geometry!r}")

    def move(policy, g, rate):
        if geometry == "euclidean":
            return project_simplex(policy + rate * g)
        logits = jnp.log(jnp.maximum(policy, jnp.finfo(policy.dtype).tiny)) + rate * (g - g.max())
        return jax.nn.softmax(logits)

    def init(policy):
        return ExtragradientState(policy, jnp.asarray(eta, policy.dtype))

    def step(state, payoff_fn, t):
        del t
        g = payoff_fn(state.policy)
        h = move(state.policy, g, state.rate)
        g_h = payoff_fn(h)
        new_policy = move(state.policy, g_h, state.rate)
        if not adaptive:
            return ExtragradientState(new_policy, state.rate), h, g_h
        moved = _norm(h - state.policy)
        changed = _norm(g_h - g)
        accept = state.rate * changed <= 0.9 * moved + jnp.finfo(g.dtype).tiny
        local = 0.9 * moved / jnp.maximum(changed, jnp.finfo(g.dtype).tiny)
        rate = jnp.where(
            accept, jnp.minimum(1.2 * state.rate, 1e4), jnp.minimum(0.5 * state.rate, local)
        )
        policy = jnp.where(accept, new_policy, state.policy)
        return ExtragradientState(policy, rate), h, g_h

    kind = "" if geometry == "euclidean" else f", geometry={geometry!r}"
    fixed = "" if adaptive else ", adaptive=False"
    return Dynamics(init, step, f"extragradient(eta={_describe(eta)}{fixed}{kind})")


class OptimisticGradientState(NamedTuple):
    policy: Any
    last_played: Any
    last_payoffs: Any
    rate: Any


def optimistic_gradient(eta: float = 1.0, growth: float = 1.2) -> Dynamics:
    """Adaptive optimistic gradient (Popov's past extragradient), one oracle call per step.

    ``h_t = P(π_t + η_t g_{t-1})``, ``g_t = g(h_t)``, ``π_{t+1} = P(π_t + η_t g_t)`` with ``P``
    the Euclidean projection onto the simplex; ``η_{t+1} = min(growth·η_t, 1/(2 L_t))`` with
    the local Lipschitz estimate ``L_t = ||g_t − g_{t-1}|| / ||h_t − h_{t-1}||``. The game is
    strongly monotone on the benchmark instances for k >= 2 (benchmarks/RESULTS.md), and there
    this converges in tens of steps.
    """

    def init(policy):
        zeros = jnp.zeros_like(policy)
        return OptimisticGradientState(policy, policy, zeros, jnp.asarray(eta, policy.dtype))

    def step(state, payoff_fn, t):
        played = project_simplex(state.policy + state.rate * state.last_payoffs)
        g = payoff_fn(played)
        policy = project_simplex(state.policy + state.rate * g)
        tiny = jnp.finfo(g.dtype).tiny
        moved = _norm(played - state.last_played)
        changed = _norm(g - state.last_payoffs)
        cap = 0.5 * moved / jnp.maximum(changed, tiny)
        informative = (t > 1) & (changed > 0)  # the first step has no previous point
        rate = jnp.where(informative, jnp.minimum(growth * state.rate, cap), state.rate)
        rate = jnp.clip(rate, 1e-6, 1e4)
        return OptimisticGradientState(policy, played, g, rate), played, g

    name = f"optimistic_gradient(eta={_describe(eta)}, growth={_describe(growth)})"
    return Dynamics(init, step, name)


# --------------------------------------------------------------------------- regret matching+


class RegretMatchingState(NamedTuple):
    policy: Any
    positive_regret: Any


def regret_matching_plus() -> Dynamics:
    """Regret matching+: ``Q ← max(Q + g − <π, g>, 0)``, ``π ∝ Q`` (uniform when ``Q = 0``)."""

    def init(policy):
        return RegretMatchingState(policy, jnp.zeros_like(policy))

    def step(state, payoff_fn, t):
        del t
        g = payoff_fn(state.policy)
        q = jnp.maximum(state.positive_regret + g - dot(state.policy, g), 0.0)
        total = jnp.sum(q)
        uniform = jnp.full_like(q, 1.0 / q.shape[-1])
        policy = jnp.where(total > 0, q / jnp.where(total > 0, total, 1.0), uniform)
        return RegretMatchingState(policy, q), state.policy, g

    return Dynamics(init, step, "regret_matching_plus()")


# --------------------------------------------------------------------------- optax-driven


class LogitState(NamedTuple):
    policy: Any
    logits: Any
    optimizer_state: Any


def logit_gradient(optimizer: optax.GradientTransformation | None = None) -> Dynamics:
    """Gradient ascent on logits ``θ`` (``π = softmax θ``) driven by any optax optimizer.

    The ascent direction is the game gradient with the opponents held fixed,
    ``∇_θ <π, g> = π ⊙ (g − <π, g>)``; default optimizer ``optax.sgd(10.0)``.
    """
    optimizer = optimizer if optimizer is not None else optax.sgd(10.0)

    def init(policy):
        logits = jnp.log(jnp.maximum(policy, jnp.finfo(policy.dtype).tiny))
        with jax.numpy_dtype_promotion("standard"):
            return LogitState(policy, logits, optimizer.init(logits))

    def step(state, payoff_fn, t):
        del t
        g = payoff_fn(state.policy)
        ascent = state.policy * (g - dot(state.policy, g))
        with jax.numpy_dtype_promotion("standard"):  # optax mixes Python ints into its updates
            updates, opt_state = optimizer.update(-ascent, state.optimizer_state, state.logits)
            logits = optax.apply_updates(state.logits, updates)
        logits = logits - jnp.max(logits)
        return LogitState(jax.nn.softmax(logits), logits, opt_state), state.policy, g

    return Dynamics(init, step, "logit_gradient(optax)")


# --------------------------------------------------------------------------- wrappers


class OptimisticState(NamedTuple):
    policy: Any
    inner: Any
    last_payoffs: Any


def optimistic(dynamics: Dynamics) -> Dynamics:
    """Optimism for any dynamic: play the step the last payoffs predict, then step on the truth.

    ``played = step(state, g_{t-1}).policy``; ``g_t = g(played)``; ``state ← step(state, g_t)``
    (for Hedge this is optimistic Hedge; for projected ascent, Popov's past extragradient).
    """

    def init(policy):
        return OptimisticState(policy, dynamics.init(policy), jnp.zeros_like(policy))

    def step(state, payoff_fn, t):
        predicted, _, _ = dynamics.step(state.inner, lambda p: state.last_payoffs, t)
        played = predicted.policy
        g = payoff_fn(played)
        inner, _, _ = dynamics.step(state.inner, lambda p: g, t)
        return OptimisticState(inner.policy, inner, g), played, g

    return Dynamics(init, step, f"optimistic({dynamics.name})")


class AveragedState(NamedTuple):
    policy: Any
    inner: Any


def averaged(dynamics: Dynamics) -> Dynamics:
    """Report the running average ``(1/t) Σ_s π_s`` of the played policies as ``state.policy``.

    (The k-output model with T5's guarantee is the *mixture* of products, which ``solve`` keeps
    in ``Solution.mixture``; this average is the marginal of the uniform mixture of the iterates,
    equal to ``Solution.mixture.marginal()`` when ``steps <= mixture_size``.)
    """

    def init(policy):
        return AveragedState(policy, dynamics.init(policy))

    def step(state, payoff_fn, t):
        inner, played, g = dynamics.step(state.inner, payoff_fn, t)
        weight = 1.0 / jnp.asarray(t).astype(played.dtype)
        return AveragedState(state.policy + weight * (played - state.policy), inner), played, g

    return Dynamics(init, step, f"averaged({dynamics.name})")


def kl_regularised(
    dynamics: Dynamics, tau: float, reference: Float[Array, " n"] | None = None
) -> Dynamics:
    """The same dynamic on the KL-regularised game ``u_k(y, π) − τ log(π(y) / π_ref(y))``.

    ``reference`` defaults to uniform. The step still reports the raw game payoffs, so regret
    and exploitability in a trace are those of the unregularised game.
    """

    def regularise(payoff_fn):
        def regularised(policy):
            ref = jnp.full_like(policy, 1.0 / policy.shape[-1]) if reference is None else reference
            tiny = jnp.finfo(policy.dtype).tiny
            penalty = jnp.log(jnp.maximum(policy, tiny)) - jnp.log(jnp.maximum(ref, tiny))
            return payoff_fn(policy) - tau * penalty.astype(policy.dtype)

        return regularised

    def step(state, payoff_fn, t):
        state, played, _ = dynamics.step(state, regularise(payoff_fn), t)
        return state, played, payoff_fn(played)

    reference_text = "" if reference is None else ", reference"
    name = f"kl_regularised({dynamics.name}, tau={_describe(tau)}{reference_text})"
    return Dynamics(dynamics.init, step, name)


# --------------------------------------------------------------------------- named dynamics


def _logit_default(eta: float) -> Dynamics:
    return logit_gradient(optax.sgd(eta))._replace(name=f"logit_gradient(sgd(eta={eta:g}))")


#: The dynamics ``solve`` knows by name: ``name -> factory(num_responses, steps, eta)`` where
#: ``eta=None`` picks the method's default step size. ``ualign_jax.METHODS`` lists these names.
NAMED: dict[str, Callable[[int, int, float | None], Dynamics]] = {
    "optimistic_gradient": lambda n, steps, eta: optimistic_gradient(1.0 if eta is None else eta),
    "extragradient": lambda n, steps, eta: extragradient(1.0 if eta is None else eta),
    "extragradient_entropy": lambda n, steps, eta: extragradient(
        1.0 if eta is None else eta, geometry="entropy"
    ),
    "hedge": lambda n, steps, eta: hedge(hedge_rate(n, steps) if eta is None else eta),
    "anytime_hedge": lambda n, steps, eta: hedge(anytime_hedge_rate(n) if eta is None else eta),
    "optimistic_hedge": lambda n, steps, eta: optimistic_hedge(2.0 if eta is None else eta),
    "regret_matching_plus": lambda n, steps, eta: regret_matching_plus(),
    "logit_gradient": lambda n, steps, eta: _logit_default(10.0 if eta is None else eta),
}


def named(name: str, num_responses: int, steps: int, eta: float | None = None) -> Dynamics:
    """The dynamic ``solve`` runs for the method ``name`` (one of :data:`NAMED`).

    ``"hedge"`` takes ``η = sqrt(8 ln n / steps)`` (docs/theory.md §4, T5) unless ``eta`` is
    given; ``"regret_matching_plus"`` has no step size and ignores ``eta``.

    Example:
        >>> named("hedge", 4, 100).name
        'hedge(eta=0.333022)'
    """
    if name not in NAMED:
        raise ValueError(f"method {name!r} is unknown; choose from {', '.join(NAMED)}")
    return NAMED[name](num_responses, steps, eta)
