"""The equilibrium's KKT conditions: its payoff field, its support, its kinks, and the VJP of
the map ``θ ↦ π*(θ)`` by the implicit function theorem (docs/theory.md §9).

At an equilibrium each response ``y`` has a complementarity pair: its probability ``π_y`` and
its payoff gap ``max_z f_z − f_y``, one of them 0. The implicit derivative is exact where the
other is positive for every ``y`` (strict complementarity); :func:`kinks` flags the responses
where both are numerically 0.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._linalg import dot
from ..payoffs import single_policy_payoffs

__all__ = ["constant", "field", "support_slack", "kinks", "implicit_one"]


def constant(tree):
    """``tree`` with its array leaves cut from autodiff (other leaves unchanged)."""
    return jax.tree.map(lambda x: jax.lax.stop_gradient(x) if eqx.is_array(x) else x, tree)


def field(pop, policy, k: int, tau: float):
    """The equilibrium's payoff field ``u_k(·, π) − τ log(n π)`` (docs/theory.md §9)."""
    g = single_policy_payoffs(pop, policy, k)
    if not tau:
        return g
    tiny = jnp.finfo(policy.dtype).tiny
    return g - tau * (jnp.log(jnp.maximum(policy, tiny)) + math.log(policy.shape[-1]))


def support_slack(policy: Float[Array, " n"], g: Float[Array, " n"]) -> Float[Array, ""]:
    """``δ = 10 |ε| + sqrt(eps_dtype)`` with ``ε = max g − <π, g>``: how far below the best
    payoff a response may sit and still count as a best response of the iterate ``π``.

    ``ε`` is the iterate's own exploitability (its distance from an equilibrium, in payoff);
    ``sqrt(eps_dtype)`` (``1.5e-8`` in float64, ``3.5e-4`` in float32) covers the rounding of
    payoffs and of ``ε`` itself.
    """
    epsilon = jnp.max(g) - dot(policy, g)
    return 10 * jnp.abs(epsilon) + math.sqrt(float(jnp.finfo(policy.dtype).eps))


def kinks(pop, policy, *, k: int, tau: float = 0.0) -> Bool[Array, " n"]:
    """Responses at which strict complementarity fails at the iterate ``π`` (one prompt).

    ``y`` is flagged when both sides of its complementarity pair are numerically zero:
    ``π_y <= ρ`` and ``max_z f_z − f_y <= ρ``, with ``f`` the :func:`field` and
    ``ρ = sqrt(δ)`` for the :func:`support_slack` ``δ``. Near an equilibrium at distance
    ``r``, both sides of a failing pair shrink like ``r`` while the exploitability shrinks like
    ``r²``, so a pair below ``sqrt(δ)`` cannot be told from a failing one; ``ρ`` is at least
    ``eps_dtype^(1/4)`` (``1.2e-4`` in float64, ``0.019`` in float32). At a flagged response the
    equilibrium map has a kink: the support grows in some directions of ``θ`` and not in
    others (docs/theory.md §9).

    Example:
        >>> import ualign_jax as ua  # δ_a is an equilibrium; z's gap is exactly 0 there
        >>> pop = ua.RankingPopulation(jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([2.0, 1.0]))
        >>> kinks(pop, jnp.array([1.0, 0.0]), k=2).tolist()
        [False, True]
    """
    policy = jax.lax.stop_gradient(policy)
    g = field(constant(pop), policy, k, tau)
    epsilon = jnp.max(g) - dot(policy, g)
    radius = jnp.sqrt(10 * jnp.abs(epsilon)) + math.sqrt(float(jnp.finfo(policy.dtype).eps))
    return (g >= jnp.max(g) - radius) & (policy <= radius)


@eqx.filter_custom_vjp
def _equilibrium(pop, policy, k, tau):
    """``policy`` unchanged; its VJP is that of the equilibrium map ``θ ↦ π*(θ)``."""
    del pop, k, tau
    return policy


@_equilibrium.def_fwd
def _equilibrium_fwd(perturbed, pop, policy, k, tau):
    del perturbed, pop, k, tau
    return policy, None


@_equilibrium.def_bwd
def _equilibrium_bwd(residuals, cotangent, perturbed, pop, policy, k, tau):
    """Implicit function theorem on the KKT system of the equilibrium's support ``S``.

    Unknowns ``(π, v)``: ``F_y = field_y(π; θ) − v`` for ``y ∈ S``, ``F_y = π_y`` for
    ``y ∉ S``, ``F_{n} = Σ_y π_y − 1``. With ``A = ∂F/∂(π, v)`` and ``λ`` solving
    ``Aᵀ λ = (w, 0)`` for the cotangent ``w``, the parameter cotangent is
    ``−∂_θ <λ_S, field_S(π; θ)>``. ``A`` is solved by least squares (the minimum-norm answer
    where the equilibrium is degenerate), so the gradient is always finite.
    """
    del residuals
    n, dtype = policy.shape[-1], policy.dtype
    pop = constant(pop)
    policy = jax.lax.stop_gradient(policy)
    g = field(pop, policy, k, tau)
    # The support: the responses within δ of the best payoff (at an exact equilibrium with
    # strict complementarity, exactly those played). δ covers the iterate's own exploitability.
    support = (g >= jnp.max(g) - support_slack(policy, g)).astype(dtype)
    jacobian = jax.jacfwd(lambda p: field(pop, p, k, tau))(policy)
    top = jnp.concatenate(
        [
            support[:, None] * jacobian * support[None, :] + jnp.diag(1 - support),
            -support[:, None],
        ],
        axis=1,
    )
    bottom = jnp.concatenate([support, jnp.zeros(1, dtype)])[None, :]
    system = jnp.concatenate([top, bottom], axis=0)
    rhs = jnp.concatenate([jnp.asarray(cotangent, dtype), jnp.zeros(1, dtype)])
    multipliers = jnp.linalg.lstsq(system.T, rhs)[0][:n] * support

    def weighted(pop_diff):
        pop_full = eqx.combine(pop_diff, pop_rest)
        return -dot(multipliers, field(pop_full, policy, k, tau))

    pop_diff, pop_rest = eqx.partition(pop, eqx.is_inexact_array)
    grads = jax.grad(weighted)(pop_diff)
    return jax.tree.map(
        lambda grad, wanted: grad if wanted else None,
        grads,
        perturbed,
        is_leaf=lambda x: x is None,
    )


def implicit_one(pop, policy, *, k: int, tau: float):
    """``policy`` as the equilibrium ``π*(θ)`` of ``pop`` for autodiff (one prompt)."""
    return _equilibrium(pop, policy, k, tau)
