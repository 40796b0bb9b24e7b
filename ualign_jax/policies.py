"""Policies: single-output ``π ∈ Δ(Y)``, mixtures of products ``Σ_t α_t π_t^{⊗k}``, and laws
over k-tuples. See docs/theory.md §1.

A plain array ``[..., n]`` is a policy; its k-output model is ``π^{⊗k}`` (k i.i.d. draws). A
:class:`ProductMixture` draws an index ``t ~ α`` once, then k i.i.d. draws from ``π_t``. Every
function that takes a policy takes a ``ProductMixture`` too. A :class:`KOutputPolicy` is any
k-output model given explicitly: tuple ``S_t`` with probability ``α_t``, its k outputs
correlated in any way (``uniform_k_sets``: k distinct responses); ``win_rate`` and
``robust_win_rate`` take it.
"""

from __future__ import annotations

import itertools
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._combinatorics import all_multisets, log_multinomial, multiset_counts, num_multisets
from ._linalg import einsum
from ._pytrees import unchecked_new
from ._validation import (
    as_float_array,
    check_simplex,
    check_weights,
    float_dtype_arg,
    is_concrete,
    off_simplex,
    simplex_tolerance,
    static_count,
)

__all__ = [
    "KOutputPolicy",
    "ProductMixture",
    "as_mixture",
    "product_law",
    "uniform_k_sets",
    "uniform_policy",
]

#: Most tuples :func:`uniform_k_sets` and :func:`product_law` enumerate.
MAX_ENUMERATED_TUPLES = 10**6


class ProductMixture(eqx.Module):
    """The k-output model ``Σ_t α_t π_t^{⊗k}``: pick ``t ~ α`` once, then k draws from ``π_t``.

    Args:
        policies: ``[..., T, n]`` rows on the simplex.
        weights: ``[..., T]`` nonnegative (normalised here); default uniform.

    Like the populations, a mixture is normalised again where it is used
    (:attr:`component_weights`), so ``eqx.tree_at(lambda m: m.weights, mix, 2 * mix.weights)``
    is the same mixture; every function takes it through :func:`as_mixture`, which also checks
    concrete policies are on the simplex.

    Example:
        >>> mix = ProductMixture(jnp.eye(2), jnp.array([0.5, 0.5]))
        >>> mix.num_components
        2
    """

    policies: Float[Array, "*batch T n"]
    weights: Float[Array, "*batch T"]

    def __init__(self, policies, weights=None):
        p = as_float_array(policies, "policies", min_ndim=2)
        check_simplex(p, "policies")
        if weights is None:
            w = jnp.full(p.shape[:-1], 1.0 / p.shape[-2], dtype=p.dtype)
        else:
            w = as_float_array(weights, "weights").astype(p.dtype)
            if w.shape != p.shape[:-1]:
                raise ValueError(f"weights must have shape {p.shape[:-1]}, got {w.shape}")
            check_weights(w, "weights")
            w = w / jnp.sum(w, axis=-1, keepdims=True)
        self.policies = p
        self.weights = w

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.weights.shape[:-1]

    @property
    def num_components(self) -> int:
        return self.weights.shape[-1]

    @property
    def num_responses(self) -> int:
        return self.policies.shape[-1]

    @property
    def component_weights(self) -> Float[Array, "*batch T"]:
        """``α``: ``weights`` normalised to sum 1 (again, here: a pytree operation may have
        rescaled them)."""
        return self.weights / jnp.sum(self.weights, axis=-1, keepdims=True)

    def marginal(self) -> Float[Array, "*batch n"]:
        """The single-output policy ``Σ_t α_t π_t`` (one draw from the mixture)."""
        return einsum("...t,...tn->...n", self.component_weights, self.policies)


