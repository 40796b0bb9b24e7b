"""Training from sampled responses: unbiased group rewards, the self-play loss, the game gradient.

A trainer never sees the policy ``π`` or the whole population (docs/theory.md §7). Per prompt it
draws ``G`` i.i.d. responses ``y_1..y_G ~ π_θ`` and asks ``U`` judges for scores ``s[u, j]``. The
reward of sample ``i`` is the leave-one-out U-statistic

    r_i = Σ_u w_u · E_S [ pick share of y_i when judge u is offered y_i ⊕ S ]

over the uniformly random k-subsets ``S`` of the other ``G − 1`` samples, averaged exactly.
Because a random k-subset of i.i.d. draws is i.i.d., ``E[r_i | y_i = y] = u_k(y, π)``: the reward
is unbiased for the payoff of the (k+1)-player game, and REINFORCE on it follows the game
gradient ``π ⊙ (u − <π, u>)`` (opponents held fixed).

The group mean of the rewards is exactly ``1/(k+1)`` (each (k+1)-subset of the group hands out a
total share of 1), so the game value used as baseline is also the group-mean baseline.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._linalg import einsum
from ._validation import (
    as_float_array,
    check_choice,
    check_count,
    check_finite,
    check_real,
    check_weights,
    float_dtype,
    is_concrete,
    static_count,
)
from .payoffs import check_population, response_payoffs
from .plackett_luce import PL_QUADRATURE_NODES, log_time_grid

__all__ = ["sample_rewards", "self_play_loss", "game_gradient", "group_rewards"]

#: The judges' choice rules :func:`sample_rewards` knows (docs/theory.md §1).
CHOICES = ("best", "plackett_luce")


# --------------------------------------------------------------------------- best-score judges


def _log_comb(log_factorial, n, r, xp):
    """``log C(n, r)`` from a log-factorial table; ``-inf`` where ``r < 0`` or ``r > n``."""
    valid = (r >= 0) & (r <= n)
    n_, r_ = xp.where(valid, n, 0), xp.where(valid, r, 0)
    value = log_factorial[n_] - log_factorial[r_] - log_factorial[n_ - r_]
    return xp.where(valid, value, -xp.inf)


def _best_share(below, tied, group: int, k: int, log_factorial, xp):
    """``E_S[share] = Σ_{j=0..k} C(t,j) C(b,k−j) / ((j+1) C(G−1,k))`` without its cancellation.

    ``C(t, j)/(j+1) = C(t+1, j+1)/(t+1)`` and Vandermonde's identity give
    ``[C(b+t+1, k+1) − C(b, k+1)] / ((t+1) C(G−1, k))``; the difference is taken as
    ``A · (−expm1(log(B/A)))`` so no digits cancel. ``xp`` is ``numpy`` or ``jax.numpy``.
    """
    total = below + tied + 1
    log_a = _log_comb(log_factorial, total, k + 1, xp) - _log_comb(log_factorial, group - 1, k, xp)
    log_ratio = _log_comb(log_factorial, below, k + 1, xp) - _log_comb(
        log_factorial, total, k + 1, xp
    )
    has_a = xp.isfinite(log_a)
    safe_ratio = xp.where(has_a & xp.isfinite(log_ratio), log_ratio, -xp.inf)
    gain = -xp.expm1(safe_ratio)
    share = xp.where(has_a, xp.exp(xp.where(has_a, log_a, 0.0)) * gain, 0.0)
    return share / (tied + 1).astype(share.dtype)


#: Up to this many samples per group the best-score shares come from a ``[G, G]`` table computed
#: once in exact arithmetic (correctly rounded in every dtype). Larger groups evaluate the closed
#: form with ``lgamma`` in float64 only; float32 is refused there (its error is O(1);
#: benchmarks/RESULTS.md, "Measurements behind constants").
TABLE_MAX_SAMPLES = 1024


@functools.lru_cache(maxsize=64)
def best_share_table(group: int, k: int) -> np.ndarray:
    """``[G, G]`` float64 table of the expected share, indexed ``[below, tied]`` (``b + t <= G−1``).

    Computed in exact integer arithmetic, ``[C(b+t+1, k+1) − C(b, k+1)] / ((t+1) C(G−1, k))``,
    and rounded once (Python's integer division is correctly rounded).

    Example: the unique best of ``G = 4`` samples always wins; a sample with one other sample
    below it and none tied wins a k = 1 duel with probability 1/3.
        >>> t = best_share_table(4, 1)
        >>> float(t[3, 0]), round(float(t[1, 0]), 4)
        (1.0, 0.3333)
    """
    upper = [math.comb(n, k + 1) for n in range(group + 1)]
    opponents = math.comb(group - 1, k)
    table = np.zeros((group, group))
    for below in range(group):
        for tied in range(group - below):
            wins = upper[below + tied + 1] - upper[below]
            table[below, tied] = wins / ((tied + 1) * opponents)
    return table


#: Pairwise rank counts compare each sample with blocks of this many others at a time: XLA stops
#: vectorising one comparison over all G others from G = 64 on CPU, and blocks keep the cost
#: linear (benchmarks/RESULTS.md, "Measurements behind constants").
PAIRWISE_BLOCK = 32


def _rank_counts_pairwise(scores):
    """Per sample, how many others of its judge's group score strictly below it and how many tie:
    every pair compared, O(G²) work per judge; XLA fuses the comparisons into the sums."""
    below = jnp.zeros(scores.shape, jnp.int32)
    tied = jnp.full(scores.shape, -1, jnp.int32)  # the sample itself compares equal
    mine = scores[..., :, None]
    for start in range(0, scores.shape[-1], PAIRWISE_BLOCK):
        theirs = scores[..., None, start : start + PAIRWISE_BLOCK]
        below = below + jnp.sum(theirs < mine, axis=-1, dtype=jnp.int32)
        tied = tied + jnp.sum(theirs == mine, axis=-1, dtype=jnp.int32)
    return below, tied


def _rank_counts_sorted(scores):
    """The same counts from one sort per judge, O(G log G): on the sorted order a tie run starts
    at ``b`` (the count below) and ends at ``b + t``; a second sort puts them back in place."""
    group = scores.shape[-1]
    index = jax.lax.broadcasted_iota(jnp.int32, scores.shape, scores.ndim - 1)
    ranked, order = jax.lax.sort((scores, index), dimension=scores.ndim - 1, num_keys=1)
    differs = ranked[..., 1:] != ranked[..., :-1]
    edge = jnp.ones_like(differs[..., :1])
    starts = jnp.concatenate([edge, differs], axis=-1)
    ends = jnp.concatenate([differs, edge], axis=-1)
    below = jax.lax.cummax(jnp.where(starts, index, 0), axis=scores.ndim - 1)
    last = jax.lax.cummin(jnp.where(ends, index, group - 1), axis=scores.ndim - 1, reverse=True)
    _, below, last = jax.lax.sort((order, below, last), dimension=scores.ndim - 1, num_keys=1)
    return below, last - below


#: Groups up to this size count ranks by comparing every pair, larger ones by sorting (XLA's CPU
#: sort is slower than the pairwise counts up to here; benchmarks/RESULTS.md, "Measurements
#: behind constants").
PAIRWISE_MAX_SAMPLES = 1024


def _best_shares(scores, k: int):
    """``[..., U, G]`` expected shares of each sample for best-score judges."""
    group = scores.shape[-1]
    count = _rank_counts_pairwise if group <= PAIRWISE_MAX_SAMPLES else _rank_counts_sorted
    below, tied = count(scores)
    if group <= TABLE_MAX_SAMPLES:
        table = jnp.asarray(best_share_table(group, k).reshape(-1), scores.dtype)
        return jnp.take(table, below * group + tied, mode="clip")  # indices are in range
    log_factorial = jax.lax.lgamma(jnp.arange(group + 1, dtype=scores.dtype) + 1)
    return _best_share(below, tied, group, k, log_factorial, jnp).astype(scores.dtype)


# --------------------------------------------------------------------------- Plackett–Luce judges

#: Score spreads (in nats) beyond this are clamped for Plackett–Luce judges: a sample that far
#: below its group's best is picked with probability below ``e^-60`` either way, and the clamp
#: keeps the log-time quadrature within the range its node count covers (``populations``).
PL_MAX_SPREAD = 60.0

#: Entries ``(judges x nodes x samples x (k+1))`` held per block by the Plackett–Luce path.
PL_BLOCK_ENTRIES = 2**22


@functools.lru_cache(maxsize=64)
def _split_weights(group: int, k: int) -> np.ndarray:
    """``[G, k+1]``: ``C(i, j) C(G−1−i, k−j) / C(G−1, k)``, the law of how many of a random
    k-subset of the others fall among the ``i`` samples before sample ``i`` (hypergeometric)."""
    out = np.zeros((group, k + 1))
    for i in range(group):
        for j in range(k + 1):
            out[i, j] = math.comb(i, j) * math.comb(group - 1 - i, k - j) / math.comb(group - 1, k)
    return out


def _subset_means(decay, k: int):
    """``a_m[t, j] = e_j(x_1..x_m)(t) / C(m, j)`` for ``m = 0..G−1`` (prefixes), ``[G, N, k+1]``.

    The normalised elementary symmetric polynomials obey a convex recurrence,
    ``a_m[j] = (1 − j/m) a_{m−1}[j] + (j/m) x_m a_{m−1}[j−1]``: every term is nonnegative and
    stays in [0, 1], so nothing cancels or overflows however large ``C(m, j)`` grows.
    """
    dtype = decay.dtype
    nodes = decay.shape[0]
    j = jnp.arange(k + 1, dtype=dtype)
    start = jnp.zeros((nodes, k + 1), dtype).at[:, 0].set(1.0)

    def step(carry, inputs):
        m, x = inputs
        frac = jnp.minimum(j / m, 1.0)
        shifted = jnp.concatenate([jnp.zeros((nodes, 1), dtype), carry[:, :-1]], axis=1)
        new = (1.0 - frac) * carry + frac * x[:, None] * shifted
        return new, carry

    count = jnp.arange(1, decay.shape[1] + 1, dtype=dtype)
    _, prefixes = jax.lax.scan(step, start, (count, decay.T))
    return prefixes


def _pl_shares_one(scores, k: int, nodes: int):
    """``[G]`` expected Plackett–Luce shares for one judge (one row of scores)."""
    group = scores.shape[0]
    clamped = jnp.maximum(scores, jnp.max(scores) - PL_MAX_SPREAD)
    weights = jnp.exp(clamped - jnp.max(clamped))  # max W = 1, as the grid expects
    grid = log_time_grid(weights, k, nodes)
    decay = jnp.exp(-grid.times[:, None] * weights[None, :])  # [N, G]
    before = _subset_means(decay, k)  # [G, N, k+1], samples 0..i-1
    after = _subset_means(decay[:, ::-1], k)[::-1]  # [G, N, k+1], samples i+1..G-1
    split = jnp.asarray(_split_weights(group, k), scores.dtype)  # [G, k+1]
    field = einsum("gj,gnj,gnj->gn", split, before, after[..., ::-1])  # E_S Π_{S} x(t)
    integrand = einsum("n,ng,gn->g", grid.weights, decay, field)
    return weights * integrand


def _pl_shares(scores, k: int):
    """``[..., U, G]`` expected shares for Plackett–Luce judges, in blocks of judges."""
    shape = scores.shape
    flat = scores.reshape(-1, shape[-1])
    nodes = PL_QUADRATURE_NODES
    per_judge = (nodes + 1) * shape[-1] * (k + 1)
    block = int(max(1, min(flat.shape[0], PL_BLOCK_ENTRIES // per_judge)))
    shares = jax.lax.map(lambda row: _pl_shares_one(row, k, nodes), flat, batch_size=block)
    return shares.reshape(shape)


# --------------------------------------------------------------------------- public rewards


@functools.partial(jax.jit, static_argnames=("k", "choice"))
def _sample_rewards(scores, weights, k: int, choice: str):
    shares = _best_shares(scores, k) if choice == "best" else _pl_shares(scores, k)
    weights = weights / jnp.sum(weights, axis=-1, keepdims=True)
    # a product and a sum rather than a contraction: XLA fuses it with the table lookup, and it
    # is exact-precision on every backend
    return jnp.sum(shares * weights[..., None], axis=-2)


def _check_group(scores_shape, k, name: str = "scores") -> int:
    group = scores_shape[-1]
    if group < 2:
        raise ValueError(
            f"{name} must hold at least 2 samples per group (last axis), got {group}: "
            "a reward needs opponents among the other samples"
        )
    k = static_count(k, "k")
    if k > group - 1:
        raise ValueError(
            f"k must be at most G - 1 = {group - 1} (the other samples of a group), got {k}"
        )
    return k


def sample_rewards(
    scores: Float[Array, "*batch U G"],
    k: int,
    *,
    weights: Float[Array, "*weight_batch U"] | None = None,
    choice: str = "best",
) -> Float[Array, "*batch G"]:
    """Unbiased rewards of G sampled responses against k random others (docs/theory.md §7).

    ``r_i = Σ_u w_u E_S[share of i in i ⊕ S]``, ``S`` a uniformly random k-subset of the other
    ``G − 1`` samples, averaged exactly. ``E[r_i | y_i = y] = u_k(y, π)`` when the samples are
    i.i.d. from ``π`` and the judges are the population's users. For ``choice="best"`` (the judge
    picks its top score, ties shared per position), with ``b`` others strictly below and ``t``
    tied, ``E_S[share] = Σ_j C(t,j) C(b,k−j) / ((j+1) C(G−1,k))``; for ``"plackett_luce"``
    (position j picked ∝ ``exp(score_j)``), ``1/z = ∫ e^{−zt} dt`` turns the subset average into
    normalised elementary symmetric polynomials of ``exp(−W_j t)`` over the others, integrated by
    the same log-time quadrature as the Plackett–Luce payoffs.

    Args:
        scores: ``[..., U, G]``: judge ``u``'s score of sample ``j``; leading prompt axes.
            Finite. For ``"plackett_luce"`` they are log-weights (differences beyond 60 nats are
            clamped, which moves a reward by less than ``e^-60``).
        k: opponents per game, a Python int with ``1 <= k <= G − 1``.
        weights: ``[..., U]`` nonnegative judge weights (normalised here); default uniform.
        choice: ``"best"`` or ``"plackett_luce"``.

    Returns:
        ``[..., G]`` rewards in ``[0, 1]``; each group's rewards average exactly ``1/(k+1)``.
        ``"best"``: O(G²) comparisons per judge (a sort beyond ``PAIRWISE_MAX_SAMPLES``), scratch
        O(G) per judge. ``"plackett_luce"``: O(N·G·k) per judge with N = 257 quadrature nodes,
        scratch bounded by blocks of judges.

    Example:
        >>> import jax.numpy as jnp
        >>> scores = jnp.array([[3.0, 2.0, 1.0, 0.0]])   # one judge, four samples
        >>> [round(float(r), 4) for r in sample_rewards(scores, k=1)]
        [1.0, 0.6667, 0.3333, 0.0]
    """
    choice = check_choice(choice, CHOICES, "choice")
    scores = check_finite(as_float_array(scores, "scores", min_ndim=2), "scores")
    k = _check_group(scores.shape, k)
    dtype = scores.dtype
    if choice == "best" and scores.shape[-1] > TABLE_MAX_SAMPLES and dtype != jnp.float64:
        raise ValueError(
            f"scores: groups of more than {TABLE_MAX_SAMPLES} samples need float64 "
            f"(jax_enable_x64) for best-score judges; got {scores.shape[-1]} in {dtype}"
        )
    if weights is None:
        weights = jnp.ones(scores.shape[-2], dtype)
    else:
        weights = as_float_array(weights, "weights")
        judges = scores.shape[:-1]
        try:
            fits = np.broadcast_shapes(weights.shape, judges) == judges
        except ValueError:
            fits = False
        if not fits or weights.shape[-1] != judges[-1]:
            raise ValueError(
                f"weights must have shape [..., U] matching scores {scores.shape[:-1]} "
                f"(U = {judges[-1]} judges), got {weights.shape}"
            )
        weights = check_weights(weights, "weights").astype(dtype)
    return _sample_rewards(scores, weights, k=k, choice=choice)


def group_rewards(
    scores,
    group_ids,
    k: int,
    *,
    weights=None,
    choice: str = "best",
) -> np.ndarray:
    """:func:`sample_rewards` for flat completions grouped by prompt, NumPy in and out.

    A GRPO-style trainer written elsewhere (PyTorch, for instance) hands its reward function a
    flat batch of completions, several per prompt. Give each completion's judge scores and its
    prompt's id; groups may differ in size (each needs more than ``k`` members). Convert torch
    tensors with ``.cpu().numpy()`` and back with ``torch.from_numpy``.

    Args:
        scores: ``[N]`` (one judge) or ``[N, U]``: judge scores of each completion.
        group_ids: ``[N]`` hashable ids (ints or strings), equal for completions of one prompt.
        k: opponents per game (``1 <= k <= smallest group size − 1``).
        weights: ``[U]`` judge weights, default uniform.
        choice: ``"best"`` or ``"plackett_luce"``.

    Returns:
        ``[N]`` rewards in the input order (unbiased for ``u_k``, docs/theory.md §7), a float64
        array, computed in float64 when ``jax_enable_x64`` is on and in float32 otherwise. Each
        group size compiles once; later calls with the same sizes reuse it.

    Example:
        >>> import numpy as np
        >>> scores = np.array([[0.1, 0.9], [0.7, 0.2], [0.5, 0.5], [0.3, 0.0], [0.8, 0.1]])
        >>> prompt = np.array([0, 0, 0, 1, 1])            # 3 completions of prompt 0, 2 of 1
        >>> group_rewards(scores, prompt, k=1).round(4).tolist()
        [0.5, 0.5, 0.5, 0.0, 1.0]
    """
    choice = check_choice(choice, CHOICES, "choice")
    try:
        values = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"scores must be an array of numbers, got {type(scores).__name__}"
        ) from err
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"scores must have shape [N] or [N, U] with N, U >= 1, got {values.shape}")
    ids = np.asarray(group_ids)
    if ids.shape != (values.shape[0],):
        raise ValueError(f"group_ids must have shape [N] = [{values.shape[0]}], got {ids.shape}")
    check_finite(values, "scores")
    judge_weights = None
    if weights is not None:
        judge_weights = np.asarray(weights, dtype=np.float64)
        if judge_weights.shape != (values.shape[1],):
            raise ValueError(
                f"weights must have shape [U] = [{values.shape[1]}], got {judge_weights.shape}"
            )
        check_weights(judge_weights, "weights")
    _, inverse = np.unique(ids, return_inverse=True)
    inverse = inverse.reshape(-1)
    sizes = np.bincount(inverse)
    if sizes.min() < 2:
        raise ValueError("group_ids must give every group at least 2 completions")
    k = static_count(k, "k")
    if k > sizes.min() - 1:
        raise ValueError(
            f"k must be at most the smallest group size - 1 = {sizes.min() - 1}, got {k}"
        )
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    out = np.empty(values.shape[0], np.float64)
    order = np.argsort(inverse, kind="stable")  # completions grouped, input order within groups
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for size in np.unique(sizes):
        groups = np.flatnonzero(sizes == size)
        members = order[starts[groups][:, None] + np.arange(size)[None, :]]  # [groups, size]
        batch = jnp.asarray(np.swapaxes(values[members], 1, 2), dtype)  # [groups, U, size]
        w = None if judge_weights is None else jnp.asarray(judge_weights, dtype)
        rewards = sample_rewards(batch, k, weights=w, choice=choice)
        out[members] = np.asarray(rewards, np.float64)
    return out


# --------------------------------------------------------------------------- loss and gradient


def self_play_loss(
    logprobs: Float[Array, "*batch G"],
    rewards: Float[Array, "*batch G"],
    k: int,
    *,
    ref_logprobs: Float[Array, "*batch G"] | None = None,
    tau: float = 0.0,
    normalise: bool = False,
) -> Float[Array, ""]:
    """REINFORCE surrogate for the (k+1)-player game: minimise it (docs/theory.md §7, §5).

    ``loss = −mean_i sg(A_i) · logprobs_i`` over prompts and samples, with advantage
    ``A_i = r_i − 1/(k+1) − τ (logprobs_i − ref_logprobs_i)`` (``sg``: stop-gradient). The game
    value ``1/(k+1)`` is a constant baseline (and the group mean of :func:`sample_rewards`), so
    with ``τ = 0`` and no normalisation ``E[∇ loss] = −π ⊙ (u − <π, u>)``, minus
    :func:`game_gradient`, exactly. The KL term is the score-function estimator of the
    τ-regularised payoff ``<π_θ, u> − τ KL(π_θ ‖ π_ref)``: since
    ``∇ KL = E_{y~π_θ}[∇ log π_θ(y) · log(π_θ(y)/π_ref(y))]``, the expected gradient is
    ``−(π ⊙ (u − <π,u>) − τ ∇_θ KL)``, unbiased. ``normalise=True`` divides ``r − 1/(k+1)`` by
    the group's standard deviation (GRPO); this rescales each prompt's gradient, so it is no
    longer unbiased for the game gradient.

    Args:
        logprobs: ``[..., G]`` ``log π_θ(y_i)`` of the samples (differentiable).
        rewards: ``[..., G]`` rewards, e.g. from :func:`sample_rewards` (treated as constants).
        k: opponents per game, an int >= 1 (sets the baseline ``1/(k+1)``).
        ref_logprobs: ``[..., G]`` ``log π_ref(y_i)``; required when ``tau > 0``.
        tau: KL-regularisation strength ``τ >= 0``.
        normalise: divide advantages by the per-group standard deviation of the rewards.

    Returns:
        A scalar.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> logits = jnp.zeros(3)
        >>> samples = jnp.array([0, 1, 2, 0])
        >>> rewards = sample_rewards(jnp.array([[2.0, 1.0, 0.0, 2.0]]), k=1)
        >>> loss = lambda th: self_play_loss(jax.nn.log_softmax(th)[samples], rewards, k=1)
        >>> jax.grad(loss)(logits).shape
        (3,)
    """
    logprobs = as_float_array(logprobs, "logprobs")
    rewards = as_float_array(rewards, "rewards")
    if rewards.shape != logprobs.shape:
        raise ValueError(
            f"rewards must have the shape of logprobs {logprobs.shape}, got {rewards.shape}"
        )
    k = check_count(k, "k")
    logprobs = check_finite(logprobs, "logprobs")
    rewards = check_finite(rewards, "rewards")
    dtype = jnp.promote_types(logprobs.dtype, rewards.dtype)
    tau = check_real(tau, "tau", 0)
    if ref_logprobs is None and (not is_concrete(tau) or tau != 0):
        raise ValueError("ref_logprobs is required when tau > 0 (the KL term needs π_ref)")
    if ref_logprobs is not None:
        ref_logprobs = as_float_array(ref_logprobs, "ref_logprobs")
        if ref_logprobs.shape != logprobs.shape:
            raise ValueError(
                f"ref_logprobs must have the shape of logprobs {logprobs.shape}, "
                f"got {ref_logprobs.shape}"
            )
    advantage = rewards.astype(dtype) - 1.0 / (k + 1)
    if normalise:
        spread = jnp.std(rewards.astype(dtype), axis=-1, keepdims=True)
        advantage = advantage / (spread + jnp.finfo(dtype).eps)
    if ref_logprobs is not None:
        log_ratio = logprobs.astype(dtype) - ref_logprobs.astype(dtype)
        advantage = advantage - jnp.asarray(tau, dtype) * log_ratio
    advantage = jax.lax.stop_gradient(advantage)
    return -jnp.mean(advantage * logprobs.astype(dtype))


def game_gradient(
    pop, logits: Float[Array, "*logit_batch n"], k: int
) -> Float[Array, "*prompts n"]:
    """Exact ``∇_θ <π_θ, u_k(·, π)>`` with the opponents held at ``π = softmax(θ)``.

    ``g = π ⊙ (u − <π, u>)`` with ``u = u_k(·, π)`` (docs/theory.md §7). Differentiating
    ``<π, u_k(·, π)> ≡ 1/(k+1)`` through the opponents too would give zero: each player's own
    gradient holds the others fixed. :func:`self_play_loss` estimates ``−g`` from samples.

    Args:
        pop: a ranking, Plackett–Luce or dense population ``[..., m, n]``.
        logits: ``[..., n]`` softmax logits (prompt axes matching the population's, or none).
        k: opponents, an int >= 1.

    Returns:
        ``[..., n]``, summing to 0 over responses.

    Example:
        >>> import jax.numpy as jnp, ualign_jax as ua
        >>> pop = ua.RankingPopulation(jnp.array([[2.0, 1.0, 0.0]]))
        >>> g = game_gradient(pop, jnp.zeros(3), k=1)   # u = (5/6, 1/2, 1/6), <π, u> = 1/2
        >>> round(float(g[0]), 4), round(float(g[2]), 4)
        (0.1111, -0.1111)
    """
    check_population(pop)
    logits = check_finite(as_float_array(logits, "logits"), "logits")
    if logits.shape[-1] != pop.num_responses:
        raise ValueError(
            f"logits must have {pop.num_responses} entries on its last axis (one per response), "
            f"got shape {logits.shape}"
        )
    dtype = float_dtype(logits)
    policy = jax.nn.softmax(logits.astype(dtype), axis=-1)
    u = jax.lax.stop_gradient(response_payoffs(pop, jax.lax.stop_gradient(policy), k))
    u = u.astype(dtype)
    value = jnp.sum(policy * u, axis=-1, keepdims=True)
    return policy * (u - value)
