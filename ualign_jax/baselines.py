"""Baselines users compare against (docs/theory.md §5): NLHF, Nash-MD, RLHF, the reference policy.

* NLHF is the k = 1 game: its equilibrium is the maximal lottery of the pairwise matrix
  ``P[y, y'] = WR(δ_y, δ_y')``, computed here by self-play and polished on its support in float64
  until its duality gap ``max_y (P p)_y − 1/2`` is certified below ``1e-9``.
* Nash-MD: the equilibrium of the KL-regularised k = 1 game (regularisation ``τ``).
* RLHF: Bradley–Terry scores fitted to ``P``, policy ``∝ π_ref · exp(r / β)``.
* The reference (uniform) policy; "best-of-k from the reference" is the reference sampled k times,
  i.e. pass it as the policy with that ``k`` to any metric.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike
from jaxtyping import Array, Float

from ._validation import check_real, check_simplex, static_count
from .payoffs import check_population, prepare, win_tensor
from .policies import uniform_policy
from .populations import Population
from .solver import solve

__all__ = [
    "pairwise_matrix",
    "float64_pairwise_matrix",
    "maximal_lottery",
    "MaximalLottery",
    "certified_gap",
    "nlhf",
    "nash_md",
    "bradley_terry_scores",
    "rlhf",
    "reference_policy",
]

#: Duality gap below which a float64 maximal lottery counts as certified (see
#: :func:`certified_gap` for other dtypes).
CERTIFIED_GAP = 1e-9


def certified_gap(dtype: DTypeLike) -> float:
    """The duality gap certified for a pairwise matrix of ``dtype`` (docs/theory.md §8).

    ``max(1e-9, 32 ε)`` with ``ε`` the dtype's machine epsilon: 1e-9 in float64, 3.8e-6 in
    float32, where rounding alone leaves ``P + Pᵀ`` off 1 by up to ``ε`` per entry.

    Example:
        >>> certified_gap(np.float64), round(certified_gap(np.float32), 7)
        (1e-09, 3.8e-06)
    """
    return max(CERTIFIED_GAP, 32 * float(np.finfo(dtype).eps))


def _host_array(x, name: str, ndim: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``x`` as a finite, nonempty float64 NumPy array with ``ndim`` axes (and ``shape`` when
    given), else ``ValueError``."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__}") from err
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim or arr.size == 0:
        raise ValueError(f"{name} must be a nonempty {ndim}-D array, got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, found NaN or inf")
    return arr


def _square_matrix(pairwise, name: str = "pairwise") -> np.ndarray:
    """``pairwise`` as a finite float64 ``[n, n]`` array, else ``ValueError``."""
    matrix = _host_array(pairwise, name, 2)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be a square [n, n] matrix, got shape {matrix.shape}")
    return matrix


def pairwise_matrix(pop: Population) -> Float[Array, "*batch n n"]:
    """``P[..., y, y'] = WR(δ_y, δ_y')``: the probability a user prefers ``y`` to ``y'`` (ties 1/2).

    This is the two-player win tensor, so prompt axes carry through.

    Example:
        >>> from ualign_jax import RankingPopulation
        >>> pairwise_matrix(RankingPopulation(jnp.array([[1.0, 0.0]]))).tolist()
        [[0.5, 1.0], [0.0, 0.5]]
    """
    return win_tensor(pop, 2)


def _float64_context():
    """A context in which JAX computes in float64 (``jax_enable_x64`` on, for this thread)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # jax < 0.8

    return enable_x64(True)


