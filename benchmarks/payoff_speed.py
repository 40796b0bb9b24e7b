"""Payoff speed on this CPU: the jitted closed form against NumPy and against the dense tensor.

Run: ``python benchmarks/payoff_speed.py`` (writes ``benchmarks/results/payoff_speed.json``).
Each comparison is measured side by side in one process; ratios are what to quote.

1. ``response_payoffs`` (ranking users, m=5000, n=200, k=8, float32; it sorts each user's
   utilities in every call) and ``payoff_function(pop, k)`` (sorted once, outside the timed
   call) against a plain NumPy implementation of the same closed form (also sorting once).
2. ``response_payoffs`` against contracting the dense win tensor ``W_{k+1}`` with π on the same
   game (m=1000 ranking users, n=10, k=6: a 10^7-entry tensor).
3. The ranking engines (``RankingPopulation(..., engine=...)``) against each other, per Hedge
   step, on games around the size where ``"auto"`` switches from pairwise comparison to the
   position scan.

Per-step times use ``ua.payoffs.payoff_function(pop, k)`` built once outside the scan, as
``solve`` does (the sorted engines' sort is done there, once).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import ualign_jax as ua

RESULTS = Path(__file__).parent / "results"


def best_time(fn, repeats=30, rounds=5):
    """Best mean over ``rounds`` of ``repeats`` calls, in seconds (after one warm-up call)."""
    fn()
    best = np.inf
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def numpy_closed_form(order, rank, weights, policy, k):
    """The closed form of docs/theory.md §3 in NumPy for strict rankings.

    ``order``/``rank`` are ``[m, n]``.
    """
    in_order = policy[order]
    x = np.clip(np.cumsum(in_order, axis=1), 0.0, 1.0)
    r = np.divide(in_order, x, out=np.zeros_like(x), where=x > 0)
    safe_r = np.where(r < 1, r, 0.0)
    gain = np.where(r < 1, -np.expm1((k + 1) * np.log1p(-safe_r)), 1.0)
    ratio = np.where(r > 0, gain / ((k + 1) * np.where(r > 0, r, 1.0)), 1.0)
    u_sorted = x**k * ratio
    u = np.take_along_axis(u_sorted, rank, axis=1)
    return weights @ u


def numpy_horner(order, rank, weights, policy, k):
    """The same closed form summed by Horner's rule in NumPy (the algorithm ualign_jax uses)."""
    in_order = policy[order]
    upto = np.cumsum(in_order, axis=1)
    below = upto - in_order
    total = np.ones_like(upto)
    below_power = np.ones_like(upto)
    for _ in range(k):
        below_power *= below
        total = total * upto + below_power
    return weights @ np.take_along_axis(total / (k + 1), rank, axis=1)


def per_step_in_scan(payoff_fn, policy, steps=500):
    """Seconds per payoff evaluation inside one jitted scan (how a solver calls it)."""

    @jax.jit
    def run(p):
        def body(p, _):
            u = payoff_fn(p)
            p = 0.99 * p + 0.01 * u / jnp.sum(u)  # feed back, so nothing is hoisted
            return p, None

        return jax.lax.scan(body, p, None, length=steps)[0]

    return best_time(lambda: run(policy).block_until_ready(), repeats=3, rounds=3) / steps


def versus_numpy(m=5000, n=200, k=8):
    rng = np.random.default_rng(0)
    utilities = np.argsort(rng.random((m, n)), axis=1).astype(np.float32)  # strict rankings
    weights = (rng.random(m) + 0.1).astype(np.float32)
    weights /= weights.sum()
    policy = rng.dirichlet(np.ones(n)).astype(np.float32)
    pop = ua.RankingPopulation(utilities, weights)
    pi = jnp.asarray(policy)
    fast = jax.jit(ua.response_payoffs, static_argnums=2)
    order = np.argsort(utilities, axis=1)
    rank = np.argsort(order, axis=1)
    ours = np.asarray(fast(pop, pi, k))
    reference = numpy_closed_form(order, rank, weights, policy, k)
    agree = float(np.max(np.abs(ours - reference)))
    agree_horner = float(np.max(np.abs(ours - numpy_horner(order, rank, weights, policy, k))))
    t_jax = best_time(lambda: fast(pop, pi, k).block_until_ready())
    prepared = jax.jit(ua.payoffs.payoff_function(pop, k))  # the sort done once, here
    t_prepared = best_time(lambda: prepared(pi).block_until_ready())
    t_np = best_time(lambda: numpy_closed_form(order, rank, weights, policy, k))
    t_np_horner = best_time(lambda: numpy_horner(order, rank, weights, policy, k))
    return {
        "m": m,
        "n": n,
        "k": k,
        "jax_ms": 1e3 * t_jax,
        "jax_sorted_once_ms": 1e3 * t_prepared,
        "numpy_expm1_form_ms": 1e3 * t_np,
        "numpy_horner_ms": 1e3 * t_np_horner,
        "speedup_vs_numpy_expm1_form": t_np / t_jax,
        "speedup_vs_numpy_horner": t_np_horner / t_jax,
        "max_abs_difference": max(agree, agree_horner),
    }