def as_mixture(policy, num_responses: int, name: str = "policy") -> ProductMixture:
    """A policy array ``[..., n]`` or a ``ProductMixture`` as a ``ProductMixture``, validated."""
    if isinstance(policy, KOutputPolicy):
        raise ValueError(
            f"{name} is a KOutputPolicy (a law over k-tuples): win_rate and robust_win_rate "
            "take it; here a policy array or a ProductMixture is needed"
        )
    if isinstance(policy, ProductMixture):
        weights = check_weights(policy.weights, f"{name}.weights")
        policies = policy.policies
        if is_concrete(policies) and is_concrete(weights):  # rows in use only
            check_simplex(np.asarray(policies)[np.asarray(weights) > 0], f"{name}.policies")
        else:  # the same test at run time, on the rows in use
            bad = off_simplex(policies, simplex_tolerance(policies.dtype)) & (weights > 0)
            message = f"{name}.policies must lie on the simplex"
            policies = eqx.error_if(policies, jnp.any(bad), message)
        mixture = unchecked_mixture(policies, weights / jnp.sum(weights, axis=-1, keepdims=True))
    else:
        p = check_simplex(as_float_array(policy, name), name)
        mixture = unchecked_mixture(p[..., None, :], jnp.ones(p.shape[:-1] + (1,), p.dtype))
    if mixture.num_responses != num_responses:
        raise ValueError(
            f"{name} has {mixture.num_responses} responses but the population has {num_responses}"
        )
    return mixture


def unchecked_mixture(policies, weights) -> ProductMixture:
    """A ``ProductMixture`` from arrays known to be valid (solver output; no host round trip)."""
    return unchecked_new(ProductMixture, policies=policies, weights=weights)


def uniform_policy(num_responses: int, dtype=None) -> Float[Array, " n"]:
    """The uniform policy ``1/n`` (the reference policy when none is given)."""
    num_responses = static_count(num_responses, "num_responses")
    return jnp.full((num_responses,), 1.0 / num_responses, dtype=dtype)


# --------------------------------------------------------------------------- laws over k-tuples


class KOutputPolicy(eqx.Module):
    """A k-output model given as a law over k-tuples: tuple ``S_t`` with probability ``α_t``.

    Its k outputs may be correlated in any way (k distinct responses, say), unlike
    ``π^{⊗k}`` or a :class:`ProductMixture`. Win rates are linear in the law (docs/theory.md
    §2): ``WR(A, B) = Σ_t α_t WR(S_t, B)``.

    Args:
        tuples: ``[..., T, k]`` integer response indices (checked against the population's
            ``n`` where used); repeats within a tuple are allowed.
        weights: ``[..., T]`` nonnegative, not all zero (normalised here); default uniform.
            Tuples without prompt axes are shared by weights with them (broadcast).

    Like a :class:`ProductMixture` it is normalised again where used (:attr:`tuple_weights`), so
    ``eqx.tree_at(lambda a: a.weights, law, 2 * law.weights)`` is the same law.

    Example:
        >>> law = KOutputPolicy(jnp.array([[0, 1], [2, 2]]), jnp.array([3.0, 1.0]))
        >>> law.num_outputs, law.num_tuples, law.tuple_weights.tolist()
        (2, 2, [0.75, 0.25])
    """

    tuples: Int[Array, "*batch T k"]
    weights: Float[Array, "*batch T"]

    def __init__(self, tuples, weights=None, dtype=None):
        t = _as_index_array(tuples, "tuples")
        if weights is None:
            dtype = float_dtype_arg(dtype)
            w = jnp.full(t.shape[:-1], 1.0 / t.shape[-2], dtype=dtype)
        else:
            w = as_float_array(weights, "weights")
            if dtype is not None:
                w = w.astype(float_dtype_arg(dtype))
            if w.shape[-1] != t.shape[-2]:
                raise ValueError(
                    f"weights must have one entry per tuple ({t.shape[-2]}) on the last axis, "
                    f"got shape {w.shape}"
                )
            check_weights(w, "weights")
            w = w / jnp.sum(w, axis=-1, keepdims=True)
        try:
            batch = np.broadcast_shapes(t.shape[:-2], w.shape[:-1])
        except ValueError:
            raise ValueError(
                f"tuples {t.shape} and weights {w.shape} have prompt axes that do not broadcast"
            ) from None
        self.tuples = jnp.broadcast_to(t, (*batch, *t.shape[-2:]))
        self.weights = jnp.broadcast_to(w, (*batch, w.shape[-1]))

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.weights.shape[:-1]

    @property
    def num_outputs(self) -> int:
        """``k``, the length of each tuple."""
        return self.tuples.shape[-1]

    @property
    def num_tuples(self) -> int:
        return self.tuples.shape[-2]

    @property
    def tuple_weights(self) -> Float[Array, "*batch T"]:
        """``α``: ``weights`` normalised to sum 1 (again: a pytree operation may rescale them)."""
        return self.weights / jnp.sum(self.weights, axis=-1, keepdims=True)

    def marginal(self, num_responses: int) -> Float[Array, "*batch n"]:
        """The law of one output chosen uniformly among the k: ``Σ_t α_t (1/k) Σ_j δ_{S_tj}``."""
        num_responses = static_count(num_responses, "num_responses")
        responses = jnp.arange(num_responses, dtype=self.tuples.dtype)
        hits = jnp.sum(self.tuples[..., None] == responses, axis=-2)
        alphas = self.tuple_weights
        return einsum("...t,...tn->...n", alphas, hits.astype(alphas.dtype)) / self.num_outputs


