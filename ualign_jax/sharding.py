"""Prompts and users sharded over devices and processes with ``jax.sharding``.

Two mesh axes: ``"prompts"`` (the leading prompt axis; each device solves its own prompts and
nothing is communicated but the results) and ``"users"`` (the user axis of a population; each
device holds ``m / d`` users and the sums over users become XLA all-reduces, inserted by GSPMD
when the public functions run under ``jit`` on the sharded arrays). Every public function maps
over prompt axes with ``vmap`` inside ``jit``, so sharded inputs need no other change. Build
populations first (their constructors check and sort on the host), then place them with
:func:`shard_prompts` / :func:`shard_users`.

With several processes (``jax.distributed``, one per host), the same calls work when every
process holds the same full arrays, and with ``process_local=True`` when each holds only its
own slice (its prompts, or its users): the global arrays are then assembled with
``jax.make_array_from_process_local_data``. See README "Beyond one machine" and
``docs/theory.md`` §8.

Example:
    >>> import jax, jax.numpy as jnp, ualign_jax as ua
    >>> pop = ua.RankingPopulation(jnp.ones((2, 3, 4)))          # 2 prompts
    >>> sharded = shard_prompts(pop, prompt_mesh())
    >>> ua.response_payoffs(sharded, jnp.full((2, 4), 0.25), 2).shape
    (2, 4)
    >>> by_user = shard_users(ua.RankingPopulation(jnp.ones((3, 4))), user_mesh())
    >>> ua.response_payoffs(by_user, jnp.full(4, 0.25), 2).shape
    (4,)
"""

from __future__ import annotations

import os

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._numerics import USER_BLOCK, user_chunk_size
from .population import UserTable, unchecked_replace

__all__ = [
    "PROMPT_AXIS",
    "USER_AXIS",
    "prompt_mesh",
    "user_mesh",
    "shard_prompts",
    "shard_users",
    "initialize_distributed",
    "gather",
]

#: The name of the mesh axis prompts are sharded over.
PROMPT_AXIS = "prompts"

#: The name of the mesh axis users are sharded over.
USER_AXIS = "users"


def _device_list(devices):
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    return devices


def prompt_mesh(devices=None) -> Mesh:
    """A one-axis mesh named ``"prompts"`` over ``devices`` (default: every device JAX sees)."""
    return Mesh(np.asarray(_device_list(devices)), (PROMPT_AXIS,))


def user_mesh(devices=None, prompts: int | None = None) -> Mesh:
    """A mesh with a ``"users"`` axis over ``devices`` (default: every device, all processes).

    With ``prompts`` given, a 2-D mesh ``("prompts", "users")`` of shape ``[prompts, d /
    prompts]``: prompts split ``prompts`` ways, users over the rest. Devices are taken in
    ``jax.devices()`` order (process by process), so with ``prompts`` equal to the number of
    processes each process holds its own prompts and every user of them.

    Example:
        >>> user_mesh().axis_names
        ('users',)
    """
    devices = _device_list(devices)
    if prompts is None:
        return Mesh(np.asarray(devices), (USER_AXIS,))
    if not isinstance(prompts, int) or prompts < 1 or len(devices) % prompts:
        raise ValueError(f"prompts must be an integer >= 1 dividing {len(devices)}, got {prompts}")
    grid = np.asarray(devices).reshape(prompts, -1)
    return Mesh(grid, (PROMPT_AXIS, USER_AXIS))


def _axis_size(mesh: Mesh, axis: str) -> int:
    return mesh.shape[axis] if axis in mesh.axis_names else 1


def _process_slices(mesh: Mesh, axis: str) -> int:
    """How many process-held slices the mesh's ``axis`` splits into (1: every process holds it
    all)."""
    if axis not in mesh.axis_names:
        return 1
    line = np.moveaxis(mesh.devices, mesh.axis_names.index(axis), 0).reshape(mesh.shape[axis], -1)
    owners = [d.process_index for d in line[:, 0]]
    return len({(i, p) for i, p in enumerate(owners) if i == 0 or owners[i - 1] != p})


