"""Pytree helpers shared by the modules that define ``equinox.Module`` types."""

from __future__ import annotations

import dataclasses

__all__ = ["unchecked_replace"]


def unchecked_replace(module, **changes):
    """A copy of ``module`` with fields changed, without running its constructor: for static
    settings (its arrays shared) and for arrays known to be valid (a solver's own output)."""
    copy = object.__new__(type(module))
    for field in dataclasses.fields(module):
        if isinstance(getattr(type(module), field.name, None), property):
            continue  # an abstract field (``eqx.AbstractVar``) this kind implements as a property
        value = changes[field.name] if field.name in changes else getattr(module, field.name)
        object.__setattr__(copy, field.name, value)
    return copy
