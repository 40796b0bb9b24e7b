"""Checkpoints: a pytree of arrays saved atomically as a NumPy ``.npz``, loaded back checked.

A long run saves its state every few thousand steps; if it is stopped (Ctrl-C, a killed job, a
lost machine) the same call resumes from the last checkpoint and ends where an uninterrupted run
ends. The file is written beside its destination and renamed over it, so a reader never sees a
half-written checkpoint. Metadata (the run's configuration and a fingerprint of its inputs) is
stored with the arrays and must match on load, so a checkpoint is never resumed into another run.

Example:
    >>> import tempfile, os, jax.numpy as jnp
    >>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
    >>> save_checkpoint(path, {"step": jnp.asarray(3)}, {"method": "hedge"})
    >>> int(load_checkpoint(path, {"step": jnp.asarray(0)}, {"method": "hedge"})["step"])
    3
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import jax
import numpy as np

__all__ = ["save_checkpoint", "load_checkpoint", "fingerprint"]

_METADATA_KEY = "__metadata__"


def fingerprint(tree) -> str:
    """A short hash of a pytree's structure and array contents (identifies a run's inputs)."""
    leaves, treedef = jax.tree.flatten(tree)
    digest = hashlib.blake2b(str(treedef).encode(), digest_size=16)
    for leaf in leaves:
        array = np.asarray(leaf)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def save_checkpoint(path, tree, metadata: dict) -> None:
    """Write ``tree``'s leaves and ``metadata`` (JSON-able) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    leaves = jax.tree.leaves(jax.device_get(tree))
    arrays = {f"leaf_{i:04d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    arrays[_METADATA_KEY] = np.asarray(json.dumps(metadata, sort_keys=True))
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def load_checkpoint(path, like, metadata: dict):
    """The pytree saved at ``path``, shaped like ``like``; ``ValueError`` on any mismatch.

    ``metadata`` must equal what was saved (same configuration, same inputs), and every leaf
    must have the shape and dtype of the corresponding leaf of ``like``.
    """
    leaves_like, treedef = jax.tree.flatten(like)
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        reason = type(err).__name__
        raise ValueError(f"checkpoint {path}: not a readable .npz checkpoint ({reason})") from err
    saved = json.loads(str(arrays.pop(_METADATA_KEY, "null")))
    expected = json.loads(json.dumps(metadata, sort_keys=True))
    if saved != expected:
        differ = sorted(
            key
            for key in set(saved or {}) | set(expected)
            if (saved or {}).get(key) != expected.get(key)
        )
        raise ValueError(
            f"checkpoint {path} belongs to another run (differs in: {', '.join(differ)}); "
            "delete it or use another path"
        )
    if len(arrays) != len(leaves_like):
        raise ValueError(
            f"checkpoint {path}: holds {len(arrays)} arrays, this run has {len(leaves_like)}"
        )
    leaves = []
    for i, reference in enumerate(leaves_like):
        array = arrays[f"leaf_{i:04d}"]
        reference = np.asarray(reference)
        if array.shape != reference.shape or array.dtype != reference.dtype:
            raise ValueError(
                f"checkpoint {path}: array {i} has {array.dtype}{list(array.shape)}, this run "
                f"expects {reference.dtype}{list(reference.shape)}"
            )
        leaves.append(jax.numpy.asarray(array))
    return jax.tree.unflatten(treedef, leaves)
