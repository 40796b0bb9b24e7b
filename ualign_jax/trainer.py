"""Training a policy from sampled groups and judge scores, driven by any optax optimiser.

``self_play_trainer(optimizer, k, group_size=G)`` makes a :class:`Trainer`, an ``(init, step)``
pair of pure functions over a :class:`TrainerState` (docs/theory.md §7). Each step takes the
log-probabilities of this step's sampled groups as a function of the parameters, and the judges'
scores of those samples; it turns the scores into unbiased k-sample rewards
(:func:`ualign_jax.sample_rewards`), takes a gradient step on :func:`ualign_jax.self_play_loss`
with the optimiser, and updates an average of the parameters. Parameters are any pytree: a logit
table ``[..., n]`` or a network's weights.

Simultaneous play cycles without help (k = 1 is zero-sum). What settles it here: iterate
averaging of the parameters (``averaging``), a decaying step size (an optax schedule), and KL
regularisation toward a reference (``tau``; the reference may be fixed parameters or the running
average itself, a moving "magnet", docs/theory.md §5).

:func:`train_population` simulates RL training on an enumerated population using only what a
trainer sees (sampled groups from the current policy, a random batch of users as judges) and
measures exploitability exactly every ``eval_every`` steps; ``ualign train`` runs it.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from ._validation import check_choice, check_real
from .metrics import exploitability
from .payoffs import check_population, prepare
from .population import Population
from .training import CHOICES, sample_rewards, self_play_loss

__all__ = [
    "Trainer",
    "TrainerState",
    "TrainingRun",
    "self_play_trainer",
    "table_logprobs",
    "train_population",
]

#: Averaging schemes :func:`self_play_trainer` accepts besides a float EMA decay and ``None``.
AVERAGING = ("polynomial", "uniform")


class TrainerState(NamedTuple):
    """What a :class:`Trainer` carries from step to step.

    ``params``: the current (last) iterate; ``opt_state``: the optimiser's state; ``average``:
    the averaged parameters (the policy to deploy; equal to ``params`` without averaging);
    ``count``: steps taken.
    """

    params: Any
    opt_state: Any
    average: Any
    count: Int[Array, ""]


class Trainer(NamedTuple):
    """``init(params) -> state``; ``step(state, logprob_fn, scores, weights=None)`` and
    ``update(state, loss_fn)``, each returning ``(state, loss)``."""

    init: Callable
    step: Callable
    update: Callable


def _averaging_rate(averaging, count, dtype):
    """Weight of the newest iterate in the running average after ``count`` steps (``>= 1``)."""
    t = count.astype(dtype)
    if averaging is None:
        return jnp.ones((), dtype)
    if averaging == "uniform":
        return 1.0 / t
    if averaging == "polynomial":  # weights ∝ t^3: forgets the transient, keeps a long tail
        return 4.0 / (t + 3.0)
    return jnp.asarray(1.0 - averaging, dtype)


def _check_averaging(averaging) -> None:
    if averaging is None or averaging in AVERAGING:
        return
    if isinstance(averaging, bool) or not isinstance(averaging, int | float):
        raise ValueError(
            "averaging must be None, 'polynomial', 'uniform' or a decay in [0, 1), "
            f"got {averaging!r}"
        )
    if not 0.0 <= averaging < 1.0:
        raise ValueError(f"averaging decay must be in [0, 1), got {averaging}")


def self_play_trainer(
    optimizer: optax.GradientTransformation,
    k: int,
    *,
    group_size: int,
    tau: float = 0.0,
    reference: Any = None,
    averaging: str | float | None = "polynomial",
    normalise: bool = False,
    choice: str = "best",
) -> Trainer:
    """Self-play training from sampled groups: REINFORCE on unbiased k-sample rewards.

    Per step, with ``G`` samples ``y_1..y_G ~ π_θ`` per prompt and judge scores ``s[u, j]``:
    ``r = sample_rewards(s, k)`` (``E[r_i | y_i] = u_k(y_i, π)``), then one optimiser step on
    ``self_play_loss(log π_θ(y), r, k, ref_logprobs, tau)``, whose expected gradient is
    ``−π ⊙ (u − <π, u>)`` for a logit table (docs/theory.md §7), and an averaging step
    ``θ̄_t = (1 − a_t) θ̄_{t−1} + a_t θ_t``.

    Args:
        optimizer: any optax ``GradientTransformation`` (schedules inside it decay the steps).
        k: responses sampled per prompt at deployment, ``1 <= k <= group_size − 1``.
        group_size: samples ``G`` per prompt per step (``scores`` has last axis ``G``).
        tau: KL regularisation ``τ >= 0`` toward the reference (the τ-regularised game, §5).
        reference: parameters of ``π_ref`` (a pytree like ``params``), or ``"average"`` for the
            running average (a moving magnet); required when ``tau > 0``.
        averaging: ``"polynomial"`` (``a_t = 4/(t+3)``, weights ``∝ t^3``), ``"uniform"``
            (``a_t = 1/t``), a float EMA decay ``d`` (``a_t = 1 − d``) or ``None`` (last iterate).
        normalise: GRPO-style group normalisation of the advantages.
        choice: how judges pick, ``"best"`` or ``"plackett_luce"`` (see ``sample_rewards``).

    Returns:
        A :class:`Trainer`. ``step(state, logprob_fn, scores, weights=None)``: ``logprob_fn(params)
        -> [..., G]`` log-probabilities of this step's samples, ``scores [..., U, G]``;
        ``update(state, loss_fn)``: one optimiser step on any scalar ``loss_fn(params)``.

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> trainer = self_play_trainer(optax.sgd(0.5), k=1, group_size=2)
        >>> state = trainer.init(jnp.zeros(2))
        >>> samples = jnp.array([0, 1])                         # two sampled responses
        >>> scores = jnp.array([[1.0, 0.0], [1.0, 0.0]])        # both judges prefer response 0
        >>> logp = lambda theta: table_logprobs(theta, samples)
        >>> state, loss = trainer.step(state, logp, scores)
        >>> bool(state.params[0] > state.params[1])
        True
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2:
        raise ValueError(f"group_size must be an integer >= 2, got {group_size!r}")
    if k >= group_size:
        raise ValueError(f"k must be at most group_size - 1 = {group_size - 1}, got k = {k}")
    tau = check_real(tau, "tau", 0, static=True)
    if tau > 0 and reference is None:
        raise ValueError("reference is required when tau > 0 (parameters or 'average')")
    check_choice(choice, CHOICES, "choice")
    _check_averaging(averaging)

    def init(params) -> TrainerState:
        return TrainerState(
            params=params,
            opt_state=optimizer.init(params),
            average=params,
            count=jnp.zeros((), jnp.int32),
        )

    def update(state: TrainerState, loss_fn: Callable):
        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        # optax mixes Python floats with int32 step counts (Adam's bias correction), which
        # strict dtype promotion refuses: let any optax optimiser run under either setting.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        count = state.count + 1

        def blend(avg, new):
            rate = _averaging_rate(averaging, count, jnp.result_type(new))
            return avg + rate.astype(avg.dtype) * (new - avg)

        average = jax.tree.map(blend, state.average, params)
        return TrainerState(params, opt_state, average, count), loss

    def step(state: TrainerState, logprob_fn: Callable, scores, weights=None):
        if scores.shape[-1] != group_size:
            raise ValueError(
                f"scores must have last axis group_size = {group_size}, got shape {scores.shape}"
            )
        rewards = sample_rewards(scores, k, weights=weights, choice=choice)
        ref_logprobs = None
        if tau > 0:
            anchor = state.average if _is_average(reference) else reference
            ref_logprobs = jax.lax.stop_gradient(logprob_fn(anchor))

        def loss_fn(params):
            logprobs = logprob_fn(params)
            if logprobs.shape != rewards.shape:
                raise ValueError(
                    f"logprob_fn must return shape {rewards.shape} (scores without the judge "
                    f"axis), got {logprobs.shape}"
                )
            return self_play_loss(
                logprobs, rewards, k, ref_logprobs=ref_logprobs, tau=tau, normalise=normalise
            )

        return update(state, loss_fn)

    return Trainer(init, step, update)


