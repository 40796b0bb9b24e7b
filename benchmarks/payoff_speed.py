"""Payoff speed on this CPU: the jitted closed form against NumPy and against the dense tensor.

Run: ``python benchmarks/payoff_speed.py`` (writes ``benchmarks/results/payoff_speed.json``).
Each comparison is measured side by side in one process; ratios are what to quote.

1. ``response_payoffs`` (ranking users, m=5000, n=200 and m=10^5, n=1000, k=8, float32) on a
   traced, a prepared (``ua.prepare``) and a closed-over population, ``payoff_function`` and
   ``game_gradient``, against a plain NumPy implementation of the same closed form with each
   user's order precomputed and with its own argsort (:func:`versus_numpy`).
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


def _timed_first_call(fn):
    """Seconds of the first call (trace, compile and one run) of a fresh jitted ``fn``."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def versus_numpy(m=5000, n=200, k=8, repeats=30, rounds=5):
    """The core call against NumPy, every way a user may hold the population (issue #17).

    NumPy computes the same closed form with each user's order precomputed (``numpy_ms``) and
    with its own ``np.argsort`` in the call (``numpy_with_argsort_ms``). ualign_jax: a traced
    population (``jax.jit(f)(pop, pi)``: sorted in every call), a prepared one (``ua.prepare``:
    the stored order checked in every call), a closed-over one (``jax.jit(lambda pi: f(pop,
    pi))``: sorted once at trace time; its first call is the compile time), ``payoff_function``
    jitted, and ``game_gradient`` on traced and prepared populations.
    """
    rng = np.random.default_rng(0)
    utilities = np.argsort(rng.random((m, n)), axis=1).astype(np.float32)  # strict rankings
    weights = (rng.random(m) + 0.1).astype(np.float32)
    weights /= weights.sum()
    policy = rng.dirichlet(np.ones(n)).astype(np.float32)
    pop = ua.RankingPopulation(utilities, weights)
    pi = jnp.asarray(policy)
    clock = lambda fn: best_time(lambda: jax.block_until_ready(fn()), repeats, rounds)

    order = np.argsort(utilities, axis=1)
    rank = np.argsort(order, axis=1)
    reference = numpy_closed_form(order, rank, weights, policy, k)
    row = {"m": m, "n": n, "k": k, "repeats": repeats, "rounds": rounds}
    row["numpy_ms"] = 1e3 * clock(lambda: numpy_closed_form(order, rank, weights, policy, k))
    row["numpy_horner_ms"] = 1e3 * clock(lambda: numpy_horner(order, rank, weights, policy, k))
    row["numpy_argsort_ms"] = 1e3 * clock(lambda: np.argsort(utilities, axis=1))

    def numpy_with_argsort():
        o = np.argsort(utilities, axis=1)
        r = np.empty_like(o)
        np.put_along_axis(r, o, np.broadcast_to(np.arange(n), o.shape), axis=1)
        return numpy_closed_form(o, r, weights, policy, k)

    row["numpy_with_argsort_ms"] = 1e3 * clock(numpy_with_argsort)

    call = jax.jit(lambda p, x: ua.response_payoffs(p, x, k))
    row["traced_compile_s"] = _timed_first_call(lambda: call(pop, pi))
    row["traced_call_ms"] = 1e3 * clock(lambda: call(pop, pi))
    differences = [np.asarray(call(pop, pi)) - reference]
    gradient = jax.jit(lambda p, x: ua.game_gradient(p, jnp.log(x), k))
    gradient(pop, pi).block_until_ready()
    row["game_gradient_traced_ms"] = 1e3 * clock(lambda: gradient(pop, pi))
    if hasattr(ua, "prepare"):  # absent before issue #17 (for before/after runs)
        row["prepare_ms"] = 1e3 * best_time(lambda: ua.prepare(pop).rank.block_until_ready(), 3, 3)
        prepared = ua.prepare(pop)
        call(prepared, pi).block_until_ready()
        row["prepared_call_ms"] = 1e3 * clock(lambda: call(prepared, pi))
        differences.append(np.asarray(call(prepared, pi)) - reference)
        gradient(prepared, pi).block_until_ready()
        row["game_gradient_prepared_ms"] = 1e3 * clock(lambda: gradient(prepared, pi))
    closure = jax.jit(lambda x: ua.response_payoffs(pop, x, k))
    row["closure_compile_s"] = _timed_first_call(lambda: closure(pi))
    row["closure_call_ms"] = 1e3 * clock(lambda: closure(pi))
    differences.append(np.asarray(closure(pi)) - reference)
    function = jax.jit(ua.payoffs.payoff_function(pop, k))
    row["payoff_function_compile_s"] = _timed_first_call(lambda: function(pi))
    row["payoff_function_call_ms"] = 1e3 * clock(lambda: function(pi))
    row["max_abs_difference"] = float(max(np.max(np.abs(d)) for d in differences))
    row["traced_vs_numpy_with_argsort"] = row["numpy_with_argsort_ms"] / row["traced_call_ms"]
    if "prepared_call_ms" in row:
        row["prepared_vs_numpy"] = row["numpy_ms"] / row["prepared_call_ms"]
        row["gradient_over_payoffs_prepared"] = (
            row["game_gradient_prepared_ms"] / row["prepared_call_ms"]
        )
    row["closure_vs_numpy"] = row["numpy_ms"] / row["closure_call_ms"]
    row["payoff_function_vs_numpy"] = row["numpy_ms"] / row["payoff_function_call_ms"]
    print(json.dumps(row), flush=True)
    return row


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
        "versus_numpy_large": versus_numpy(100_000, 1000, repeats=2, rounds=2),
        "versus_dense_tensor": versus_dense(),
        "ranking_engines": ranking_engines(),
    }
    (RESULTS / "payoff_speed.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