def float64_pairwise_matrix(pop: Population) -> np.ndarray:
    """:func:`pairwise_matrix` computed in float64 on the host, whatever ``pop``'s dtype.

    ``pop``'s floating leaves are widened to float64 (exactly: every float32 number is a float64
    number, so the game is the same) and ``P`` is built with ``jax_enable_x64`` on for this call
    only. In float32 a win tensor summed over thousands of users can be off by more than the
    float32 certificate (docs/theory.md §8): on PrefLib's 00008-00000006 (2103 user types)
    ``P[y, y]`` came out as ``0.5000085``. Not jit-able (it returns a NumPy array).

    Example:
        >>> from ualign_jax import RankingPopulation
        >>> float64_pairwise_matrix(RankingPopulation(jnp.array([[1.0, 0.0]]))).dtype
        dtype('float64')
    """
    check_population(pop)
    if pop.dtype == jnp.float64:
        return np.asarray(pairwise_matrix(pop), np.float64)
    with _float64_context():
        wide = jax.tree.map(_widened, pop)
        return np.asarray(pairwise_matrix(wide), np.float64)


def _widened(leaf):
    """A floating leaf as float64 (exact), any other leaf unchanged."""
    array = jnp.asarray(leaf)
    return array.astype(jnp.float64) if jnp.issubdtype(array.dtype, jnp.floating) else leaf


class MaximalLottery(NamedTuple):
    """``policy`` with ``max_y ((P − 1/2) p)_y <= gap``; ``gap`` is its duality gap."""

    policy: np.ndarray
    gap: float


def _support_solve(skew: np.ndarray, start: np.ndarray) -> list[np.ndarray]:
    """Candidates solving ``skew[S, S] p_S = 0, Σ p_S = 1`` on supports ``S`` read off ``start``
    at shrinking thresholds (exact when ``start`` is near a maximal lottery)."""
    n = skew.shape[0]
    candidates = [start]
    for threshold in (1e-2, 1e-3, 1e-4, 1e-6, 1e-8, 1e-10):
        support = np.flatnonzero(start > threshold)
        if support.size == 0:
            continue
        system = np.vstack([skew[np.ix_(support, support)], np.ones((1, support.size))])
        rhs = np.concatenate([np.zeros(support.size), [1.0]])
        solution, *_ = np.linalg.lstsq(system, rhs, rcond=None)
        if solution.min() < -1e-12:
            continue
        candidate = np.zeros(n)
        candidate[support] = np.maximum(solution, 0.0)
        candidates.append(candidate / candidate.sum())
    return candidates


def _simplex_lottery(skew: np.ndarray) -> np.ndarray:
    """A maximal lottery by the simplex method (phase one, Bland's rule): a ``p >= 0`` with
    ``Σ p = 1`` and ``skew p + q = 0`` for slacks ``q >= 0``. It exists (minimax theorem, the
    value of a skew-symmetric game is 0) and Bland's rule cannot cycle, so this always ends."""
    n = skew.shape[0]
    rows = np.hstack([skew, np.eye(n)])
    rows = np.vstack([rows, np.concatenate([np.ones(n), np.zeros(n)])])
    tableau = np.hstack([rows, np.eye(n + 1), np.zeros((n + 1, 1))])
    tableau[-1, -1] = 1.0
    basis = list(range(2 * n, 3 * n + 1))  # the artificial variables
    cost = np.concatenate([np.zeros(2 * n), np.ones(n + 1), [0.0]])
    for _ in range(100 * (3 * n + 1)):
        reduced = cost - cost[basis] @ tableau
        entering = next((j for j in range(3 * n + 1) if reduced[j] < -1e-12), None)
        if entering is None:
            break
        column = tableau[:, entering]
        ratios = [
            (max(tableau[i, -1], 0.0) / column[i], basis[i], i)
            for i in range(n + 1)
            if column[i] > 1e-9  # pivots this small are rounding noise
        ]
        _, _, row = min(ratios)
        tableau[row] /= tableau[row, entering]
        for i in range(n + 1):
            if i != row:
                tableau[i] -= tableau[i, entering] * tableau[row]
        basis[row] = entering
    values = np.zeros(3 * n + 1)
    values[basis] = tableau[:, -1]
    policy = np.maximum(values[:n], 0.0)
    total = policy.sum()
    return policy / total if np.isfinite(total) and total > 0 else np.full(n, 1.0 / n)