def _is_average(reference) -> bool:
    return isinstance(reference, str) and reference == "average"


def table_logprobs(logits: Float[Array, "*batch n"], samples: Int[Array, "*batch G"]):
    """``log softmax(logits)`` at the sampled responses: a logit table's ``logprob_fn``.

    Example:
        >>> table_logprobs(jnp.zeros(2), jnp.array([0, 1, 1])).round(4).tolist()
        [-0.6931, -0.6931, -0.6931]
    """
    logp = jax.nn.log_softmax(logits, axis=-1)
    logp = jnp.broadcast_to(logp, samples.shape[:-1] + logp.shape[-1:])
    return jnp.take_along_axis(logp, samples, axis=-1)


# --------------------------------------------------------------------------- simulated RL training


class TrainingRun(NamedTuple):
    """The result of :func:`train_population`.

    ``policy``: the deployed policy ``softmax(θ̄)`` (averaged parameters); ``last``: the last
    iterate ``softmax(θ_T)``; ``steps``: the steps at which exploitability was measured;
    ``exploitability`` / ``last_exploitability``: ``ε_k`` of ``policy`` / ``last`` there (exact);
    ``num_steps``: steps taken; ``reached``: whether ``ε_k(policy) <= tol`` was met.
    """

    policy: Float[Array, " n"]
    last: Float[Array, " n"]
    steps: np.ndarray
    exploitability: np.ndarray
    last_exploitability: np.ndarray
    num_steps: int
    reached: bool
    seconds: float


