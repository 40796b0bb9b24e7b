"""Pytree helpers shared by the modules that define ``equinox.Module`` types."""

from __future__ import annotations

import dataclasses

__all__ = ["unchecked_new", "unchecked_replace"]


def unchecked_new(cls, **fields):
    """An instance of ``cls`` holding ``fields``, without running its constructor: for arrays
    known to be valid (a solver's own output), where the constructor's checks would cost a host
    round trip or fail on tracers."""
    instance = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(instance, name, value)
    return instance


def unchecked_replace(module, **changes):
    """A copy of ``module`` with fields changed, without running its constructor: for static
    settings (its arrays shared) and for arrays known to be valid (a solver's own output)."""
    fields = {
        field.name: changes[field.name] if field.name in changes else getattr(module, field.name)
        for field in dataclasses.fields(module)
        # an abstract field (``eqx.AbstractVar``) this kind implements as a property is skipped
        if not isinstance(getattr(type(module), field.name, None), property)
    }
    return unchecked_new(type(module), **fields)