def maximal_lottery(pairwise: ArrayLike, approximate: ArrayLike | None = None) -> MaximalLottery:
    """The maximal lottery of a pairwise matrix (float64, host side), with its duality gap.

    The matrix is made exactly constant-sum first, ``M = (P − Pᵀ)/2`` (float rounding leaves
    ``P + Pᵀ`` off 1 by an ulp, which would shift the game's value off 0). From an approximate
    equilibrium it solves ``M[S, S] p_S = 0, Σ p_S = 1`` on the supports ``S`` the approximate
    suggests; without one, or when those do not certify, it runs the simplex method (exact up to
    rounding). ``gap = max_y ((P − 1/2) p)_y`` is measured on the matrix as given.

    Example:
        >>> rps = np.array([[0.5, 1.0, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.5]])
        >>> result = maximal_lottery(rps)
        >>> result.policy.round(6).tolist(), result.gap <= 1e-12
        ([0.333333, 0.333333, 0.333333], True)
    """
    matrix = _square_matrix(pairwise)
    given = matrix - 0.5
    skew = (matrix - matrix.T) / 2
    n = matrix.shape[0]
    candidates = []
    if approximate is not None:
        candidates = _support_solve(skew, _host_array(approximate, "approximate", 1, (n,)))
    if not candidates or min(float(np.max(skew @ c)) for c in candidates) > CERTIFIED_GAP:
        exact = _simplex_lottery(skew)
        candidates += [exact, *_support_solve(skew, exact)]
    best = min(candidates, key=lambda c: float(np.max(skew @ c)))
    gap = float(np.max(given @ best))
    return MaximalLottery(best, max(gap, 0.0))


def nlhf(pop: Population, steps: int = 2000) -> Float[Array, "*batch n"]:
    """The NLHF policy: the maximal lottery, the k = 1 equilibrium, with a certified gap.

    The duality gap ``max_y (P p)_y − 1/2`` of the returned policy (rounded to ``pop``'s dtype)
    is certified below :func:`certified_gap` of that dtype (1e-9 in float64, 3.8e-6 in float32)
    against ``P`` computed in float64 (:func:`float64_pairwise_matrix`), so the certificate is
    about the population's game, not about the rounding of a float32 ``P``. ``steps`` bounds the
    self-play run that suggests the support; the simplex method finishes the job when the
    suggestion falls short, so valid input never fails to certify.

    Example:
        >>> from ualign_jax import condorcet_instance
        >>> nlhf(condorcet_instance(3, 0.1)).tolist()
        [1.0, 0.0, 0.0]
    """
    check_population(pop)
    steps = static_count(steps, "steps")
    pop = prepare(pop)  # sorted once for every prompt and both calls below
    if pop.batch_shape:
        flat = _unbatch(pop)
        return jnp.stack([nlhf(p, steps) for p in flat]).reshape(*pop.batch_shape, -1)
    tol = certified_gap(pop.dtype)
    approximate = solve(pop, 1, steps=steps, tol=tol / 10).policy
    pairwise = float64_pairwise_matrix(pop)
    if not np.all(np.isfinite(pairwise)):
        raise ValueError("nlhf: pop's pairwise win matrix has NaN or inf entries")
    result = maximal_lottery(pairwise, approximate)
    policy = jnp.asarray(result.policy, dtype=pop.dtype)
    # Certify what is returned: the policy after rounding to pop's dtype, on the float64 matrix.
    gap = float(np.max((pairwise - 0.5) @ np.asarray(policy, np.float64)))
    if not gap <= tol:  # unreachable for a valid population: a bug if it happens
        raise RuntimeError(f"nlhf: the maximal lottery's duality gap reached {gap:.2e} > {tol:.1e}")
    return policy


def _unbatch(pop):
    size = int(np.prod(pop.batch_shape))
    leaves, treedef = jax.tree.flatten(pop)
    flat = [leaf.reshape(size, *leaf.shape[len(pop.batch_shape) :]) for leaf in leaves]
    return [jax.tree.unflatten(treedef, [leaf[i] for leaf in flat]) for i in range(size)]


