"""Synthetic populations (docs/theory.md §6): impartial culture, Mallows and Plackett–Luce
mixtures, the Condorcet-winner instance of docs/theory.md §4 (T3), and the instance on which
the ℓ-output guarantee of docs/theory.md §4 (T4) is tight.

Every generator is a pure function returning a population. Rankings are encoded as utilities:
the response in position ``p`` (0 = best) of a user's ranking gets utility ``n - p``, so each row
of a generated :class:`RankingPopulation` is a permutation of ``1..n``. Randomness comes from an
explicit JAX PRNG key, always the first argument (the package's convention); the float dtype
defaults to jnp's default float (float32 unless x64).
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from ._validation import check_real, float_dtype_arg, static_count
from .populations import PlackettLucePopulation, RankingPopulation

__all__ = [
    "condorcet_instance",
    "ell_tight_instance",
    "impartial_culture",
    "sampled_impartial_culture",
    "mallows_mixture",
    "plackett_luce_mixture",
]

#: Largest ``n`` for which :func:`impartial_culture` enumerates all ``n!`` rankings.
MAX_EXACT_RESPONSES = 8


def _check_key(key, name="key"):
    if key is None:
        raise ValueError(f"{name} is required: pass a PRNG key, e.g. jax.random.key(0)")
    return key


def impartial_culture(num_responses: int, *, dtype: DTypeLike | None = None) -> RankingPopulation:
    """Impartial culture, exactly: all ``n!`` rankings with equal weight (docs/theory.md §6, T2).

    Args:
        num_responses: ``n``, from 1 to 8 (``n!`` rows; sample larger ones with
            :func:`sampled_impartial_culture`).
        dtype: float dtype of the utilities.

    Returns:
        A :class:`RankingPopulation` with utilities ``[n!, n]``, each row a permutation of
        ``1..n``.

    Example:
        >>> impartial_culture(3).utilities.shape
        (6, 3)
    """
    n = static_count(num_responses, "num_responses")
    dtype = float_dtype_arg(dtype)
    if n > MAX_EXACT_RESPONSES:
        raise ValueError(
            f"impartial_culture enumerates all n! rankings only for num_responses <= "
            f"{MAX_EXACT_RESPONSES} (got {n}, i.e. {math.factorial(n)} rankings); use "
            "sampled_impartial_culture(key, num_responses, num_users) to sample users instead"
        )
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
    return RankingPopulation(jnp.asarray(n - perms, dtype=dtype))


def sampled_impartial_culture(
    key: PRNGKeyArray, num_responses: int, num_users: int, *, dtype: DTypeLike | None = None
) -> RankingPopulation:
    """Impartial culture, sampled: ``num_users`` independent uniformly random rankings.

    Args:
        key: PRNG key.
        num_responses: ``n >= 1``.
        num_users: the number of sampled users ``m >= 1``.
        dtype: float dtype of the utilities.

    Returns:
        A :class:`RankingPopulation` with utilities ``[m, n]``, each row a permutation of
        ``1..n``.

    Example:
        >>> sampled_impartial_culture(jax.random.key(0), 50, 1000).num_users
        1000
    """
    key = _check_key(key)
    n = static_count(num_responses, "num_responses")
    m = static_count(num_users, "num_users")
    return RankingPopulation(_sampled_culture(key, n, m, float_dtype_arg(dtype)))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _sampled_culture(key, n, m, dtype):
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, m))
    return (n - perms).astype(dtype)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 5))
def _mallows_utilities(key, n, m, c, log_phi, dtype):
    k_centre, k_comp, k_ins = jax.random.split(key, 3)
    centres = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(k_centre, c))
    comp = jax.random.randint(k_comp, (m,), 0, c)
    # Repeated insertion: step i puts the centre's i-th item at position j in 0..i (0 = top),
    # with probability proportional to phi^(i - j) (i - j new inversions w.r.t. the centre).
    i = jnp.arange(n)[:, None]
    j = jnp.arange(n)[None, :]
    logits = jnp.where(j <= i, (i - j).astype(log_phi.dtype) * log_phi, -jnp.inf)
    insert_at = jax.random.categorical(k_ins, logits, shape=(m, n))  # [m, n]
    slots = jnp.arange(n)

    def insert(order, step):
        item, at = step  # scalar, [m]
        at = at[:, None]
        shifted = jnp.concatenate([order[:, :1], order[:, :-1]], axis=1)
        order = jnp.where(slots < at, order, jnp.where(slots == at, item, shifted))
        return order, None

    order0 = jnp.zeros((m, n), dtype=jnp.int32)
    order, _ = jax.lax.scan(insert, order0, (slots.astype(jnp.int32), insert_at.T))
    items = jnp.take_along_axis(centres[comp], order, axis=1)  # item at each position, best first
    rows = jnp.arange(m)[:, None]
    return jnp.zeros((m, n), dtype).at[rows, items].set((n - slots).astype(dtype))


def mallows_mixture(
    key: PRNGKeyArray,
    num_responses: int,
    num_users: int,
    num_components: int = 1,
    dispersion: float | Float[Array, ""] = 0.5,
    *,
    dtype: DTypeLike | None = None,
) -> RankingPopulation:
    """Users sampled from a uniform mixture of Mallows models with random centres.

    ``P(ranking | centre) ∝ phi^{d_K(ranking, centre)}`` (Kendall tau distance), drawn by the
    repeated insertion model: the centre's ``i``-th item goes to position ``j <= i`` (0 = top)
    with probability ``∝ phi^(i - j)``. ``phi = 1`` is impartial culture; ``phi → 0`` every user
    copies its centre. Centres are uniformly random permutations; each user picks one uniformly.

    Args:
        key: PRNG key.
        num_responses: ``n >= 1``.
        num_users: number of sampled users ``m >= 1``.
        num_components: number of centres ``>= 1``.
        dispersion: ``phi`` in ``(0, 1]`` (may be a traced scalar; then it is not range-checked).
        dtype: float dtype of the utilities.

    Returns:
        A :class:`RankingPopulation` with utilities ``[m, n]`` (rows are permutations of
        ``1..n``) and uniform weights.

    Example:
        >>> pop = mallows_mixture(jax.random.key(0), 5, 100, num_components=2, dispersion=0.3)
        >>> pop.utilities.shape
        (100, 5)
    """
    key = _check_key(key)
    n = static_count(num_responses, "num_responses")
    m = static_count(num_users, "num_users")
    c = static_count(num_components, "num_components")
    dtype = float_dtype_arg(dtype)
    check_real(dispersion, "dispersion", 0.0, 1.0, low_open=True)
    log_phi = jnp.log(jnp.asarray(dispersion, dtype=dtype))
    return RankingPopulation(_mallows_utilities(key, n, m, c, log_phi, dtype))


def plackett_luce_mixture(
    key: PRNGKeyArray,
    num_responses: int,
    num_components: int,
    scale: float | Float[Array, ""] = 1.0,
    *,
    dtype: DTypeLike | None = None,
) -> PlackettLucePopulation:
    """A mixture of Plackett–Luce user types with Gaussian log-weights.

    ``s_t ~ N(0, scale^2 I_n)`` for each type ``t``; type weights ``~ Dirichlet(1, ..., 1)``.

    Args:
        key: PRNG key.
        num_responses: ``n >= 1``.
        num_components: number of user types ``>= 1``.
        scale: standard deviation of the log-weights, ``>= 0`` (0 = every pick uniform).
        dtype: float dtype.

    Returns:
        A :class:`PlackettLucePopulation` with log-weights ``[num_components, n]``.

    Example:
        >>> pop = plackett_luce_mixture(jax.random.key(0), 4, 3, scale=2.0)
        >>> pop.log_weights.shape, pop.weights.shape
        ((3, 4), (3,))
    """
    key = _check_key(key)
    n = static_count(num_responses, "num_responses")
    c = static_count(num_components, "num_components")
    dtype = float_dtype_arg(dtype)
    check_real(scale, "scale", 0)
    k_s, k_w = jax.random.split(key)
    log_weights = jnp.asarray(scale, dtype) * jax.random.normal(k_s, (c, n), dtype)
    gaps = jax.random.exponential(k_w, (c,), dtype)  # Dirichlet(1) = normalised Exp(1) draws
    weights = gaps / jnp.sum(gaps)
    return PlackettLucePopulation(log_weights, weights)


def condorcet_instance(
    num_responses: int, delta: float, *, dtype: DTypeLike | None = None
) -> RankingPopulation:
    """Response 0 beats every other response with probability exactly ``1/2 + delta`` (T3).

    The instance of docs/theory.md §4, T3.

    One type of weight ``1/2 + delta`` ranks ``0, 1, ..., n-1``; the other ``n - 1`` types, of
    weight ``(1/2 - delta) / (n - 1)`` each, rank 0 last and ``1..n-1`` in the ``n - 1`` cyclic
    rotations of ``(1, ..., n-1)``. So ``P(0 ≻ y) = 1/2 + delta`` for all ``y ≠ 0`` and no other
    response is a Condorcet winner (each loses to 0).

    Args:
        num_responses: ``n >= 2``.
        delta: margin in ``(0, 1/2]``.
        dtype: float dtype.

    Returns:
        A :class:`RankingPopulation` with ``n`` user types (utilities ``[n, n]``).

    Example:
        >>> pop = condorcet_instance(3, 0.1)
        >>> pop.utilities.tolist(), [round(float(w), 4) for w in pop.weights]
        ([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0]], [0.6, 0.2, 0.2])
    """
    n = static_count(num_responses, "num_responses", minimum=2)
    dtype = float_dtype_arg(dtype)
    delta = check_real(delta, "delta", 0.0, 0.5, low_open=True, static=True)
    values = n - np.arange(n)  # utility of ranking position p
    utilities = np.zeros((n, n))
    utilities[0] = values
    for t in range(n - 1):
        ranking = [1 + (t + s) % (n - 1) for s in range(n - 1)] + [0]
        utilities[t + 1, ranking] = values
    weights = np.full(n, (0.5 - delta) / (n - 1))
    weights[0] = 0.5 + delta
    return RankingPopulation(jnp.asarray(utilities, dtype), weights=jnp.asarray(weights, dtype))


def ell_tight_instance(
    k: int, ell: int, eps: float | None = None, *, dtype: DTypeLike | None = None
) -> RankingPopulation:
    """An equilibrium whose robust win rate against ℓ-output opponents is ``1 − ℓ/(k+1) + ℓ·eps``.

    The instance behind the tightness of docs/theory.md §4 (T4): the guarantee
    ``R_{k,ℓ}(π^{⊗k}) ≥ 1 − ℓ/(k+1)`` of an equilibrium ``π`` of the (k+1)-player game cannot be
    raised, since here an equilibrium gets within ``ℓ·eps`` of it, for any ``eps > 0``.

    Responses are ``a, z1, ..., zℓ`` (indices ``0..ℓ``). User type ``j`` (row ``j = 1..ℓ``) has
    weight ``q = 1/(k+1) − eps`` and ranks ``zj ≻ a ≻`` the other ``z`` in index order; row 0,
    of weight ``1 − ℓq``, ranks ``a ≻ z1 ≻ ... ≻ zℓ``. Against ``δ_a`` (every sample is ``a``)
    ``u_k(a, δ_a) = 1/(k+1)`` and ``u_k(zj, δ_a) = q < 1/(k+1)``, so ``δ_a`` is a strict
    symmetric equilibrium. The opponent offering ``z1..zℓ`` wins every type ``j ≥ 1``, and the
    one offering ``ℓ`` copies of ``a`` gets the share ``ℓ/(k+ℓ)`` of every user; these two are
    the worst cases, so

        R_{k,ℓ}(δ_a) = min(1 − ℓ/(k+1) + ℓ·eps, k/(k+ℓ)),

    which is ``1 − ℓ/(k+1) + ℓ·eps`` exactly when ``eps ≤ (ℓ−1)/((k+1)(k+ℓ))`` (never for
    ``ℓ = 1``, where every equilibrium has ``R_{k,1} = k/(k+1)``, T1).

    Args:
        k: responses per prompt of the model, ``k >= 1``.
        ell: responses of the opponent, ``1 <= ell <= k + 1`` (beyond ``k + 1`` the guarantee
            ``1 − ℓ/(k+1)`` is negative).
        eps: how far each ``zj`` type's weight stays below ``1/(k+1)``, in ``(0, 1/(k+1))``;
            default ``1/(2(k+1)(k+ℓ))``, at most half the largest ``eps`` for which the robust
            win rate is ``1 − ℓ/(k+1) + ℓ·eps``.
        dtype: float dtype.

    Returns:
        A :class:`RankingPopulation` with ``ℓ + 1`` user types (utilities ``[ℓ+1, ℓ+1]``) and
        response names ``("a", "z1", ..., "zℓ")``.

    Example:
        >>> from ualign_jax.metrics import robust_win_rate
        >>> pop = ell_tight_instance(2, 2, eps=0.01)
        >>> pop.names, pop.utilities.tolist()
        (('a', 'z1', 'z2'), [[3.0, 2.0, 1.0], [2.0, 3.0, 1.0], [2.0, 1.0, 3.0]])
        >>> [round(float(w), 4) for w in pop.weights]
        [0.3533, 0.3233, 0.3233]
        >>> delta_a = jnp.array([1.0, 0.0, 0.0], pop.utilities.dtype)
        >>> round(float(robust_win_rate(pop, delta_a, 2, ell=2)), 4)  # 1 - 2/3 + 2 * 0.01
        0.3533
    """
    k = static_count(k, "k")
    ell = static_count(ell, "ell")
    if ell > k + 1:
        raise ValueError(f"ell must be at most k + 1 = {k + 1}, got {ell}")
    dtype = float_dtype_arg(dtype)
    if eps is None:
        eps = 1.0 / (2 * (k + 1) * (k + ell))
    eps = check_real(eps, "eps", 0.0, 1.0 / (k + 1), low_open=True, high_open=True, static=True)
    challenger_weight = 1.0 / (k + 1) - eps  # q, the weight of each type ranking some zj first
    majority_weight = (k + 1 - ell) / (k + 1) + ell * eps  # 1 − ℓq, without the cancellation
    weights = np.array([majority_weight] + [challenger_weight] * ell)
    if not np.all(np.asarray(weights, dtype) > 0):
        raise ValueError(
            f"eps = {eps} leaves a user weight that is not positive in {dtype} "
            f"(weights 1 − ℓq = {majority_weight:.3g} and q = {challenger_weight:.3g})"
        )
    n = ell + 1
    values = n - np.arange(n)  # utility of ranking position p
    utilities = np.zeros((n, n))
    utilities[0] = values
    for j in range(1, n):
        ranking = [j, 0] + [z for z in range(1, n) if z != j]
        utilities[j, ranking] = values
    names = ("a",) + tuple(f"z{j}" for j in range(1, n))
    return RankingPopulation(
        jnp.asarray(utilities, dtype), weights=jnp.asarray(weights, dtype), names=names
    )
