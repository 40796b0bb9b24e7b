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


#: Rows of utilities checked at a time by :func:`cast_keeping_ties` (bounds its extra memory).
_CAST_CHECK_ENTRIES = 2**22


def cast_keeping_ties(values: np.ndarray, dtype, source: str) -> jnp.ndarray:
    """``values`` ``[..., m, n]`` as a ``dtype`` array; refuses a cast that changes a user's ties.

    Rounding to ``dtype`` (and the flush of subnormals to zero that ranking populations apply)
    is monotone, so it can only *merge* values: two
    responses a user tells apart in the file would tie, and every win rate involving them
    would be silently wrong (docs/theory.md §8). Sorting each row, a merge shows as adjacent
    values that differ before the cast and are equal after it; overflow to ``inf`` is refused
    too. Values that are already ties, and values a cast merely rounds, are accepted.
    """
    target = np.dtype(jax.dtypes.canonicalize_dtype(dtype))
    values = np.asarray(values)
    if values.size == 0 or values.ndim < 2:  # nothing to tie; the caller reports the shape
        return jnp.asarray(values, dtype=target)
    flat = values.reshape(-1, values.shape[-1])  # users of every prompt, one row each
    tiny = np.finfo(target).tiny
    rows = max(1, _CAST_CHECK_ENTRIES // max(values.shape[-1], 1))
    for start in range(0, flat.shape[0], rows):
        block = flat[start : start + rows]
        with np.errstate(over="ignore", invalid="ignore"):
            cast = block.astype(target)
        cast = np.where(np.abs(cast) < tiny, np.zeros((), target), cast)
        overflow = np.isfinite(block) & ~np.isfinite(cast)
        if overflow.any():
            i, j = np.argwhere(overflow)[0]
            raise ValueError(
                f"{source}: utility {block[i, j]!r} of user {start + i}, response {j} is beyond "
                f"the range of {target}; rescale the utilities or load with dtype=float64"
            )
        order = np.argsort(block, axis=-1, kind="stable")
        before = np.take_along_axis(block, order, axis=-1)
        after = np.take_along_axis(cast, order, axis=-1)
        merged = (before[:, 1:] != before[:, :-1]) & (after[:, 1:] == after[:, :-1])
        if merged.any():
            i, j = np.argwhere(merged)[0]
            a, b = order[i, j], order[i, j + 1]
            if target == np.float64:
                advice = "these values are subnormal; rescale the utilities"
            else:
                advice = (
                    "load in float64 (dtype=float64 with jax_enable_x64 on; CLI: --x64) "
                    "or rescale the utilities"
                )
            raise ValueError(
                f"{source}: user {start + i} gives responses {min(a, b)} and {max(a, b)} the "
                f"distinct utilities {before[i, j]!r} and {before[i, j + 1]!r}, which {target} "
                f"rounds to the same value {after[i, j]!r}: the cast would create a tie that "
                f"is not in the data; {advice}"
            )
    return jnp.asarray(values, dtype=target)
