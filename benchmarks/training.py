"""Training rewards on this device: ``sample_rewards`` against NumPy and the memory roofline.

Run: ``python benchmarks/training.py [--quick]`` (writes ``benchmarks/results/training.json``,
``--quick``: ``training_quick.json``, tiny sizes that only check that the script works).

``ua.sample_rewards(scores, k=4)`` with best-score judges on ``[4096 prompts, 64 judges, 16
samples]`` float32 scores (a judge scores each sample; rounded to one decimal so that ties
occur), jitted, per call, measured side by side with two vectorised NumPy implementations of
the same exact formula in the same process:

* ``numpy_pairwise``: every pair of samples compared (``[P, U, G, G]`` booleans), then the
  ``[G, G]`` share table, as ualign_jax does;
* ``numpy_sorted``: one sort per judge, tie runs found on the sorted order, the same table.

The roofline is the time to read the scores once at this device's read bandwidth, measured in
the same run (a jitted sum over 128 MiB of int32, ``suite.read_bandwidth``). Times are the best
mean over rounds of repeated calls; on a shared machine they are upper bounds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from payoff_speed import best_time  # noqa: E402
from suite import read_bandwidth  # noqa: E402

import ualign_jax as ua  # noqa: E402
from ualign_jax.training import best_share_table  # noqa: E402

FULL = {"prompts": 4096, "judges": 64, "samples": 16, "k": 4}
QUICK = {"prompts": 64, "judges": 8, "samples": 8, "k": 3}


def numpy_pairwise(scores: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """Rewards ``[P, G]`` by comparing every pair of samples of each judge (NumPy)."""
    group = scores.shape[-1]
    table = best_share_table(group, k).astype(scores.dtype).reshape(-1)
    below = np.sum(scores[..., None, :] < scores[..., :, None], axis=-1)
    tied = np.sum(scores[..., None, :] == scores[..., :, None], axis=-1) - 1
    shares = table[below * group + tied]
    return np.einsum("u,pug->pg", weights / weights.sum(), shares)


def numpy_sorted(scores: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """Rewards ``[P, G]`` from one sort per judge: tie runs on the sorted order (NumPy)."""
    group = scores.shape[-1]
    table = best_share_table(group, k).astype(scores.dtype).reshape(-1)
    order = np.argsort(scores, axis=-1)
    ranked = np.take_along_axis(scores, order, axis=-1)
    index = np.broadcast_to(np.arange(group), ranked.shape)
    differs = ranked[..., 1:] != ranked[..., :-1]
    starts_run = np.concatenate([np.ones_like(differs[..., :1]), differs], axis=-1)
    ends_run = np.concatenate([differs, np.ones_like(differs[..., :1])], axis=-1)
    below = np.maximum.accumulate(np.where(starts_run, index, 0), axis=-1)
    last = np.minimum.accumulate(np.where(ends_run, index, group - 1)[..., ::-1], axis=-1)[
        ..., ::-1
    ]
    sorted_shares = table[below * group + (last - below)]
    shares = np.empty_like(sorted_shares)
    np.put_along_axis(shares, order, sorted_shares, axis=-1)
    return np.einsum("u,pug->pg", weights / weights.sum(), shares)


def benchmark(size: dict, repeats: int) -> dict:
    p, u, g, k = size["prompts"], size["judges"], size["samples"], size["k"]
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(p, u, g)).round(1).astype(np.float32)
    weights = (rng.random(u) + 0.5).astype(np.float32)
    device_scores, device_weights = jnp.asarray(scores), jnp.asarray(weights)
    rewards = jax.jit(lambda s, w: ua.sample_rewards(s, k, weights=w))
    ours = np.asarray(rewards(device_scores, device_weights))
    by_pairs = numpy_pairwise(scores, k, weights)
    by_sort = numpy_sorted(scores, k, weights)
    t_jax = best_time(
        lambda: rewards(device_scores, device_weights).block_until_ready(), repeats, rounds=3
    )
    t_pairs = best_time(lambda: numpy_pairwise(scores, k, weights), max(1, repeats // 10), rounds=3)
    t_sort = best_time(lambda: numpy_sorted(scores, k, weights), max(1, repeats // 10), rounds=3)
    bandwidth = read_bandwidth()
    roofline = scores.nbytes / bandwidth
    t_numpy = min(t_pairs, t_sort)
    return {
        **size,
        "dtype": "float32",
        "tied_fraction": float(np.mean(numpy_tied(scores))),
        "jax_ms": 1e3 * t_jax,
        "numpy_pairwise_ms": 1e3 * t_pairs,
        "numpy_sorted_ms": 1e3 * t_sort,
        "speedup_vs_fastest_numpy": t_numpy / t_jax,
        "read_bandwidth_GBps": bandwidth / 1e9,
        "scores_MiB": scores.nbytes / 2**20,
        "roofline_ms": 1e3 * roofline,
        "times_roofline": t_jax / roofline,
        "max_abs_difference_vs_numpy": float(
            max(np.abs(ours - by_pairs).max(), np.abs(ours - by_sort).max())
        ),
        "group_mean_error": float(np.abs(ours.mean(axis=-1) - 1 / (k + 1)).max()),
    }


def numpy_tied(scores: np.ndarray) -> np.ndarray:
    """Whether each sample ties with another sample for its judge."""
    return np.sum(scores[..., None, :] == scores[..., :, None], axis=-1) > 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    row = benchmark(size, repeats=10 if args.quick else 20)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()}, "
        f"{os.cpu_count()} CPU cores, {platform.machine()})",
        "jax": jax.__version__,
        "numpy": np.__version__,
        "quick": args.quick,
        "sample_rewards": row,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("training_quick.json" if args.quick else "training.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(row, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