def _as_index_array(x, name: str):
    """``x`` as an int32 array ``[..., T, k]`` of nonnegative indices, else ``ValueError``."""
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{name} must be an array of response indices") from err
    if arr.dtype == jnp.bool_ or not jnp.issubdtype(arr.dtype, jnp.integer):
        raise ValueError(f"{name} must hold integer response indices, got dtype {arr.dtype}")
    if arr.ndim < 2 or any(d == 0 for d in arr.shape):
        raise ValueError(f"{name} must have shape [..., T, k] with T, k >= 1, got {arr.shape}")
    if is_concrete(arr) and int(np.min(np.asarray(arr))) < 0:
        raise ValueError(f"{name} must hold response indices >= 0, found {np.min(arr)}")
    return arr.astype(jnp.int32)


def as_k_output(
    policy: KOutputPolicy, num_responses: int, outputs: int, name: str = "policy", count="k"
) -> KOutputPolicy:
    """A :class:`KOutputPolicy` validated where it is used: tuples of length ``outputs`` (else
    ``ValueError`` naming the argument ``count`` that set it), indices below ``num_responses``
    (concrete tuples now, traced ones at run time), weights nonnegative and not all zero; the
    weights come back normalised."""
    if policy.num_outputs != outputs:
        raise ValueError(
            f"{count}={outputs} does not match {name}, a KOutputPolicy of "
            f"{policy.num_outputs}-tuples; pass {count}={policy.num_outputs}"
        )
    check_weights(policy.weights, f"{name}.weights")
    tuples, alphas = policy.tuples, policy.tuple_weights
    if not jnp.issubdtype(tuples.dtype, jnp.integer):
        raise ValueError(f"{name}.tuples must hold integer indices, got dtype {tuples.dtype}")
    if is_concrete(tuples):
        values = np.asarray(tuples)
        if values.min() < 0 or values.max() >= num_responses:
            raise ValueError(
                f"{name}.tuples must hold response indices in [0, {num_responses}) (the "
                f"population has {num_responses} responses), found {values.min()}..{values.max()}"
            )
    else:  # a gather out of range would clamp silently: fail at run time instead
        outside = jnp.any((tuples < 0) | (tuples >= num_responses))
        alphas = eqx.error_if(alphas, outside, f"{name}.tuples hold indices outside [0, n)")
    return unchecked_new(KOutputPolicy, tuples=tuples.astype(jnp.int32), weights=alphas)


