"""Prompts sharded over devices with ``jax.sharding``: one mesh axis, the leading prompt axis.

Every public function maps over leading prompt axes with ``vmap`` inside ``jit``, so a
population (and policy) whose prompt axis is sharded over a mesh runs on all its devices with
no further change: XLA partitions the program along that axis (each device solves its own
prompts; nothing is communicated but the final results). Build populations first (their
constructors sort on the host), then place them with :func:`shard_prompts`.

Example:
    >>> import jax, jax.numpy as jnp, ualign_jax as ua
    >>> pop = ua.RankingPopulation(jnp.ones((2, 3, 4)))          # 2 prompts
    >>> sharded = shard_prompts(pop, prompt_mesh())
    >>> ua.response_payoffs(sharded, jnp.full((2, 4), 0.25), 2).shape
    (2, 4)
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["PROMPT_AXIS", "prompt_mesh", "shard_prompts"]

#: The name of the mesh axis prompts are sharded over.
PROMPT_AXIS = "prompts"


def prompt_mesh(devices=None) -> Mesh:
    """A one-axis mesh named ``"prompts"`` over ``devices`` (default: every device JAX sees)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    return Mesh(np.asarray(devices), (PROMPT_AXIS,))


def shard_prompts(tree, mesh: Mesh | None = None):
    """Place every array in ``tree`` with its leading (prompt) axis split over ``mesh``.

    The number of prompts must be a multiple of the mesh size (pad with copies of a prompt
    otherwise). Static fields and non-array leaves are left alone. With several processes
    (``jax.distributed``), build the global arrays with
    ``jax.make_array_from_process_local_data`` on the same mesh instead.

    Args:
        tree: a population, policy, ``ProductMixture`` or any pytree of arrays whose leaves all
            start with the prompt axis.
        mesh: a mesh with a ``"prompts"`` axis; default :func:`prompt_mesh` over all devices.
    """
    mesh = prompt_mesh() if mesh is None else mesh
    if PROMPT_AXIS not in mesh.axis_names:
        raise ValueError(f"mesh must have an axis named {PROMPT_AXIS!r}, got {mesh.axis_names}")
    size = mesh.shape[PROMPT_AXIS]
    sharding = NamedSharding(mesh, PartitionSpec(PROMPT_AXIS))

    def place(leaf):
        if not hasattr(leaf, "shape"):
            return leaf
        if leaf.ndim == 0 or leaf.shape[0] % size:
            raise ValueError(
                f"tree has an array of shape {tuple(leaf.shape)}: its leading prompt axis must "
                f"be a multiple of the mesh's {size} devices"
            )
        return jax.device_put(leaf, sharding)

    return jax.tree.map(place, tree)
