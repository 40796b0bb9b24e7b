"""Exact ``R_{k,ℓ}`` by branch and bound vs exhaustive enumeration (issue #18 item 5).

Random ranking population (``m`` users with i.i.d. normal utilities over ``n`` responses),
``k = 2``, the uniform policy and the solved equilibrium. For each case: the branch and bound's
time on the first call (compilation included) and the best of 3 later calls, the multisets it
evaluated, whether it certified ``lower == upper``; the greedy upper bound of
``robust_win_rate_bounds``; and, where ``C(n+ℓ−1, ℓ)`` is small enough, exhaustive
``robust_win_rate`` timed the same way in the same process (the values must agree). Targets:
ℓ = 2 at n = 2000 and ℓ = 3 at n = 300, exact, within 10 s. Run::

    python benchmarks/branch_bound.py            # float64; --float32 for float32

It prints one line per case and writes ``benchmarks/results/branch_bound.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import ualign_jax as ua
from ualign_jax._branch_bound import certified_robust_win_rate

CASES = [  # n, ell, users; enumeration runs where C(n+ell-1, ell) <= ENUMERATION_LIMIT
    (600, 2, 300),
    (100, 3, 300),
    (2000, 2, 300),
    (300, 3, 300),
]
ENUMERATION_LIMIT = 200_000
K = 2


def timed(fn, repeats=3):
    """``(first-call seconds, best of ``repeats`` later calls, result)``."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - start
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return first, best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float32", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/branch_bound.json")
    args = parser.parse_args()
    if not args.float32:
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float32 if args.float32 else jnp.float64
    rows = []
    for n, ell, m in CASES:
        rng = np.random.default_rng(n * 10 + ell)
        pop = ua.RankingPopulation(jnp.asarray(rng.normal(size=(m, n)), dtype))
        policies = {"uniform": jnp.full(n, 1.0 / n, dtype), "equilibrium": ua.solve(pop, K).policy}
        for name, policy in policies.items():
            first, best, out = timed(
                lambda p=policy, q=pop, e=ell: certified_robust_win_rate(q, p, K, e)
            )
            greedy = float(ua.robust_win_rate_bounds(pop, policy, K, ell).upper)
            row = {
                "n": n,
                "ell": ell,
                "users": m,
                "k": K,
                "policy": name,
                "dtype": dtype.__name__,
                "value": float(out.upper),
                "exact": bool(out.exact),
                "evaluated": int(out.nodes),
                "multisets": math.comb(n + ell - 1, ell),
                "greedy_upper": greedy,
                "bnb_first_s": first,
                "bnb_best_s": best,
            }
            if row["multisets"] <= ENUMERATION_LIMIT:
                e_first, e_best, exact = timed(
                    lambda p=policy, q=pop, e=ell: ua.robust_win_rate(q, p, K, e)
                )
                row.update(enum_first_s=e_first, enum_best_s=e_best, enum_value=float(exact))
                assert abs(float(exact) - row["value"]) <= (1e-5 if args.float32 else 1e-12)
            rows.append(row)
            enum = (
                f"  enumeration {row['enum_best_s']:.2f}s (first {row['enum_first_s']:.2f}s)"
                if "enum_best_s" in row
                else ""
            )
            print(
                f"n={n:5d} ell={ell} m={m} {name:11s} R={row['value']:.6f} exact={row['exact']} "
                f"greedy={greedy:.6f}  bnb {best:.2f}s (first {first:.2f}s, "
                f"{row['evaluated']:,} evaluations for {row['multisets']:,} multisets){enum}",
                flush=True,
            )
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