def uniform_k_sets(num_responses: int, k: int, responses=None, dtype=None) -> KOutputPolicy:
    """k distinct responses, all ``C(n', k)`` k-sets equally likely (docs/theory.md §1, T2).

    Args:
        num_responses: ``n``.
        k: outputs per answer, ``1 <= k <= n'``.
        responses: optional distinct responses to draw from (``n'`` of them); default all ``n``.
        dtype: float dtype of the weights.

    Example:
        >>> law = uniform_k_sets(4, 2, responses=[0, 2, 3])
        >>> law.tuples.tolist(), round(float(law.tuple_weights[0]), 4)
        ([[0, 2], [0, 3], [2, 3]], 0.3333)
    """
    n = static_count(num_responses, "num_responses")
    k = static_count(k, "k")
    if responses is None:
        pool = np.arange(n)
    else:
        pool = np.asarray(responses)
        if pool.ndim != 1 or pool.size == 0 or not np.issubdtype(pool.dtype, np.integer):
            raise ValueError(f"responses must be a nonempty list of response indices, got {pool}")
        if pool.min() < 0 or pool.max() >= n or len(np.unique(pool)) != pool.size:
            raise ValueError(f"responses must be distinct indices in [0, {n}), got {pool.tolist()}")
        pool = np.sort(pool)
    if k > pool.size:
        raise ValueError(f"k={k} exceeds the {pool.size} responses to draw distinct ones from")
    count = math.comb(pool.size, k)
    if count > MAX_ENUMERATED_TUPLES:
        raise ValueError(
            f"uniform_k_sets: C({pool.size}, {k}) = {count:,} k-sets exceed "
            f"{MAX_ENUMERATED_TUPLES:,}"
        )
    sets = np.array(list(itertools.combinations(pool.tolist(), k)), np.int32).reshape(-1, k)
    return KOutputPolicy(sets, dtype=dtype)


def product_law(policy, k: int) -> KOutputPolicy:
    """``π^{⊗k}`` (or a ``ProductMixture``) as a law over sorted k-multisets: ``S`` with counts
    ``c`` has weight ``Σ_t α_t k!/Π_z c_z! Π_z π_tz^{c_z}``.

    For small ``n`` and ``k`` (``C(n+k−1, k)`` tuples); win rates of the result equal those of
    ``policy`` (docs/theory.md §1).

    Example:
        >>> law = product_law(jnp.array([0.5, 0.5]), 2)
        >>> law.tuples.tolist(), [round(float(w), 6) for w in law.tuple_weights]
        ([[0, 0], [0, 1], [1, 1]], [0.25, 0.5, 0.25])
    """
    k = static_count(k, "k")
    if isinstance(policy, ProductMixture):
        n = policy.num_responses
    else:
        n = as_float_array(policy, "policy").shape[-1]
    mixture = as_mixture(policy, n)
    count = num_multisets(n, k)
    if count > MAX_ENUMERATED_TUPLES:
        raise ValueError(
            f"product_law: C(n+k-1, k) = {count:,} multisets exceed {MAX_ENUMERATED_TUPLES:,}"
        )
    multisets = all_multisets(n, k)
    counts = multiset_counts(multisets, n)
    pi = mixture.policies
    log_pi = jnp.log(jnp.where(pi > 0, pi, 1.0))  # [..., T, n]
    exponents = jnp.asarray(counts, pi.dtype)  # [R, n]
    log_prob = jnp.asarray(log_multinomial(counts), pi.dtype) + einsum(
        "rz,...tz->...tr", exponents, log_pi
    )
    impossible = jnp.any((counts > 0) & (pi[..., None, :] <= 0), axis=-1)  # [..., T, R]
    prob = jnp.where(impossible, 0.0, jnp.exp(log_prob))
    weights = einsum("...t,...tr->...r", mixture.weights.astype(pi.dtype), prob)
    return KOutputPolicy(multisets, weights)
