"""The solver: :func:`solve` and what it returns, configures and records.

Modules, in the order data flows: ``outcomes`` (how a run ended), ``trace`` (the bounded trace
layout and the folded mixture of iterates), ``equilibrium`` (KKT conditions, kinks, implicit
VJP), ``loop`` (one run for one prompt), ``segments`` (checkpointed runs), ``adjoint`` (the
``adjoint=`` options), ``driver`` (:func:`solve`, :class:`Solution`).
"""

from .adjoint import AbstractAdjoint, ImplicitAdjoint, UnrolledAdjoint
from .driver import (
    DEFAULT_METHOD,
    DEFAULT_MIXTURE_SIZE,
    DEFAULT_TRACE_SIZE,
    METHODS,
    Solution,
    solve,
)
from .outcomes import OUTCOMES, Outcome
from .segments import DEFAULT_CHECKPOINT_EVERY
from .trace import Trace

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "DEFAULT_METHOD",
    "DEFAULT_MIXTURE_SIZE",
    "DEFAULT_TRACE_SIZE",
    "METHODS",
    "OUTCOMES",
    "AbstractAdjoint",
    "ImplicitAdjoint",
    "Outcome",
    "Solution",
    "Trace",
    "UnrolledAdjoint",
    "solve",
]
