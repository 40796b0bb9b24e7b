"""How ``jax.grad`` reaches the population through ``solve``: the ``adjoint=`` argument.

:class:`ImplicitAdjoint` (the default) differentiates the equilibrium itself by the implicit
function theorem on its KKT system (docs/theory.md §9): one linear solve of size ``n + 1`` and
one VJP of the payoffs, whatever the method and the number of steps. :class:`UnrolledAdjoint`
differentiates the ``steps`` iterations that ran instead (like optimistix's
``RecursiveCheckpointAdjoint``): the derivative of the returned iterate itself, exact for a
run stopped anywhere, at the cost of a backward pass through every step.
"""

from __future__ import annotations

import abc

import equinox as eqx

from .equilibrium import implicit_one
from .loop import map_run

__all__ = ["AbstractAdjoint", "ImplicitAdjoint", "UnrolledAdjoint"]


class AbstractAdjoint(eqx.Module):
    """How ``solve`` is differentiated. Subclass to add a rule (two members):

    * ``unrolled``: whether the solver's loop runs on the differentiable population (the
      derivative flows through the iterations) or on a constant copy of it;
    * ``attach(pop, last, k=..., tau=...)``: the returned policy from the
      last iterate ``last`` (``[..., n]``), carrying the rule's derivative.
    """

    @property
    @abc.abstractmethod
    def unrolled(self) -> bool:
        """Whether the loop itself is differentiated."""

    @abc.abstractmethod
    def attach(self, pop, last, *, k: int, tau: float):
        """The policy ``solve`` returns, with this rule's derivative w.r.t. ``pop``."""


class ImplicitAdjoint(AbstractAdjoint):
    """Differentiate the equilibrium ``π*(θ)`` by the implicit function theorem (§9).

    The loop runs on constants; the backward pass solves ``Aᵀ λ = (π̄_S, 0)`` for the bordered
    KKT matrix ``A`` of the support ``S = {y : max u_k − u_k(y) <= δ}`` (least squares: the
    minimum-norm answer where ``A`` is singular) and returns ``θ̄ = −∂_θ <λ_S, u_k(·, π*; θ)>``.
    Exact at an exact equilibrium with strict complementarity; at a kink
    (``Solution.degenerate``) it is a one-sided derivative, see docs/theory.md §9.

    Example:
        >>> import jax, jax.numpy as jnp, ualign_jax as ua
        >>> pop = lambda w: ua.RankingPopulation(jnp.eye(3), w)
        >>> f = lambda w: ua.solve(pop(w), 2, adjoint=ua.ImplicitAdjoint()).policy[0]
        >>> jax.grad(f)(jnp.array([0.5, 0.3, 0.2])).shape
        (3,)
    """

    @property
    def unrolled(self) -> bool:
        return False

    def attach(self, pop, last, *, k: int, tau: float):
        return map_run(implicit_one, pop, last, k=k, tau=tau)


class UnrolledAdjoint(AbstractAdjoint):
    """Differentiate through the iterations that ran (reverse mode through the loop).

    The derivative of the returned iterate ``π_T(θ)`` of the ``T = steps`` steps, whatever it
    approximates: the right choice when the run stops far from an equilibrium on purpose (a
    few steps of a dynamic as a layer) or for checking the implicit derivative. Each step is
    recomputed in the backward pass (``jax.checkpoint``), so memory grows as ``T`` times the
    dynamic's state (``O(T n)``), and time to several forward runs (docs/theory.md §9).
    Needs ``tol=None`` (a fixed number of steps: a ``while_loop`` has no reverse derivative)
    and no ``checkpoint`` file. Near an equilibrium the unrolled derivative converges to the
    implicit one only as fast as the dynamic converges; adaptive step sizes add their own
    derivative.

    Example:
        >>> import jax, jax.numpy as jnp, ualign_jax as ua
        >>> pop = lambda w: ua.RankingPopulation(jnp.eye(3), w)
        >>> f = lambda w: ua.solve(pop(w), 2, steps=50, adjoint=ua.UnrolledAdjoint()).policy[0]
        >>> jax.grad(f)(jnp.array([0.5, 0.3, 0.2])).shape
        (3,)
    """

    @property
    def unrolled(self) -> bool:
        return True

    def attach(self, pop, last, *, k: int, tau: float):
        del pop, k, tau
        return last