def nash_md(pop: Population, tau: float, steps: int = 2000) -> Float[Array, "*batch n"]:
    """Nash-MD's target: the equilibrium of the k = 1 game regularised by ``τ·KL(π, uniform)``.

    ``τ → 0`` recovers NLHF; large ``τ`` stays at the uniform reference.
    """
    tau = check_real(tau, "tau", 0, low_open=True)
    return solve(pop, 1, method="extragradient_entropy", steps=steps, tau=tau, eta=0.5).policy


def bradley_terry_scores(
    pairwise: ArrayLike, ridge: float = 1e-6, iterations: int = 100
) -> np.ndarray:
    """Bradley–Terry scores ``r`` maximising ``Σ P[y,y'] log σ(r_y − r_y') − ridge·|r|²/2``.

    Newton's method in float64 on the host; scores are centred (``Σ r = 0``). The small ridge
    keeps them finite when one response beats another unanimously.

    Example:
        >>> r = bradley_terry_scores(np.array([[0.5, 0.75], [0.25, 0.5]]))
        >>> round(float(r[0] - r[1]), 4)   # log(0.75 / 0.25)
        1.0986
    """
    p = _square_matrix(pairwise)
    n = p.shape[0]
    off = 1.0 - np.eye(n)
    r = np.zeros(n)
    for _ in range(iterations):
        diff = r[:, None] - r[None, :]
        s = 1.0 / (1.0 + np.exp(-diff))
        grad = np.sum(off * (p - (p + p.T) * s), axis=1) - ridge * r
        curvature = off * (p + p.T) * s * (1 - s)
        hessian = curvature - np.diag(curvature.sum(axis=1)) - ridge * np.eye(n)
        step = np.linalg.solve(hessian - 1e-12 * np.eye(n), -grad)
        r = r + step
        if np.max(np.abs(step)) < 1e-12:
            break
    return r - r.mean()


def rlhf(
    pop: Population, beta: float = 1.0, reference: ArrayLike | None = None
) -> Float[Array, "*batch n"]:
    """RLHF: Bradley–Terry scores fitted to the pairwise matrix, ``π ∝ π_ref · exp(r / β)``.

    ``β → 0`` is the argmax of the scores (the majority favourite).
    """
    check_population(pop)
    beta = check_real(beta, "beta", 0, math.inf, low_open=True)
    n = pop.num_responses
    dtype = pop.dtype
    if reference is None:
        reference = np.full(n, 1.0 / n)
    else:
        reference = _host_array(reference, "reference", 1, (n,))
        check_simplex(reference, "reference")
    pairwise = float64_pairwise_matrix(pop)
    if not np.all(np.isfinite(pairwise)):
        raise ValueError("rlhf: pop's pairwise win matrix has NaN or inf entries")
    if pairwise.ndim > 2:
        return (
            jnp.stack([rlhf_from_pairwise(m, beta, reference) for m in pairwise.reshape(-1, n, n)])
            .reshape(*pop.batch_shape, n)
            .astype(dtype)
        )
    return jnp.asarray(rlhf_from_pairwise(pairwise, beta, reference), dtype)


def rlhf_from_pairwise(pairwise: ArrayLike, beta: float, reference: ArrayLike) -> np.ndarray:
    """``π ∝ π_ref · exp(r / β)`` with Bradley–Terry scores ``r`` of ``pairwise``."""
    with np.errstate(over="ignore"):
        scores = bradley_terry_scores(pairwise) / beta
    logits = np.log(np.maximum(np.asarray(reference, np.float64), 1e-300)) + scores
    if np.isinf(logits.max()):  # β so small that r / β overflows: the argmax limit
        logits = np.where(logits == logits.max(), 0.0, -np.inf)
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def reference_policy(pop: Population) -> Float[Array, " n"]:
    """Deprecated alias: ``ua.uniform_policy(pop.num_responses, pop.dtype)``, the uniform
    reference policy in the population's dtype (it warns; one name per concept)."""
    warnings.warn(
        "reference_policy(pop) is deprecated: use ua.uniform_policy(pop.num_responses, pop.dtype)",
        DeprecationWarning,
        stacklevel=2,
    )
    check_population(pop)
    return uniform_policy(pop.num_responses, pop.dtype)
