"""Enumerations the exact engines share: ordered tuples, multisets, multinomial counts."""

from __future__ import annotations

import itertools
import math

import numpy as np


def rotations(size: int) -> np.ndarray:
    """``[size, size]`` index rows ``(j, j+1, ..., j-1)``: position ``j`` moved to the front."""
    return (np.arange(size)[:, None] + np.arange(size)[None, :]) % size


def num_multisets(num_responses: int, size: int) -> int:
    """``C(n + size - 1, size)``: the number of multisets of ``size`` responses."""
    return math.comb(num_responses + size - 1, size)


def all_multisets(num_responses: int, size: int) -> np.ndarray:
    """Every multiset of ``size`` responses as a sorted row, ``[C(n+size-1, size), size]``."""
    rows = itertools.combinations_with_replacement(range(num_responses), size)
    return np.array(list(rows), dtype=np.int32).reshape(-1, size)


def multiset_counts(multisets: np.ndarray, num_responses: int) -> np.ndarray:
    """Count vectors ``[R, n]`` of multisets given as rows ``[R, size]``."""
    counts = np.zeros((multisets.shape[0], num_responses), dtype=np.int32)
    np.add.at(counts, (np.arange(multisets.shape[0])[:, None], multisets), 1)
    return counts


def log_multinomial(counts: np.ndarray) -> np.ndarray:
    """``log(k! / prod_z c_z!)`` for count rows ``[R, n]`` summing to ``k``."""
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    k = counts.sum(axis=-1)
    return lgamma(k + 1.0) - lgamma(counts + 1.0).sum(axis=-1)
