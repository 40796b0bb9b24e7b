"""Shared pieces of the bad-input suites (tests/test_*_inputs.py), and ``SMALL``, the population
of the solver and dynamics tests.

Every case there ends in either a correct value -- finite, probabilities in [0, 1],
``<pi, u_k(., pi)> = 1/(k+1)``, ``WR(A, B) + WR(B, A) = 1``, lower <= exact <= upper, agreement
with brute-force enumeration (tests/brute_force.py) on small games -- or a ``ValueError`` whose
message names the offending argument (``outcome``, ``rejects``). Any other exception (a TypeError
from inside JAX, an IndexError, an OverflowError, ...) and any NaN that comes back fail the test.

Hypothesis runs derandomized (``fuzz``: the same examples every run, no example database).
Shapes, dtypes and static arguments come from short lists, since each new one costs an XLA
compile; the values inside them are fuzzed.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import ualign_jax as ua

from . import brute_force as bf

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)
NETFLIX = Path(ua.__file__).resolve().parent / "bundled" / "00004-00000001.soc"

# One population shape for most value checks: every new shape, dtype or static argument costs
# an XLA compile (~0.3 s on two cores), so the fuzz varies values, not shapes.
U3 = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
POP = ua.RankingPopulation(U3)
PI = np.array([0.2, 0.3, 0.5])

REJECTED = object()


def fuzz(max_examples: int):
    """Deterministic hypothesis settings: CI sees the same examples every run."""
    return settings(FUZZ, max_examples=max_examples)


def outcome(call, *names):
    """``call()``'s value, or ``REJECTED`` after a ``ValueError`` naming one of ``names``.

    Any other exception propagates: a TypeError from inside JAX, an IndexError or a
    ZeroDivisionError is a bug, never an acceptable answer to bad input.
    """
    try:
        return call()
    except ValueError as err:
        message = str(err)
        assert any(name in message for name in names), f"unclear message {message!r}: {names}"
        return REJECTED


def rejects(call, *names):
    result = outcome(call, *names)
    assert result is REJECTED, f"bad input accepted; returned {result!r}"


def assert_probabilities(values, atol=1e-9):
    values = np.asarray(values, dtype=np.float64)
    assert np.all(np.isfinite(values)), f"non-finite value came back: {values}"
    assert np.all(values >= -atol) and np.all(values <= 1 + atol), values


def assert_simplex(policy, atol=1e-6):
    policy = np.asarray(policy, dtype=np.float64)
    assert_probabilities(policy, atol)
    np.testing.assert_allclose(policy.sum(axis=-1), 1.0, atol=atol)


def check_payoffs(pop_rules, weights, policy, k, got, atol=1e-9):
    """``got`` = u_k(., policy): probabilities, <policy, u> = 1/(k+1), brute force when small."""
    assert_probabilities(got, atol)
    np.testing.assert_allclose(np.asarray(policy) @ np.asarray(got), 1 / (k + 1), atol=atol)
    if pop_rules is not None and len(policy) ** k <= 100:
        expected = bf.payoffs(pop_rules, weights, policy, k)
        np.testing.assert_allclose(got, expected, atol=atol)


@st.composite
def policies(draw, n, zeros=True):
    """A float64 policy on the simplex with n entries, often with zeros (degenerate)."""
    raw = np.asarray(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), float)
    if zeros and draw(st.booleans()):
        raw[draw(st.integers(0, n - 1))] = 0.0
    if raw.sum() <= 1e-3:
        raw[draw(st.integers(0, n - 1))] = 1.0
    return raw / raw.sum()


# --------------------------------------------------------------------------- random arrays

#: Array dtypes the array fuzz draws from (each one a bad-input category, except the real ones).
DTYPES = (
    "float64",
    "float32",
    "float16",
    "int64",
    "uint8",
    "bool",
    "complex128",
    "object",
    "str",
    "datetime64[s]",
)
#: Special values the array fuzz puts into one entry.
SPECIALS = {
    "NaN": math.nan,
    "+inf": math.inf,
    "-inf": -math.inf,
    "1e308 (inf in float32; sums overflow)": 1e308,
    "-1e308": -1e308,
    "5e-324 (subnormal; XLA flushes it to 0)": 5e-324,
    "-1 (a negative weight)": -1.0,
    "0 (zero weights)": 0.0,
}
REAL_KINDS = "fiu"


@st.composite
def arrays(draw, min_side=0, max_rank=3):
    """Arrays of random rank (0-3), sides (0-3), dtype and values, sometimes with a special."""
    shape = tuple(draw(st.lists(st.integers(min_side, 3), max_size=max_rank)))
    size = math.prod(shape)
    values = np.asarray(
        draw(st.lists(st.floats(-3, 3, allow_nan=False), min_size=size, max_size=size)), float
    ).reshape(shape)
    if size and draw(st.booleans()):
        values.flat[draw(st.integers(0, size - 1))] = draw(st.sampled_from(list(SPECIALS.values())))
    return cast(values, draw(st.sampled_from(DTYPES)))


def cast(values, dtype):
    with np.errstate(all="ignore"):
        kind = np.dtype(dtype).kind
        if kind in "iuM":
            ints = np.round(np.where(np.isfinite(values), values, 0.0) + 3).astype(np.int64)
            return ints.astype(dtype)
        if kind == "b":
            return values > 0
        if kind == "c":
            return (values + 0.5j).astype(dtype)
        return values.astype(dtype)


def computing_dtype(arr):
    """The float dtype the library computes in for a real array (half precision -> float32)."""
    if arr.dtype.kind in "iu":
        return np.dtype(np.float64)  # x64 is on in the tests
    return np.dtype(np.float32) if arr.dtype.itemsize < 4 else arr.dtype


def valid_matrix(arr, min_ndim=2):
    """A real, finite, nonempty array with at least ``min_ndim`` axes (after promotion)."""
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in REAL_KINDS:
        return False
    if arr.ndim < min_ndim or 0 in arr.shape:
        return False
    with np.errstate(all="ignore"):
        return bool(np.all(np.isfinite(arr.astype(computing_dtype(arr)))))


def valid_weights(weights, shape):
    if weights is None:
        return True
    if not valid_matrix(weights, 1) or weights.shape != shape:
        return False
    with np.errstate(all="ignore"):
        w = weights.astype(computing_dtype(weights))
        sums = w.sum(axis=-1)
    tiny = np.finfo(w.dtype).tiny  # a subnormal sum is zero to XLA
    return bool(w.min() >= 0 and np.all(sums >= tiny) and np.all(np.isfinite(sums)))


# --------------------------------------------------------------------------- bad data files


def write_npz(path, **arrays_):
    np.savez(path, **arrays_)
    return path


def write_bytes(path, data):
    path.write_bytes(data)
    return path


def write_npy(path, array):
    with open(path, "wb") as handle:
        np.save(handle, array)
    return path


def write_zip(path, member, data):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, data)
    return path


#: Bad data files: ``name -> make(folder) -> path``; load_population (and ``ualign solve``)
#: must refuse each one naming the file.
BAD_FILES = {
    "npz without keys": lambda d: write_npz(d / "a.npz"),
    "npz with both utilities and log_weights": lambda d: write_npz(
        d / "b.npz", utilities=np.eye(2), log_weights=np.eye(2)
    ),
    "npz with an unknown key": lambda d: write_npz(d / "c.npz", utilities=np.eye(2), x=1),
    "npz utilities 1-D": lambda d: write_npz(d / "d.npz", utilities=np.ones(3)),
    "npz utilities 3-D": lambda d: write_npz(d / "e.npz", utilities=np.ones((2, 2, 2))),
    "npz utilities empty": lambda d: write_npz(d / "f.npz", utilities=np.zeros((0, 3))),
    "npz utilities NaN": lambda d: write_npz(d / "g.npz", utilities=np.array([[math.nan, 1]])),
    "npz log_weights inf": lambda d: write_npz(d / "h.npz", log_weights=np.array([[math.inf]])),
    "npz utilities strings": lambda d: write_npz(d / "i.npz", utilities=np.array([["a"]])),
    "npz utilities complex": lambda d: write_npz(d / "j.npz", utilities=np.eye(2) + 1j),
    "npz utilities bool": lambda d: write_npz(d / "k.npz", utilities=np.eye(2, dtype=bool)),
    "npz utilities object (pickled)": lambda d: write_npz(
        d / "l.npz", utilities=np.array([[1, None]], dtype=object)
    ),
    "npz weights negative": lambda d: write_npz(
        d / "m.npz", utilities=np.eye(2), weights=np.array([1.0, -1.0])
    ),
    "npz weights wrong length": lambda d: write_npz(
        d / "n.npz", utilities=np.eye(2), weights=np.ones(3)
    ),
    "npz weights strings": lambda d: write_npz(
        d / "o.npz", utilities=np.eye(2), weights=np.array(["a", "b"])
    ),
    "npz names wrong length": lambda d: write_npz(
        d / "p.npz", utilities=np.eye(2), names=np.array(["a"])
    ),
    "npz names 0-d": lambda d: write_npz(d / "q.npz", utilities=np.eye(2), names=np.array("ab")),
    "npz names 2-D": lambda d: write_npz(
        d / "r.npz", utilities=np.eye(2), names=np.array([["a", "b"]])
    ),
    "npz of random bytes": lambda d: write_bytes(d / "s.npz", b"\x00garbage\xff" * 3),
    "empty npz file": lambda d: write_bytes(d / "t.npz", b""),
    "truncated npz": lambda d: write_bytes(
        d / "u.npz", write_npz(d / "u0.npz", utilities=np.eye(3)).read_bytes()[:60]
    ),
    "zip whose member is not .npy": lambda d: write_zip(d / "v.npz", "utilities.npy", b"no"),
    "a .npy array named .npz": lambda d: write_npy(d / "w.npz", np.eye(2)),
    "non-UTF-8 PrefLib file": lambda d: write_bytes(d / "x.soc", b"\xff\xfe1: 1\n"),
    "PrefLib file with an error on line 3": lambda d: write_bytes(
        d / "y.soi", b"# NUMBER ALTERNATIVES: 2\n1: 1\n1: 3\n"
    ),
    "unknown extension": lambda d: write_bytes(d / "z.csv", b"1,2\n"),
}


# --------------------------------------------------------------------------- shared populations

#: Three weighted users over four responses: the population of the solver and dynamics tests.
SMALL = ua.RankingPopulation(
    np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 3.0, 2.0, 1.0], [1.0, 0.0, 3.0, 2.0]]),
    np.array([0.5, 0.3, 0.2]),
)