def versus_dense(m=1000, n=10, k=6):
    rng = np.random.default_rng(1)
    utilities = np.argsort(rng.random((m, n)), axis=1).astype(np.float32)
    pop = ua.RankingPopulation(utilities)
    pi = jnp.asarray(rng.dirichlet(np.ones(n)).astype(np.float32))
    start = time.perf_counter()
    tensor = ua.win_tensor(pop, k + 1).block_until_ready()
    build_s = time.perf_counter() - start

    @jax.jit
    def contract(w, p):  # full float32 precision, like ualign_jax's own products
        for _ in range(k):
            w = jnp.matmul(w, p, precision="highest")
        return w

    fast = jax.jit(ua.response_payoffs, static_argnums=2)
    agree = float(jnp.max(jnp.abs(contract(tensor, pi) - fast(pop, pi, k))))
    t_fast = best_time(lambda: fast(pop, pi, k).block_until_ready(), repeats=200)
    t_dense = best_time(lambda: contract(tensor, pi).block_until_ready(), repeats=10)
    s_fast = per_step_in_scan(ua.payoffs.payoff_function(pop, k), pi, steps=2000)
    s_dense = per_step_in_scan(lambda p: contract(tensor, p), pi, steps=50)
    return {
        "m": m,
        "n": n,
        "k": k,
        "tensor_entries": int(tensor.size),
        "build_s": build_s,
        "per_call": {
            "closed_form_ms": 1e3 * t_fast,
            "dense_contraction_ms": 1e3 * t_dense,
            "speedup": t_dense / t_fast,
        },
        "per_step_in_scan": {
            "closed_form_ms": 1e3 * s_fast,
            "dense_contraction_ms": 1e3 * s_dense,
            "speedup": s_dense / s_fast,
        },
        "max_abs_difference": agree,
    }


ENGINE_GAMES = [
    (1000, 10, False),
    (1000, 10, True),
    (4926, 10, False),
    (1000, 16, False),
    (8192, 16, False),
    (16384, 16, False),
    (1000, 24, False),
]


def ranking_engines(games=ENGINE_GAMES, k=6):
    """Per-step time of each ranking engine (forced) on random games; ties where asked."""
    rows = []
    for m, n, ties in games:
        rng = np.random.default_rng(2)
        utilities = rng.integers(0, 4, (m, n)) if ties else np.argsort(rng.random((m, n)), axis=1)
        pop = ua.RankingPopulation(utilities.astype(np.float32), rng.random(m).astype(np.float32))
        pi = jnp.asarray(rng.dirichlet(np.ones(n)).astype(np.float32))
        row = {"m": m, "n": n, "ties": ties, "auto": ua.payoffs.ranking_engine(n, m)}
        for engine in ("pairwise", "scan", "parallel"):
            payoff = ua.payoffs.payoff_function(pop.with_engine(engine), k)
            seconds = per_step_in_scan(payoff, pi, steps=300)
            row[f"{engine}_ms"] = 1e3 * seconds
        row["scan_over_pairwise"] = row["scan_ms"] / row["pairwise_ms"]
        rows.append(row)
        print(row, flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="accepted for `ualign bench`; this benchmark is already quick (about two minutes)",
    )
    parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    result = {
        "date": datetime.date.today().isoformat(),
        "device": f"{jax.devices()[0].device_kind} ({platform.processor() or platform.machine()}, "
        f"{jax.local_device_count()} device)",
        "jax": jax.__version__,
        "versus_numpy": versus_numpy(),
        "versus_dense_tensor": versus_dense(),
        "ranking_engines": ranking_engines(),
    }
    (RESULTS / "payoff_speed.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