def _place(array, sharding: NamedSharding, process_local: bool, global_shape=None):
    if process_local:
        return jax.make_array_from_process_local_data(sharding, np.asarray(array), global_shape)
    return jax.device_put(array, sharding)


def shard_prompts(tree, mesh: Mesh | None = None, process_local: bool = False):
    """Place every array in ``tree`` with its leading (prompt) axis split over ``mesh``.

    The number of prompts must be a multiple of the mesh's ``"prompts"`` size (pad with copies
    of a prompt otherwise). Other mesh axes (``"users"``) replicate. Static fields and non-array
    leaves are left alone.

    Args:
        tree: a population, policy, ``ProductMixture`` or any pytree of arrays whose leaves all
            start with the prompt axis.
        mesh: a mesh with a ``"prompts"`` axis; default :func:`prompt_mesh` over all devices.
        process_local: each process passes only its own prompts (a contiguous block, in
            process order); the global prompt axis is their concatenation.
    """
    mesh = prompt_mesh() if mesh is None else mesh
    if PROMPT_AXIS not in mesh.axis_names:
        raise ValueError(f"mesh must have an axis named {PROMPT_AXIS!r}, got {mesh.axis_names}")
    size = mesh.shape[PROMPT_AXIS]
    local = _process_slices(mesh, PROMPT_AXIS) if process_local else 1
    sharding = NamedSharding(mesh, PartitionSpec(PROMPT_AXIS))

    def place(leaf):
        if not hasattr(leaf, "shape"):
            return leaf
        if leaf.ndim == 0 or (leaf.shape[0] * local) % size:
            raise ValueError(
                f"tree has an array of shape {tuple(leaf.shape)}: its leading prompt axis must "
                f"be a multiple of the mesh's {size // local} devices per process slice"
            )
        return _place(leaf, sharding, process_local)

    return jax.tree.map(place, tree)


