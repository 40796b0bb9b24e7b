"""Reading and writing the files ``ualign`` works with, each format's reader beside its writer.

* Populations: :func:`load_population` reads a PrefLib file (:mod:`ualign_jax.preflib`) or an
  ``.npz`` archive of ``utilities`` or ``log_weights`` (docs/theory.md §6).
* Policies: :func:`load_policy_file` reads probabilities from ``.json``, ``.npy`` or ``.npz``;
  :func:`write_policy_file` writes the ``policy.json`` that ``ualign solve`` and ``ualign train``
  leave, and :func:`load_policy_record` reads back what else such a file records (the k and
  method it was solved for).
* Correlated k-output policies (laws over k-tuples, docs/theory.md §1): :func:`load_k_output_file`
  reads ``.json`` ``{"tuples": [[0, 3], ...], "weights": [...], "names": [...]}`` or ``.npz``
  (``tuples``, optional ``weights`` and ``names``) as a :class:`~ualign_jax.KOutputPolicy`;
  :func:`write_k_output_file` writes either; :func:`holds_k_output` tells the two policy kinds
  apart.

Errors are ``ValueError("<path>: <what is wrong>")``; a missing file is ``FileNotFoundError``.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from ._safe_io import open_npz, read_json, read_npy
from ._validation import cast_keeping_ties, float_dtype_arg, off_simplex, simplex_tolerance
from .plackett_luce import default_max_spread, spread_limit, spread_of
from .policies import KOutputPolicy
from .populations import PlackettLucePopulation, RankingPopulation
from .preflib import (
    MAX_ALTERNATIVES,
    MAX_ENTRIES,
    PREFLIB_SUFFIXES,
    as_path,
    load_preflib,
    short_repr,
)

__all__ = [
    "K_OUTPUT_SUFFIXES",
    "MAX_POLICY_BYTES",
    "POLICY_SUFFIXES",
    "holds_k_output",
    "load_k_output_file",
    "load_policy_file",
    "load_policy_record",
    "load_population",
    "write_k_output_file",
    "write_policy_file",
]


def _unique_names(names: np.ndarray, path) -> list[str]:
    """The ``.npz`` ``names`` as strings; empty or repeated names are a ``ValueError``."""
    result: list[str] = []
    first: dict[str, int] = {}
    for i, name in enumerate(names.tolist()):
        if isinstance(name, bytes):
            try:
                name = name.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path}: 'names'[{i}] is not UTF-8 text") from None
        name = str(name)
        if not name.strip():
            raise ValueError(f"{path}: 'names'[{i}] is empty; every response needs a name")
        if name in first:
            raise ValueError(
                f"{path}: 'names'[{first[name]}] and 'names'[{i}] are both {short_repr(name)}; "
                "names must be unique"
            )
        first[name] = i
        result.append(name)
    return result


def load_population(path: str | os.PathLike, dtype=None):
    """A population from a PrefLib file or an ``.npz`` archive.

    The ``.npz`` holds ``utilities`` (``[m, n]``, a :class:`RankingPopulation`) or
    ``log_weights`` (``[m, n]``, a :class:`PlackettLucePopulation`), and optionally ``weights``
    (``[m]``) and ``names`` (``[n]`` unique strings). Errors name the file and the key.

    Utilities are checked against ``dtype``: if rounding them to it would make two responses
    tie for a user although they differ in the file (``1`` and ``1 + 1e-9`` in float32), the
    load is refused with a ``ValueError`` that suggests float64 (``--x64`` on the command line)
    instead of returning a population whose win rates would be silently wrong.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "users.npz"
        >>> np.savez(path, utilities=np.eye(3))
        >>> load_population(path).num_users
        3
    """
    path = as_path(path)
    dtype = float_dtype_arg(dtype)
    if path.suffix.lower() in PREFLIB_SUFFIXES:
        return load_preflib(path, dtype=dtype)
    if path.suffix.lower() != ".npz":
        raise ValueError(
            f"{path}: unknown data format {path.suffix!r}; expected a PrefLib file "
            f"({', '.join(PREFLIB_SUFFIXES)}) or an .npz with 'utilities' or 'log_weights'"
        )
    with open_npz(path) as archive:
        keys = set(archive.keys)
        kinds = [key for key in ("utilities", "log_weights") if key in keys]
        if len(kinds) != 1:
            raise ValueError(
                f"{path}: expected exactly one of the keys 'utilities' or 'log_weights', "
                f"found {sorted(keys) or 'none'}"
            )
        unknown = keys - {"utilities", "log_weights", "weights", "names"}
        if unknown:
            raise ValueError(
                f"{path}: unknown key(s) {sorted(unknown)}; allowed: utilities or "
                "log_weights, weights, names"
            )
        shape, _ = archive.header(kinds[0])  # sizes checked before the data is read
        if len(shape) == 2 and shape[1] > MAX_ALTERNATIVES:
            raise ValueError(
                f"{path}: '{kinds[0]}' has {shape[1]:,} responses, more than the limit "
                f"{MAX_ALTERNATIVES:,}"
            )
        if math.prod(shape) > MAX_ENTRIES:
            raise ValueError(
                f"{path}: '{kinds[0]}' has shape {shape}, more than {MAX_ENTRIES:,} entries"
            )

        def read(key, kinds="fiu"):
            value = archive.array(key)
            if value.dtype.kind not in kinds:
                raise ValueError(f"{path}: '{key}' must hold real numbers, got dtype {value.dtype}")
            return value

        values = read(kinds[0])
        weights = read("weights") if "weights" in keys else None
        names = read("names", kinds="fiuUS") if "names" in keys else None
    if names is not None:
        if names.ndim != 1:
            raise ValueError(f"{path}: 'names' must be 1-D, got shape {names.shape}")
        names = _unique_names(names, path)
    if values.ndim != 2:
        raise ValueError(
            f"{path}: '{kinds[0]}' must be a 2-D [users, responses] array, got shape {values.shape}"
        )
    if kinds[0] == "utilities":
        make, values = RankingPopulation, cast_keeping_ties(values, dtype, f"{path}: 'utilities'")
    else:  # a file's spread is its own: build the quadrature for it (more nodes past 60 nats)
        values = jnp.asarray(values, dtype)
        spread = max(spread_of(values) if values.size else 0.0, default_max_spread(dtype))
        make = functools.partial(
            PlackettLucePopulation, max_spread=min(spread, spread_limit(dtype))
        )
    try:
        return make(
            values,
            None if weights is None else jnp.asarray(weights, dtype),
            names,
        )
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


#: Largest policy file read (a JSON policy over ``MAX_ALTERNATIVES`` responses fits easily).
MAX_POLICY_BYTES = 2**26
POLICY_SUFFIXES = (".json", ".npy", ".npz")
#: What a ``policy.json`` may record besides the probabilities and names, with the types
#: :func:`load_policy_record` accepts for each.
POLICY_RECORD_FIELDS = {"k": "count", "method": "text", "data": "text", "exploitability": "number"}


def _policy_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in POLICY_SUFFIXES:
        raise ValueError(f"{path}: expected a policy file ending in .json, .npy or .npz")
    return suffix


def _read_policy_json(path: Path) -> tuple[object, dict]:
    """A JSON policy file as (its probabilities as written, the object's other fields)."""
    payload = read_json(path, MAX_POLICY_BYTES)
    if not isinstance(payload, dict):
        return payload, {}
    if "policy" not in payload:
        raise ValueError(f"{path}: a JSON object needs a 'policy' list")
    return payload["policy"], {key: value for key, value in payload.items() if key != "policy"}


def _has_type(value, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    if kind == "count":
        return isinstance(value, int) and value >= 1
    if kind == "number":
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, str)


def write_policy_file(path: str | os.PathLike, policy, names=None, **record) -> None:
    """Write a ``policy.json``: ``{"policy": [p_0, ...], "names": [...], **record}``.

    :func:`load_policy_file` reads the probabilities back (checking the names against the
    data's) and :func:`load_policy_record` the ``record`` fields it knows (``k``, ``method``,
    ``data``, ``exploitability``).

    Args:
        path: the file to write (replaced if it exists).
        policy: ``[n]`` probabilities, finite.
        names: ``n`` response names, or ``None`` to record none.
        **record: JSON-serialisable facts about the policy (NumPy scalars are converted).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "policy.json"
        >>> write_policy_file(path, np.array([0.25, 0.75]), ["a", "b"], k=2, method="hedge")
        >>> load_policy_file(path, 2, names=["a", "b"]).tolist(), load_policy_record(path)
        ([0.25, 0.75], {'k': 2, 'method': 'hedge'})
    """
    path = as_path(path)
    values = np.asarray(policy, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"policy must be a finite non-empty 1-D vector, got shape {values.shape}")
    payload = {"policy": values.tolist()}
    if names is not None:
        names = [str(name) for name in names]
        if len(names) != values.size:
            raise ValueError(f"names must have {values.size} entries, got {len(names)}")
        payload["names"] = names
    if "policy" in record or "names" in record:
        raise ValueError("record must not hold 'policy' or 'names' (they are arguments)")
    payload.update(record)
    path.write_text(json.dumps(payload, indent=2, default=_builtin) + "\n")


def _builtin(value):
    """A NumPy scalar or array as the Python value JSON can hold (for ``json.dumps``)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"record values must be JSON-serialisable, got {type(value).__name__}")


def load_policy_record(path: str | os.PathLike) -> dict:
    """What a policy file records besides its probabilities (see :func:`write_policy_file`).

    The fields of a ``.json`` object among ``k`` (an integer >= 1), ``method`` and ``data``
    (strings) and ``exploitability`` (a finite number); a field of another type is left out (a
    hand-written file may hold anything). ``{}`` for ``.npy`` and ``.npz`` files and JSON lists.
    The probabilities are not checked here: :func:`load_policy_file` does that.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "policy.json"
        >>> write_policy_file(path, [1.0], k=True, method="hedge", exploitability=float("nan"))
        >>> load_policy_record(path)  # a bool is no k, NaN no exploitability
        {'method': 'hedge'}

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: ``"<path>: <what is wrong>"`` if the file is not readable JSON.
    """
    path = as_path(path)
    if _policy_suffix(path) != ".json":
        return {}
    _, fields = _read_policy_json(path)
    return {
        key: fields[key]
        for key, kind in POLICY_RECORD_FIELDS.items()
        if key in fields and _has_type(fields[key], kind)
    }


def load_policy_file(
    path: str | os.PathLike, num_responses: int | None = None, names=None
) -> np.ndarray:
    """A policy (probabilities over responses) from a ``.json``, ``.npy`` or ``.npz`` file.

    ``.json``: a list of numbers, or an object with a ``"policy"`` list and optionally
    ``"names"`` (as :func:`write_policy_file` writes ``policy.json``; other keys are ignored
    here, :func:`load_policy_record` reads them). ``.npy``:
    a 1-D array. ``.npz``: an archive with a 1-D array ``policy``. The policy must be finite,
    nonnegative and sum to 1 within the float32 simplex tolerance (text files are written from
    float32 computations; ``ualign_jax._validation.SIMPLEX_TOLERANCE``); it is returned
    renormalised to sum 1, so no win rate inherits the rounding.

    Args:
        path: the file (at most ``MAX_POLICY_BYTES``).
        num_responses: if given, the number of entries the policy must have.
        names: if given and the file records names, they must equal these, in order.

    Returns:
        ``[n]`` float64 array.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: ``"<path>: <what is wrong>"`` for anything else (damaged file, wrong
            shape or names, not a probability vector).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "policy.json"
        >>> _ = path.write_text('{"policy": [0.25, 0.75], "names": ["a", "b"]}')
        >>> load_policy_file(path, 2, names=("a", "b")).tolist()
        [0.25, 0.75]
    """
    path = as_path(path)
    suffix = _policy_suffix(path)
    recorded = None
    if suffix == ".json":
        payload, fields = _read_policy_json(path)
        recorded = fields.get("names")
        if not isinstance(payload, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in payload
        ):
            raise ValueError(f"{path}: the policy must be a flat list of numbers")
        try:
            raw = np.asarray(payload, dtype=np.float64)
        except OverflowError as err:  # an integer beyond float64
            raise ValueError(f"{path}: a policy entry is out of range ({err})") from err
    elif suffix == ".npy":
        raw = read_npy(path, MAX_POLICY_BYTES)
    else:
        with open_npz(path, MAX_POLICY_BYTES) as archive:
            if "policy" not in archive.keys:
                raise ValueError(f"{path}: no array 'policy' (found {sorted(archive.keys)})")
            raw = archive.array("policy")
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"{path}: the policy must hold real numbers, got {raw.dtype} values")
    policy = raw.astype(np.float64)
    if policy.ndim != 1 or policy.size == 0:
        raise ValueError(f"{path}: the policy must be a non-empty 1-D vector, got {policy.shape}")
    if num_responses is not None and policy.shape[0] != num_responses:
        raise ValueError(
            f"{path}: the policy has {policy.shape[0]} entries, the data has "
            f"{num_responses} responses"
        )
    if off_simplex(policy, simplex_tolerance(np.float32), xp=np) or policy.min() < 0:
        raise ValueError(f"{path}: the policy must be finite, nonnegative and sum to 1")
    _check_recorded_names(path, recorded, names)
    return policy / policy.sum()


def _check_recorded_names(path: Path, recorded, names) -> None:
    """The names a policy file records (``recorded``, or ``None``) against the data's
    ``names`` (or ``None``: nothing to compare); a mismatch is a ``ValueError`` naming the
    first entry that differs."""
    if names is None or recorded is None:
        return
    if not isinstance(recorded, list) or not all(isinstance(n, str) for n in recorded):
        raise ValueError(f"{path}: 'names' must be a list of strings")
    expected = [str(n) for n in names]
    if recorded != expected:
        if len(recorded) != len(expected):
            where = f"{len(recorded)} names, the data has {len(expected)}"
        else:
            i = next(i for i, (a, b) in enumerate(zip(recorded, expected, strict=True)) if a != b)
            mine, theirs = short_repr(recorded[i]), short_repr(expected[i])
            where = f"entry {i} is {mine}, the data's is {theirs}"
        raise ValueError(f"{path}: the policy's names differ from the data's ({where})")


# --------------------------------------------------------------------------- k-output policies

#: Formats of a correlated k-output policy (a law over k-tuples).
K_OUTPUT_SUFFIXES = (".json", ".npz")
_K_OUTPUT_KEYS = ("tuples", "weights", "names")


def holds_k_output(path: str | os.PathLike) -> bool:
    """Whether the policy file at ``path`` is a law over k-tuples (a ``.json`` object or an
    ``.npz`` archive with ``tuples``) rather than probabilities over responses.

    Raises ``FileNotFoundError`` or ``ValueError("<path>: ...")`` as the readers do.
    """
    path = as_path(path)
    suffix = _policy_suffix(path)
    if suffix == ".json":
        payload = read_json(path, MAX_POLICY_BYTES)
        return isinstance(payload, dict) and "tuples" in payload
    if suffix == ".npz":
        with open_npz(path, MAX_POLICY_BYTES) as archive:
            return "tuples" in archive.keys
    return False


def _read_k_output(path: Path) -> tuple[np.ndarray, object, object]:
    """``(tuples as written, weights or None, names or None)`` of a k-output policy file."""
    if path.suffix.lower() == ".json":
        payload = read_json(path, MAX_POLICY_BYTES)
        if not isinstance(payload, dict) or "tuples" not in payload:
            raise ValueError(f"{path}: a k-output policy is a JSON object with a 'tuples' list")
        rows = payload["tuples"]
        if (
            not isinstance(rows, list)
            or not rows
            or not all(isinstance(row, list) and row for row in rows)
            or len({len(row) for row in rows}) != 1
            or not all(isinstance(i, int) and not isinstance(i, bool) for r in rows for i in r)
        ):
            raise ValueError(
                f"{path}: 'tuples' must be a non-empty list of equally long, non-empty lists of "
                "integer response indices"
            )
        if any(i < 0 or i >= MAX_ALTERNATIVES for row in rows for i in row):
            bad = next(i for row in rows for i in row if i < 0 or i >= MAX_ALTERNATIVES)
            raise ValueError(f"{path}: response index {bad} in 'tuples' is out of range")
        weights = payload.get("weights")
        if weights is not None and not (
            isinstance(weights, list)
            and all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
        ):
            raise ValueError(f"{path}: 'weights' must be a flat list of numbers")
        return np.asarray(rows, dtype=np.int64), weights, payload.get("names")
    if path.suffix.lower() != ".npz":
        raise ValueError(f"{path}: a k-output policy is a .json or .npz file")
    with open_npz(path, MAX_POLICY_BYTES) as archive:
        unknown = set(archive.keys) - set(_K_OUTPUT_KEYS)
        if "tuples" not in archive.keys or unknown:
            raise ValueError(
                f"{path}: a k-output policy archive holds 'tuples' and optionally 'weights' and "
                f"'names'; found {sorted(archive.keys)}"
            )
        tuples = archive.array("tuples")
        weights = archive.array("weights") if "weights" in archive.keys else None
        names = archive.array("names") if "names" in archive.keys else None
    if tuples.dtype.kind not in "iu" or tuples.ndim != 2 or 0 in tuples.shape:
        raise ValueError(
            f"{path}: 'tuples' must be a non-empty 2-D [tuples, k] integer array, got "
            f"{tuples.dtype} of shape {tuples.shape}"
        )
    if weights is not None and weights.dtype.kind not in "iuf":
        raise ValueError(f"{path}: 'weights' must hold real numbers, got {weights.dtype}")
    if names is not None:
        if names.ndim != 1:
            raise ValueError(f"{path}: 'names' must be 1-D, got shape {names.shape}")
        names = _unique_names(names, path)
    return tuples, weights, names


def load_k_output_file(
    path: str | os.PathLike, num_responses: int | None = None, names=None, dtype=None
) -> KOutputPolicy:
    """A correlated k-output policy ``A = Σ_t α_t δ_{S_t}`` (docs/theory.md §1, "Laws over
    tuples") from a ``.json`` or ``.npz`` file.

    ``.json``: ``{"tuples": [[0, 3], [1, 2], ...], "weights": [...], "names": [...]}`` with
    ``weights`` (one per tuple, nonnegative, not all zero; normalised; default uniform) and
    ``names`` (checked against ``names``) optional. ``.npz``: an integer ``[T, k]`` array
    ``tuples``, optional ``[T]`` ``weights`` and ``[n]`` ``names``. Indices are 0-based.

    Args:
        path: the file (at most ``MAX_POLICY_BYTES``).
        num_responses: if given, every index must be in ``[0, num_responses)``.
        names: if given and the file records names, they must equal these, in order.
        dtype: float dtype of the weights (default: float64 if x64 is on, else float32).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: ``"<path>: <what is wrong>"`` for anything else.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "law.json"
        >>> _ = path.write_text('{"tuples": [[0, 1], [2, 2]], "weights": [3, 1]}')
        >>> law = load_k_output_file(path, 3)
        >>> law.num_outputs, law.tuple_weights.tolist()
        (2, [0.75, 0.25])
    """
    path = as_path(path)
    tuples, weights, recorded = _read_k_output(path)
    if tuples.min() < 0 or (num_responses is not None and tuples.max() >= num_responses):
        bad = tuples.min() if tuples.min() < 0 else tuples.max()
        where = "" if num_responses is None else f" (the data has {num_responses} responses)"
        raise ValueError(f"{path}: response index {bad} in 'tuples' is out of range{where}")
    if weights is not None:
        try:
            weights = np.asarray(weights, dtype=np.float64)
        except OverflowError as err:  # an integer beyond float64
            raise ValueError(f"{path}: a weight is out of range ({err})") from err
        if weights.shape != tuples.shape[:1]:
            raise ValueError(
                f"{path}: 'weights' must have one entry per tuple ({tuples.shape[0]}), got "
                f"shape {weights.shape}"
            )
        if not np.all(np.isfinite(weights)) or weights.min() < 0 or not weights.sum() > 0:
            raise ValueError(f"{path}: 'weights' must be finite, nonnegative and not all zero")
    _check_recorded_names(path, recorded, names)
    return KOutputPolicy(tuples, weights, dtype=dtype)


def write_k_output_file(path: str | os.PathLike, tuples, weights=None, names=None) -> None:
    """Write a k-output policy that :func:`load_k_output_file` reads back: ``.json`` or
    ``.npz`` by the file's ending.

    Args:
        path: the file to write (replaced if it exists).
        tuples: ``[T, k]`` nonnegative integer response indices.
        weights: ``[T]`` nonnegative, not all zero, or ``None`` (uniform; none recorded).
        names: ``n`` response names, or ``None`` to record none.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "law.npz"
        >>> write_k_output_file(path, [[0, 1], [1, 2]], [1.0, 1.0], ["a", "b", "c"])
        >>> load_k_output_file(path, 3, names=["a", "b", "c"]).tuples.tolist()
        [[0, 1], [1, 2]]
    """
    path = as_path(path)
    suffix = path.suffix.lower()
    if suffix not in K_OUTPUT_SUFFIXES:
        raise ValueError(f"path must end in .json or .npz, got {path.name!r}")
    law = KOutputPolicy(tuples, weights)  # checks the indices and weights
    tuples = np.asarray(law.tuples)
    if tuples.ndim != 2:
        raise ValueError(f"tuples must be a 2-D [T, k] array, got shape {tuples.shape}")
    if names is not None:
        names = [str(name) for name in names]
        if tuples.max() >= len(names):
            raise ValueError(f"tuples index {tuples.max()} has no entry in the {len(names)} names")
    fields = {"tuples": tuples}
    if weights is not None:
        fields["weights"] = np.asarray(weights, dtype=np.float64)
    if names is not None:
        fields["names"] = names
    if suffix == ".json":
        payload = {key: np.asarray(value).tolist() for key, value in fields.items()}
        path.write_text(json.dumps(payload, indent=2) + "\n")
    else:
        with open(path, "wb") as handle:  # np.savez would append ".npz" to other endings
            np.savez(handle, **{key: np.asarray(value) for key, value in fields.items()})
