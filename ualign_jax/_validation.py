"""Checks at the public boundary: clear ``ValueError``s that name the argument.

Value checks (finiteness, signs, simplex) run only on concrete arrays; inside ``jax.jit`` the
caller's arrays are tracers and only shapes are checked. Validate once, outside the jitted loop.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when ``x`` holds values we can inspect (not a tracer inside jit/vmap/grad, nor an
    array spread over several processes, whose values no single process can read)."""
    if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer):
        return x.is_fully_addressable or x.is_fully_replicated
    return not isinstance(x, jax.core.Tracer)


def float_dtype(x):
    """The floating dtype computations on ``x`` use.

    Integers promote to the default float; half precision (float16, bfloat16, float8) promotes
    to float32, the narrowest dtype the quadratures and tolerances here are built for.
    """
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        return jnp.result_type(float)
    return dtype if jnp.finfo(dtype).bits >= 32 else jnp.dtype(jnp.float32)


def float_dtype_arg(dtype, name: str = "dtype"):
    """A ``dtype=`` argument (default: jnp's default float) as a floating dtype, else ValueError.

    Example:
        >>> float_dtype_arg("float32")
        dtype('float32')
    """
    if dtype is None:
        return jnp.result_type(float)
    try:
        resolved = jnp.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"{name} must be a floating dtype such as float32, got {dtype!r}") from err
    if not jnp.issubdtype(resolved, jnp.floating):
        raise ValueError(f"{name} must be a floating dtype such as float32, got {resolved}")
    return resolved


def as_float_array(x, name: str, min_ndim: int = 1):
    """``x`` as a floating JAX array with at least ``min_ndim`` axes, else ``ValueError``."""
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__}") from err
    if arr.dtype == jnp.bool_ or not (
        jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)
    ):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} axes, got shape {arr.shape}")
    if any(d == 0 for d in arr.shape):
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return arr.astype(float_dtype(arr))


def check_finite(x, name: str) -> None:
    """Raise when a concrete ``x`` holds NaN or infinity."""
    if is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"{name} must be finite, found NaN or inf")


def simplex_tolerance(dtype) -> float:
    """How far a sum may stray from 1 and an entry below 0 before we call it off the simplex."""
    return 1e-4 if jnp.finfo(dtype).bits <= 32 else 1e-8


def check_simplex(x, name: str) -> None:
    """Raise when a concrete ``x`` [..., n] is not a probability vector along its last axis."""
    check_finite(x, name)
    if not is_concrete(x):
        return
    values = np.asarray(x, dtype=np.float64)
    tol = simplex_tolerance(x.dtype)
    if values.min() < -tol:
        raise ValueError(
            f"{name} has negative entries (min {values.min():.3g}); it must lie on the simplex"
        )
    sums = values.sum(axis=-1)
    worst = float(np.max(np.abs(sums - 1.0)))
    if worst > tol * max(1.0, values.shape[-1] ** 0.5):
        raise ValueError(
            f"{name} must sum to 1 along its last axis (found a sum off by {worst:.3g})"
        )


def check_weights(x, name: str) -> None:
    """Raise when concrete weights [..., m] are negative, non-finite, or all zero."""
    check_finite(x, name)
    if not is_concrete(x):
        return
    values = np.asarray(x)
    if values.min() < 0:
        raise ValueError(f"{name} must be nonnegative (min {values.min():.3g})")
    with np.errstate(over="ignore"):
        sums = values.sum(axis=-1)
    tiny = np.finfo(values.dtype).tiny  # XLA on CPU flushes subnormals to zero
    if np.any(sums < tiny):
        raise ValueError(f"{name} must not be all zero (or sum below {tiny:.3g})")
    if not np.all(np.isfinite(sums)):
        raise ValueError(f"{name} must have a finite sum (it overflows {values.dtype}); rescale")


#: The largest count accepted (JAX's default int32 holds it, so counts stay exact when traced).
MAX_COUNT = 2**31 - 1


def check_count(k, name: str, minimum: int = 1) -> int | jax.Array:
    """``k`` as a Python int in ``[minimum, MAX_COUNT]``; a tracer is returned unchanged."""
    if isinstance(k, jax.core.Tracer):
        return k
    if isinstance(k, bool | np.bool_):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {k!r}")
    try:
        value = operator.index(k)
    except TypeError:
        arr = np.asarray(k)
        if arr.ndim != 0 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must be an integer >= {minimum}, got {k!r}") from None
        value = int(arr)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    if value > MAX_COUNT:
        raise ValueError(f"{name} must be an integer <= 2**31 - 1, got {value}")
    return value


def static_count(k, name: str, minimum: int = 1) -> int:
    """Like :func:`check_count` but the value must be known at trace time (it sets a shape)."""
    if isinstance(k, jax.core.Tracer):
        raise ValueError(f"{name} must be a Python int here (it sets an array shape), got a tracer")
    return check_count(k, name, minimum)
