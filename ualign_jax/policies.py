"""Policies: single-output ``π ∈ Δ(Y)`` and mixtures of products ``Σ_t α_t π_t^{⊗k}``.

See docs/theory.md §1.

A plain array ``[..., n]`` is a policy; its k-output model is ``π^{⊗k}`` (k i.i.d. draws). A
:class:`ProductMixture` draws an index ``t ~ α`` once, then k i.i.d. draws from ``π_t``. Every
function that takes a policy takes a ``ProductMixture`` too.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._linalg import einsum
from ._pytrees import unchecked_replace
from ._validation import as_float_array, check_simplex, check_weights, is_concrete, static_count

__all__ = ["ProductMixture", "as_mixture", "uniform_policy"]


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
    if isinstance(policy, ProductMixture):
        check_weights(policy.weights, f"{name}.weights")
        if is_concrete(policy.policies) and is_concrete(policy.weights):  # rows in use only
            used = np.asarray(policy.policies)[np.asarray(policy.weights) > 0]
            check_simplex(used, f"{name}.policies")
        mixture = unchecked_mixture(policy.policies, policy.component_weights)
    else:
        p = as_float_array(policy, name)
        check_simplex(p, name)
        mixture = ProductMixture(p[..., None, :])
    if mixture.num_responses != num_responses:
        raise ValueError(
            f"{name} has {mixture.num_responses} responses but the population has {num_responses}"
        )
    return mixture


def unchecked_mixture(policies, weights) -> ProductMixture:
    """A ``ProductMixture`` from arrays known to be valid (solver output; no host round trip)."""
    template = object.__new__(ProductMixture)
    return unchecked_replace(template, policies=policies, weights=weights)


def uniform_policy(num_responses: int, dtype=None) -> Float[Array, " n"]:
    """The uniform policy ``1/n`` (the reference policy when none is given)."""
    num_responses = static_count(num_responses, "num_responses")
    return jnp.full((num_responses,), 1.0 / num_responses, dtype=dtype)