def _simulated_step(trainer, table, user_cdf, groups, group_size, judges):
    """One step of simulated RL: sample groups from π_θ, draw judges, score, update."""

    def one(state, key):
        k_samples, k_judges = jax.random.split(key)
        samples = jax.random.categorical(
            k_samples, state.params, shape=(groups, group_size)
        )  # [B, G]
        draws = jax.random.uniform(k_judges, (groups, judges), user_cdf.dtype) * user_cdf[-1]
        users = jnp.minimum(jnp.searchsorted(user_cdf, draws, side="right"), table.shape[0] - 1)
        scores = table[users[:, :, None], samples[:, None, :]]  # [B, U, G]
        return trainer.step(state, lambda theta: table_logprobs(theta, samples), scores)

    return one


#: Default budget of :func:`train_population` and ``ualign train``: at most this many steps,
#: stopping once the exploitability measured exactly is at most ``DEFAULT_TRAIN_TOL``.
DEFAULT_TRAIN_STEPS = 20_000
DEFAULT_TRAIN_TOL = 0.005


def default_optimizer(learning_rate: float = 0.1, decay_steps: int = 1000):
    """:func:`train_population`'s optimiser: Adam with step ``lr / sqrt(1 + t / decay_steps)``.

    ``ualign train --lr`` sets ``learning_rate``.

    Example:
        >>> isinstance(default_optimizer(0.05), optax.GradientTransformation)
        True
    """
    for name, value in (("learning_rate", learning_rate), ("decay_steps", decay_steps)):
        if isinstance(value, bool) or not (
            isinstance(value, numbers.Real) and value > 0 and math.isfinite(value)
        ):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    schedule = lambda t: learning_rate / jnp.sqrt(1.0 + t / decay_steps)  # noqa: E731
    return optax.adam(schedule)


