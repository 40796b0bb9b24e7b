"""Products in full float32 precision on every backend.

By default XLA may compute float32 dot products with reduced-precision inputs: TensorFloat32 on
recent NVIDIA GPUs, bfloat16 passes on TPU (JAX's "Matmul precision" documentation). Payoffs are
compared to 1e-7, so every product here asks for ``Precision.HIGHEST``; on CPU it changes nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PRECISION = jax.lax.Precision.HIGHEST


def dot(a, b):
    """``a @ b`` in full precision. Example: ``dot(jnp.ones((2, 3)), jnp.ones(3))`` is [3, 3]."""
    return jnp.matmul(a, b, precision=PRECISION)


def tensordot(a, b, axes=1):
    """``jnp.tensordot`` in full precision."""
    return jnp.tensordot(a, b, axes=axes, precision=PRECISION)


def einsum(spec: str, *operands):
    """``jnp.einsum`` in full precision."""
    return jnp.einsum(spec, *operands, precision=PRECISION)
