"""Per-step ranking payoffs with and without ties, for the ualign_jax on ``PYTHONPATH``.

Since the tie structure is computed from the utilities inside each call (issue #12), every
engine always evaluates the tied π-mass; before, a static ``has_ties`` let games without ties
skip it. Compare before and after side by side, alternating, on a quiet machine::

    git archive 8ccbbce ualign_jax | tar -x -C /tmp/base     # the code before issue #12
    for i in 1 2 3; do for tree in /tmp/base .; do
        PYTHONPATH=$tree python benchmarks/tie_cost.py; done; done

Each run prints one JSON line (microseconds per step in a jitted 300-step scan, float32, k = 6,
best of 5 rounds); quote the per-row minimum over the runs of each tree. The old API (a module
global ``RANKING_ENGINE``) is detected and used when present.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np

import ualign_jax as ua
import ualign_jax.payoffs

GAMES = [  # m, n, ties, engine
    (200, 10, False, "pairwise"),
    (1000, 10, False, "pairwise"),
    (1000, 10, True, "pairwise"),
    (1000, 40, False, "scan"),
    (1000, 40, True, "scan"),
]


def best_time(fn, repeats=3, rounds=5):
    fn()
    best = np.inf
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def per_step(payoff_fn, policy, steps=300):
    @jax.jit
    def run(p):
        def body(p, _):
            u = payoff_fn(p)
            return 0.99 * p + 0.01 * u / jnp.sum(u), None  # feed back, so nothing is hoisted

        return jax.lax.scan(body, p, None, length=steps)[0]

    return best_time(lambda: run(policy).block_until_ready()) / steps


def main():
    new = hasattr(ua.payoffs, "payoff_function")
    rows = []
    for m, n, ties, engine in GAMES:
        rng = np.random.default_rng(2)
        u = rng.integers(0, 4, (m, n)) if ties else np.argsort(rng.random((m, n)), axis=1)
        w = rng.random(m).astype(np.float32)
        pi = jnp.asarray(rng.dirichlet(np.ones(n)).astype(np.float32))
        if new:
            pop = ua.RankingPopulation(u.astype(np.float32), w, engine=engine)
            fn = ua.payoffs.payoff_function(pop, 6)
        else:
            ua.payoffs.RANKING_ENGINE = engine
            pop = ua.RankingPopulation(u.astype(np.float32), w)
            fn = lambda p, pop=pop: ua.payoffs.single_policy_payoffs(pop, p, 6)
        us = 1e6 * per_step(fn, pi)
        rows.append({"m": m, "n": n, "ties": ties, "engine": engine, "us_per_step": round(us, 2)})
    print(json.dumps({"after_issue_12": new, "rows": rows}))


if __name__ == "__main__":
    main()