def train_population(
    key,
    pop,
    k: int,
    *,
    optimizer: optax.GradientTransformation | None = None,
    steps: int = DEFAULT_TRAIN_STEPS,
    eval_every: int = 10,
    group_size: int = 16,
    judges: int = 32,
    groups: int = 32,
    tau: float = 0.1,
    reference: Any = "average",
    averaging: str | float | None = "polynomial",
    tol: float | None = DEFAULT_TRAIN_TOL,
    progress: Callable | None = None,
) -> TrainingRun:
    """Simulated RL training on an enumerated population, refereed exactly.

    Each step draws ``groups`` groups of ``group_size`` responses from the current policy
    ``softmax(θ)`` and, per group, ``judges`` users from the population's weights; the judges'
    utilities (log-weights) at the sampled responses are the scores fed to a
    :func:`self_play_trainer` step. The closed form and the whole population are used only to
    measure ``ε_k`` exactly every ``eval_every`` steps (one jitted ``lax.scan`` per interval),
    never for an update. Stops once ``ε_k`` of the averaged policy is at most ``tol``;
    ``steps`` is rounded up to a multiple of ``eval_every``.

    The defaults (Adam with step ``0.1/sqrt(1 + t/1000)``, KL ``τ = 0.1`` toward the running
    average, polynomial averaging, 32 groups of 16 samples with 32 judges each) reached
    ``ε_k <= 0.005`` on every bundled data set for k = 1..8.

    Example:
        >>> import jax, ualign_jax as ua
        >>> pop = ua.RankingPopulation([[2.0, 1.0, 0.0], [2.0, 0.0, 1.0]])
        >>> run = train_population(jax.random.key(0), pop, 1, steps=400, eval_every=200)
        >>> run.reached, run.policy.argmax().item()
        (True, 0)
    """
    if isinstance(key, Population):  # the order before 0.2: train_population(pop, k, key)
        warnings.warn(
            "train_population takes the PRNG key first: train_population(key, pop, k); the "
            "order (pop, k, key) is deprecated and will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        key, pop, k = k, key, pop
    check_population(pop)
    table, choice = pop.judge_scores()
    if pop.batch_shape:
        raise ValueError(f"pop must hold one prompt, got batch shape {pop.batch_shape}")
    for name, value in (
        ("steps", steps),
        ("eval_every", eval_every),
        ("judges", judges),
        ("groups", groups),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    tol = check_real(tol, "tol", 0, low_open=True, none_ok=True)
    if optimizer is None:
        optimizer = default_optimizer()
    trainer = self_play_trainer(
        optimizer,
        k,
        group_size=group_size,
        tau=tau,
        reference=reference,
        averaging=averaging,
        choice=choice,
    )
    pop = prepare(pop)  # the referee's exact checks sort the population once, here
    dtype = pop.dtype
    user_cdf = jnp.cumsum(pop.weights)  # judges drawn by inverse CDF: O(log m) per draw
    one_step = _simulated_step(trainer, table, user_cdf, groups, group_size, judges)

    @jax.jit
    def advance(state, key):  # eval_every steps in one compiled scan
        return jax.lax.scan(one_step, state, jax.random.split(key, eval_every))[0]

    @jax.jit
    def measure(state):  # the referee: ε_k of the averaged and last policies, exactly
        both = jax.nn.softmax(jnp.stack([state.average, state.params]))
        gaps = jax.vmap(lambda policy: exploitability(pop, policy, k))(both)
        return both[0], both[1], gaps[0], gaps[1]

    state = trainer.init(jnp.zeros(pop.num_responses, dtype))
    start = time.perf_counter()
    measured, gaps, last_gaps = [], [], []

    def record(done: int):
        policy, last, gap, last_gap = measure(state)
        measured.append(done)
        gaps.append(float(gap))
        last_gaps.append(float(last_gap))
        return policy, last

    policy, last = record(0)
    reached = tol is not None and gaps[-1] <= tol
    for i, sub in enumerate(jax.random.split(key, -(-steps // eval_every))):
        if reached or not math.isfinite(gaps[-1]):
            break
        state = advance(state, sub)
        policy, last = record((i + 1) * eval_every)
        reached = tol is not None and gaps[-1] <= tol
        if progress is not None:
            progress(f"eps={gaps[-1]:.4f}")
    return TrainingRun(
        policy=policy,
        last=last,
        steps=np.asarray(measured),
        exploitability=np.asarray(gaps),
        last_exploitability=np.asarray(last_gaps),
        num_steps=measured[-1],
        reached=reached,
        seconds=time.perf_counter() - start,
    )