def user_chunk_for(pop, devices: int, num_users: int | None = None) -> int:
    """Users per chunk for ``pop`` (``num_users`` in all) sharded over ``devices``: a multiple
    of ``devices``.

    Each device gets ``chunk / devices`` users of every chunk, a multiple of ``USER_BLOCK`` once
    there are more than that (so the blocked user sums reshape without moving data), and the
    pairwise ranking engine's chunks stay within one ``USER_SLICE`` product (its static slices
    of a sharded axis would move data between devices).
    """
    target = user_chunk_size(pop)
    num_users = pop.num_users if num_users is None else num_users
    cap = pop.sharded_chunk_cap(num_users, devices)
    if cap is not None:
        target = min(target, cap)
    per_device = -(-num_users // devices)
    if per_device <= USER_BLOCK:
        return per_device * devices
    cap = max(USER_BLOCK, (target // devices) // USER_BLOCK * USER_BLOCK)
    num_chunks = -(-num_users // (cap * devices))
    per_device = -(-num_users // (num_chunks * devices))
    return -(-per_device // USER_BLOCK) * USER_BLOCK * devices


def _pad_users(pop, num_users: int):
    """``pop`` with copies of its last user, weight 0, appended up to ``num_users`` users."""
    extra = num_users - pop.num_users
    if extra == 0:
        return pop
    names = [name for name in pop.user_axes if getattr(pop, name) is not None]

    def pad(name):
        array = np.asarray(getattr(pop, name))
        axis = array.ndim + pop.user_axes[name]
        last = np.take(array, [-1], axis=axis)
        fill = np.zeros_like(last) if name == "weights" else last
        return np.concatenate([array, np.repeat(fill, extra, axis=axis)], axis=axis)

    return eqx.tree_at(lambda p: [getattr(p, n) for n in names], pop, [pad(n) for n in names])


def shard_users(pop, mesh: Mesh | None = None, process_local: bool = False, user_axis: int = -2):
    """Split the user axis of ``pop`` over the mesh's ``"users"`` axis (and its prompt axis over
    ``"prompts"``, if the mesh has one).

    Each device then holds ``m / d`` users of every array; payoffs, metrics and ``solve`` add the
    devices' partial sums over users with all-reduces (docs/theory.md §8: a sum over users is
    linear, so any split gives the same value up to rounding). When ``m`` is not a multiple of the
    chunk layout the padded population carries copies of its last user with weight 0 (the values
    are unchanged; ``num_users`` grows). The population's ``user_chunk`` is set so that chunks
    are strided over users and every device reads only its own users (see
    ``payoffs.chunked_user_sum``).

    Args:
        pop: a population with a user table (``RankingPopulation``, ``PlackettLucePopulation``;
            prompt axes allowed), or an
            array of judge scores ``[..., U, G]`` (then ``U`` must be a multiple of the mesh's
            users and is not padded).
        mesh: a mesh with a ``"users"`` axis; default :func:`user_mesh` over all devices.
        process_local: each process passes only its own users (the users axis of the mesh split
            over processes, in process order) or its own prompts (a 2-D mesh with one process
            per prompt slice). Every process must pass the same number of users. Each
            population's weights were normalised on its own, so each process's users get an
            equal share of the total weight (``1 / processes``); scale the populations' weights
            before sharding if the shares differ (build each with unnormalised weights and
            multiply ``weights`` by its share).
        user_axis: the user axis of an array ``pop`` (ignored for populations).

    Example:
        >>> import jax.numpy as jnp, ualign_jax as ua
        >>> pop = shard_users(ua.RankingPopulation(jnp.ones((5, 3))), user_mesh())
        >>> pop.num_users % len(jax.devices())
        0
    """
    mesh = user_mesh() if mesh is None else mesh
    if USER_AXIS not in mesh.axis_names:
        raise ValueError(f"mesh must have an axis named {USER_AXIS!r}, got {mesh.axis_names}")
    devices = mesh.shape[USER_AXIS]
    prompt_size = _axis_size(mesh, PROMPT_AXIS)
    user_slices = _process_slices(mesh, USER_AXIS) if process_local else 1
    prompt_slices = _process_slices(mesh, PROMPT_AXIS) if process_local else 1

    def spec(ndim: int, axis: int, batched: bool):
        parts = [None] * ndim
        parts[ndim + axis] = USER_AXIS
        if PROMPT_AXIS in mesh.axis_names and batched:
            parts[0] = PROMPT_AXIS
        return NamedSharding(mesh, PartitionSpec(*parts))

    def check_prompts(shape, batched: bool):
        if PROMPT_AXIS in mesh.axis_names and prompt_size > 1:
            if not batched or (shape[0] * prompt_slices) % prompt_size:
                raise ValueError(
                    f"pop has shape {tuple(shape)}: with a {prompt_size}-way prompt axis its "
                    f"leading prompt axis must be a multiple of {prompt_size // prompt_slices}"
                )

    def global_shape(shape, axis: int):
        shape = list(shape)
        shape[len(shape) + axis] *= user_slices
        if PROMPT_AXIS in mesh.axis_names and len(shape) and prompt_slices > 1:
            shape[0] *= prompt_slices
        return tuple(shape)

    if not isinstance(pop, UserTable):
        if not hasattr(pop, "shape") or pop.ndim < 2:
            raise ValueError(
                "pop must be a population with a user table (RankingPopulation, "
                "PlackettLucePopulation, another ualign_jax.population.UserTable) or an array of "
                f"scores [..., U, G], got {type(pop).__name__}"
            )
        axis = user_axis if user_axis < 0 else user_axis - pop.ndim
        if not -pop.ndim <= axis < 0 or (pop.shape[axis] * user_slices) % devices:
            raise ValueError(
                f"scores of shape {tuple(pop.shape)}: user_axis={user_axis} must name an axis "
                f"whose length is a multiple of the mesh's {devices // user_slices} user devices "
                "per process slice"
            )
        batched = pop.ndim + axis > 0
        check_prompts(pop.shape, batched)
        return _place(
            pop, spec(pop.ndim, axis, batched), process_local, global_shape(pop.shape, axis)
        )

    batched = bool(pop.batch_shape)
    check_prompts(pop.batch_shape, batched)
    local_users = pop.num_users
    if process_local and user_slices > 1:
        from jax.experimental import multihost_utils

        counts = multihost_utils.process_allgather(np.int64(local_users))
        if len(set(np.asarray(counts).ravel().tolist())) != 1:
            raise ValueError(
                f"process_local: every process must pass the same number of users, got "
                f"{np.asarray(counts).ravel().tolist()}"
            )
    # Chunks tile the global users exactly, each holding chunk / devices users per device (a
    # multiple of devices, hence of the process slices: every process pads to the same size).
    global_users = local_users * user_slices
    chunk = user_chunk_for(pop, devices, global_users)
    padded = -(-global_users // chunk) * chunk
    pop = unchecked_replace(
        _pad_users(pop, padded // user_slices), user_chunk=chunk, strided_users=True
    )
    names = [name for name in pop.user_axes if getattr(pop, name) is not None]
    placed = []
    for name in names:
        array = getattr(pop, name)
        if name == "weights" and user_slices > 1:
            array = np.asarray(array) / user_slices
        sharding = spec(array.ndim, pop.user_axes[name], batched)
        shape = global_shape(array.shape, pop.user_axes[name])
        placed.append(_place(array, sharding, process_local, shape))
    return eqx.tree_at(lambda p: [getattr(p, n) for n in names], pop, placed)


#: Environment variables that show a cluster ``jax.distributed.initialize()`` can read by itself.
CLUSTER_VARIABLES = (
    "JAX_COORDINATOR_ADDRESS",
    "SLURM_JOB_ID",
    "OMPI_COMM_WORLD_SIZE",
    "TPU_WORKER_HOSTNAMES",
    "CLOUD_TPU_TASK_ID",
    "MEGASCALE_COORDINATOR_ADDRESS",
)


def _already_initialized() -> bool:
    try:
        from jax._src import distributed  # noqa: PLC0415

        return distributed.global_state.client is not None
    except (ImportError, AttributeError):  # pragma: no cover - JAX internals moved
        return False


def initialize_distributed(environ=None) -> int:
    """Join this process to a ``jax.distributed`` cluster described by the environment.

    ``jax.distributed.initialize()`` reads the coordinator and process ids from a SLURM job, an
    Open MPI launch, a Cloud TPU pod or ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` /
    ``JAX_PROCESS_ID``. Call it before any other JAX work; a process already joined is left as it
    is. Returns the number of processes.

    Raises:
        ValueError: when none of those variables is set (a process started outside a cluster
            job).
    """
    environ = os.environ if environ is None else environ
    if not _already_initialized():
        found = [name for name in CLUSTER_VARIABLES if environ.get(name)]
        if not found:
            raise ValueError(
                "no cluster found in the environment (set "
                "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID, or run under "
                "SLURM, Open MPI or a TPU pod)"
            )
        jax.distributed.initialize()
    return jax.process_count()


def gather(tree):
    """``tree`` with every array readable on this process: arrays spread over processes are
    gathered whole (``multihost_utils.process_allgather``); others are left as they are."""
    from jax.experimental import multihost_utils  # noqa: PLC0415

    def whole(leaf):
        if isinstance(leaf, jax.Array) and not (
            leaf.is_fully_addressable or leaf.is_fully_replicated
        ):
            return multihost_utils.process_allgather(leaf, tiled=True)
        return leaf

    return jax.tree.map(whole, tree)
