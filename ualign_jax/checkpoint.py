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
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ._safe_io import open_npz

__all__ = ["save_checkpoint", "load_checkpoint", "fingerprint"]

_METADATA_KEY = "__metadata__"
_MISSING = object()
#: Longest metadata record (characters of JSON) a checkpoint may hold.
MAX_METADATA_CHARS = 2**20
#: Held while a checkpoint is written: whoever takes it (a Ctrl-C handler removing temporaries)
#: knows that no half-written file exists and none is started until it lets go.
SAVE_LOCK = threading.Lock()


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
    with SAVE_LOCK:
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


def _canonical(value) -> str:
    """``value`` as canonical JSON text (equal only if equal with the same JSON types)."""
    return "<missing>" if value is _MISSING else json.dumps(value, sort_keys=True)


def _unreadable(path, err: ValueError) -> ValueError:
    detail = str(err)
    prefix = f"{path}: "
    detail = detail[len(prefix) :] if detail.startswith(prefix) else detail
    return ValueError(f"checkpoint {path}: not a readable .npz checkpoint ({detail})")


def _read_metadata(path, archive):
    """The saved metadata: a 0-d text array holding a JSON object (size checked first)."""
    if _METADATA_KEY not in archive.keys:
        raise ValueError(f"checkpoint {path}: no {_METADATA_KEY} record (not a checkpoint)")
    shape, dtype = archive.header(_METADATA_KEY)
    if shape != () or dtype.kind != "U" or dtype.itemsize // 4 > MAX_METADATA_CHARS:
        raise ValueError(
            f"checkpoint {path}: {_METADATA_KEY} must be a text record of at most "
            f"{MAX_METADATA_CHARS:,} characters, got {dtype}{list(shape)}"
        )
    text = str(archive.array(_METADATA_KEY)[()])
    try:
        saved = json.loads(text)
    except RecursionError:
        raise ValueError(f"checkpoint {path}: metadata nested too deeply") from None
    except ValueError as err:
        raise ValueError(f"checkpoint {path}: metadata is not valid JSON ({err})") from err
    if not isinstance(saved, dict):
        raise ValueError(
            f"checkpoint {path}: metadata must be a JSON object, got {type(saved).__name__}"
        )
    return saved


def load_checkpoint(path, like, metadata: dict, check: Callable[[Any], None] | None = None):
    """The pytree saved at ``path``, shaped like ``like``; ``ValueError`` on any mismatch.

    Every field is validated before the run may resume from it: ``metadata`` must equal what
    was saved (same configuration, same inputs; a JSON object); the archive must hold exactly
    one array per leaf of ``like``, each with its shape and dtype (checked from the headers,
    before any data is read); floating arrays must be finite; and ``check(tree)``, when given,
    may refuse values no run could have reached (e.g. a step count beyond the run's steps) by
    raising ``ValueError``. Damaged files (bad zip headers, unknown compression, encryption,
    truncation, huge declared shapes) are refused the same way; the message names the file.
    """
    leaves_like, treedef = jax.tree.flatten(like)
    expected = json.loads(json.dumps(metadata, sort_keys=True))
    wanted = [f"leaf_{i:04d}" for i in range(len(leaves_like))]
    try:
        with open_npz(path) as archive:
            saved = _read_metadata(path, archive)
            if _canonical(saved) != _canonical(expected):  # types too: 20.0 is not 20
                differ = sorted(
                    key
                    for key in set(saved) | set(expected)
                    if _canonical(saved.get(key, _MISSING))
                    != _canonical(expected.get(key, _MISSING))
                )
                raise ValueError(
                    f"checkpoint {path} belongs to another run (differs in: {', '.join(differ)}); "
                    "delete it or use another path"
                )
            stored = sorted(set(archive.keys) - {_METADATA_KEY})
            if stored != wanted:
                unknown = sorted(set(stored) - set(wanted))
                missing = sorted(set(wanted) - set(stored))
                raise ValueError(
                    f"checkpoint {path}: holds {len(stored)} arrays, this run has "
                    f"{len(wanted)} (missing: {', '.join(missing[:4]) or 'none'}; unexpected: "
                    f"{', '.join(repr(k) for k in unknown[:4]) or 'none'})"
                )
            leaves = []
            for i, (key, reference) in enumerate(zip(wanted, leaves_like, strict=True)):
                reference = np.asarray(reference)
                shape, dtype = archive.header(key)
                if shape != reference.shape or dtype != reference.dtype:
                    raise ValueError(
                        f"checkpoint {path}: array {i} has {dtype}{list(shape)}, this run "
                        f"expects {reference.dtype}{list(reference.shape)}"
                    )
                array = archive.array(key)
                if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                    raise ValueError(f"checkpoint {path}: array {i} holds non-finite values")
                leaves.append(array)
    except FileNotFoundError:
        raise
    except ValueError as err:
        if str(err).startswith(f"checkpoint {path}"):
            raise
        raise _unreadable(path, err) from err
    tree = jax.tree.unflatten(treedef, leaves)
    if check is not None:
        try:
            check(tree)
        except ValueError as err:
            raise ValueError(f"checkpoint {path}: {err}; delete it or use another path") from err
    return jax.tree.unflatten(treedef, [jax.numpy.asarray(leaf) for leaf in leaves])
