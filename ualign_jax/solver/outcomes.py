"""How a run of :func:`~ualign_jax.solve` ended: the :class:`Outcome` codes and their messages."""

from __future__ import annotations

import enum

__all__ = ["Outcome", "OUTCOMES"]


class Outcome(enum.IntEnum):
    """Outcome of a run, as stored in ``Solution.outcome`` (int32 codes, these values).

    Like optimistix's ``RESULTS``: ``successful`` is 0 and every other member is a failure
    with a message. Example:

        >>> Outcome(1).name, Outcome.max_steps_reached.message
        ('max_steps_reached', 'the run took every step without reaching tol')
    """

    successful = 0
    max_steps_reached = 1
    nonfinite = 2

    @property
    def message(self) -> str:
        """What the outcome means, in one sentence fragment (used by ``solve(throw=True)``)."""
        return _MESSAGES[self]


_MESSAGES = {
    Outcome.successful: "the run ended normally (at tol when one was given)",
    Outcome.max_steps_reached: "the run took every step without reaching tol",
    Outcome.nonfinite: (
        "the iterate left the simplex (NaN, inf, or mass lost to under/overflow); try float64, "
        "a smaller step size or another method"
    ),
}

#: Outcome names by code (``OUTCOMES[code] == Outcome(code).name``), for string lookups.
OUTCOMES = tuple(member.name for member in Outcome)
