"""Checks at the public boundary: clear errors that name the argument, one tolerance table.

Every module validates through this one. Value checks (finiteness, signs, simplex) raise a
``ValueError`` on concrete arrays; on traced arrays (inside ``jax.jit``, ``vmap``, ``grad``) the
functions that return their argument attach the same check with ``eqx.error_if``, so it fails at
run time instead of vanishing. How far a value may stray is read from :data:`SIMPLEX_TOLERANCE`
(per dtype) and :data:`ITERATE_TOLERANCE`, nowhere else.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Collection

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

#: How far a probability vector's entries may fall below 0, and (times ``max(1, √n)``) its sum
#: stray from 1, by float width in bits. Float32 sums of n entries carry about √n·6e-8 rounding;
#: 1e-4 also admits a float32 policy written to text with 7 digits. Float64: 1e-8.
SIMPLEX_TOLERANCE = {32: 1e-4, 64: 1e-8}

#: The solver's test that an iterate is still a policy (docs/theory.md §8). Loose on purpose: it
#: separates a run that lost mass or went non-finite from rounding, whatever the dtype.
ITERATE_TOLERANCE = 1e-3


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


def check_finite(x, name: str):
    """``x`` checked to hold no NaN or infinity; returns ``x`` (traced: with an
    ``eqx.error_if``, which takes effect only through the return value)."""
    if not is_concrete(x):
        return eqx.error_if(x, ~jnp.all(jnp.isfinite(x)), f"{name} must be finite")
    if not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"{name} must be finite, found NaN or inf")
    return x


def simplex_tolerance(dtype) -> float:
    """:data:`SIMPLEX_TOLERANCE` for ``dtype`` (half precision and integers: the float32 entry).

    Example:
        >>> simplex_tolerance(jnp.float32)
        0.0001
    """
    dtype = jnp.dtype(dtype)
    bits = jnp.finfo(dtype).bits if jnp.issubdtype(dtype, jnp.floating) else 32
    return SIMPLEX_TOLERANCE[64 if bits > 32 else 32]


def off_simplex(x, tol: float, xp=jnp):
    """True where ``x`` ``[..., n]`` is not a probability vector within ``tol``: an entry below
    ``−tol``, a sum off 1 by more than ``tol·max(1, √n)``, or a non-finite entry (NumPy or
    jax.numpy through ``xp``; reduces the last axis)."""
    slack = tol * max(1.0, math.sqrt(x.shape[-1]))
    bad_sum = ~(xp.abs(xp.sum(x, axis=-1) - 1.0) <= slack)  # NaN sums count as bad
    return bad_sum | xp.any(~(x >= -tol), axis=-1) | xp.any(~xp.isfinite(x), axis=-1)


def check_simplex(x, name: str):
    """``x`` [..., n] checked to be a probability vector along its last axis; returns ``x``.

    Concrete: a ``ValueError`` naming ``name``. Traced: the returned array carries an
    ``eqx.error_if`` with the same test (use the return value for it to take effect).
    """
    tol = simplex_tolerance(x.dtype)
    if not is_concrete(x):
        return eqx.error_if(x, jnp.any(off_simplex(x, tol)), f"{name} must lie on the simplex")
    check_finite(x, name)
    values = np.asarray(x, dtype=np.float64)
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
    return x


def check_real(
    x,
    name: str,
    low=None,
    high=None,
    *,
    low_open=False,
    high_open=False,
    none_ok=False,
    static=False,
):
    """A real scalar in ``[low, high]`` (open ends as asked; infinite only for a closed
    ``high = inf``) as a float, else a ``ValueError`` naming ``name``. ``None`` passes when
    ``none_ok``. A scalar tracer is returned as is (its value is not known here), unless
    ``static``: then the value configures the program and a tracer is refused.

    The message says "a positive number" for ``(0, ∞)``, "a nonnegative number" for ``[0, ∞)``,
    else the interval.

    Example:
        >>> check_real(1e-6, "tol", 0.0, low_open=True)
        1e-06
    """
    if x is None and none_ok:
        return None
    if low == 0 and high is None:
        wanted = "a positive number" if low_open else "a nonnegative number"
    elif low is None and high is None:
        wanted = "a finite number"
    else:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        wanted = f"a number in {interval}"
    wanted += " or None" if none_ok else ""
    if isinstance(x, jax.core.Tracer):
        if static:
            raise ValueError(
                f"{name} must be a concrete number (it configures the program), got a tracer"
            )
        if jnp.ndim(x) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(x)}")
        return x
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 0 or arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be {wanted}, got {x!r}")
    value = float(arr)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    infinite_ok = high == math.inf and not high_open  # [.., inf] admits inf itself
    if math.isnan(value) or (math.isinf(value) and not infinite_ok) or too_low or too_high:
        raise ValueError(f"{name} must be {wanted}, got {x!r}")
    return value


def check_choice(value, choices: Collection[str], name: str) -> str:
    """``value`` if it is one of ``choices``, else a ``ValueError`` listing them.

    Example:
        >>> check_choice("best", ("best", "plackett_luce"), "choice")
        'best'
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_weights(x, name: str):
    """Weights ``[..., m]`` checked to be finite, nonnegative and not all zero; returns ``x``
    (traced: with an ``eqx.error_if``, which takes effect only through the return value)."""
    if not is_concrete(x):
        bad = ~jnp.all(jnp.isfinite(x)) | jnp.any(x < 0) | jnp.any(jnp.sum(x, axis=-1) <= 0)
        return eqx.error_if(x, bad, f"{name} must be finite, nonnegative and not all zero")
    check_finite(x, name)
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
    return x


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
