"""Convergence of every self-play dynamic in ``ua.METHODS`` (issue #3), in float64.

Run: ``python benchmarks/convergence.py [--quick]`` (quick: T = 2000, k = 4; full: T = 20000,
k = 4 and 16; quick runs add ``_quick`` to every file name). Writes
``benchmarks/results/convergence.json``, ``convergence.png`` (regret
against t on log-log axes beside the ``sqrt(t ln n / 2)`` Hedge bound, with the log-log slope
fitted over the second half of the run) and ``convergence_exploitability.png`` (exploitability
of the last iterate against that of the uniform mixture of the iterates).

Populations: the bundled sushi data (4926 ranking types x 10 responses) and a Plackett–Luce
mixture ``plackett_luce_mixture(key(0), 10, 20, scale=1.5)``.

Steps to a tolerance are read off one ``T``-step trace: the first ``t`` with exploitability
``<= tol`` (for the last iterate and for the mixture). The wall time to a tolerance is that of
``solve(pop, k, method, steps=T, tol=tol)`` (which stops there), best of several calls after a
warm-up call with the same arguments, so compilation is excluded; the compile time is the first
call's time less that. A tolerance the trace does not reach within ``T`` steps is reported as not
reached (``null``) and not timed; ``--quick`` times only the tightest tolerance reached (each
tolerance compiles anew: ``tol`` is static in ``solve``). Wall times are for orientation: they
are CPU times of this VM.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ualign_jax as ua  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TOLERANCES = (1e-3, 1e-4, 1e-6)
#: Exploitabilities at or below this (float64 round-off, including values <= 0) are drawn here.
FLOOR = 1e-16


def populations():
    return {
        "sushi": ua.load_dataset("sushi"),
        "plackett_luce": ua.plackett_luce_mixture(jax.random.key(0), 10, 20, scale=1.5),
    }


def timed(fn):
    """Seconds for one call of ``fn`` (blocking on its result) and the result."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - start, out


def best_of(fn, budget_s=0.5, max_calls=10):
    """Best time over up to ``max_calls`` calls, stopping once ``budget_s`` has been spent."""
    best, spent, calls = math.inf, 0.0, 0
    while calls < max_calls and (calls < 2 or spent < budget_s):
        seconds, out = timed(fn)
        best, spent, calls = min(best, seconds), spent + seconds, calls + 1
    return best, out


def first_step(values, tol):
    """The first 1-based step with ``values <= tol``, or ``None``."""
    hits = np.flatnonzero(values <= tol)
    return int(hits[0]) + 1 if hits.size else None


def settled_step(values, tol):
    """The first step from which ``values <= tol`` for the rest of the run, or ``None``."""
    above = np.flatnonzero(~(values <= tol))
    if above.size == 0:
        return 1
    return int(above[-1]) + 2 if above[-1] + 1 < values.size else None


def fitted_slope(regret):
    """Least-squares slope of log regret against log t over the second half (regret > 0)."""
    steps = np.arange(1, regret.size + 1)
    keep = (steps > regret.size // 2) & (regret > 0)
    if keep.sum() < 10:
        return None
    return float(np.polyfit(np.log(steps[keep]), np.log(regret[keep]), 1)[0])


def run_one(pop, k, method, steps, time_all):
    """Trace of a ``steps``-step run and steps / wall time to each tolerance.

    ``time_all=False`` (quick) times only the tightest tolerance the trace reaches: each
    tolerance is a separate compilation (``tol`` is static in ``solve``).
    """
    run = lambda: ua.solve(pop, k, method=method, steps=steps)
    first_s, sol = timed(run)
    scan_s, sol = best_of(run, max_calls=2) if time_all else (None, sol)
    trace = {name: np.asarray(value) for name, value in sol.trace._asdict().items()}
    last, mixture = trace["exploitability"], trace["mixture_exploitability"]
    record = {
        "regret_slope_second_half": fitted_slope(trace["regret"]),
        "final_regret": float(trace["regret"][-1]),
        "final_bound": float(trace["bound"][-1]),
        "final_exploitability": float(last[-1]),
        "min_exploitability": float(last.min()),
        "final_mixture_exploitability": float(mixture[-1]),
        "first_call_s": first_s,
        "run_s": scan_s,
        "ms_per_step": None if scan_s is None else 1e3 * scan_s / steps,
        "outcome": str(sol.outcome_name),
        "tolerances": {},
    }
    reached = [tol for tol in TOLERANCES if first_step(last, tol) is not None]
    timed_tols = reached if time_all else reached[-1:]
    for tol in TOLERANCES:
        entry = {
            "steps": first_step(last, tol),
            "settled_steps": settled_step(last, tol),
            "mixture_steps": first_step(mixture, tol),
            "wall_s": None,
            "compile_s": None,
        }
        if tol in timed_tols:
            call = lambda tol=tol: ua.solve(pop, k, method=method, steps=steps, tol=tol)
            first, _ = timed(call)
            wall, tol_sol = best_of(call)
            entry.update(
                wall_s=wall,
                compile_s=max(first - wall, 0.0),
                tol_run_steps=int(tol_sol.num_steps),
                tol_run_outcome=str(tol_sol.outcome_name),
            )
        record["tolerances"][f"{tol:g}"] = entry
    return record, trace


def plot_regret(traces, results, steps, path):
    methods = list(ua.METHODS)
    colors = dict(zip(methods, plt.cm.tab10(np.arange(len(methods))), strict=True))
    fig, axes = plt.subplots(1, len(traces), figsize=(6.2 * len(traces), 5.0), squeeze=False)
    t = np.arange(1, steps + 1)
    for ax, (name, by_method) in zip(axes[0], traces.items(), strict=True):
        bound = by_method[methods[0]]["bound"]
        label = r"$\sqrt{t \ln n / 2}$ (Hedge bound, slope 1/2)"
        ax.loglog(t, bound, color="black", ls="--", lw=2, label=label)
        for method in methods:
            regret = by_method[method]["regret"]
            slope = results[name][method]["regret_slope_second_half"]
            tag = "n/a" if slope is None else f"{round(slope, 2) + 0.0:+.2f}"
            ax.loglog(
                t,
                np.where(regret > 0, regret, np.nan),
                color=colors[method],
                lw=1.4,
                label=f"{method} (slope {tag})",
            )
        ax.axvspan(steps / 2, steps, color="0.92", zorder=0)
        ax.set_title(f"{name}, k = 4: regret (grey band: slope fit)")
        ax.set_xlabel("step t")
        ax.set_ylabel(r"external regret $\mathrm{Reg}_t$")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7.5, loc="upper left", framealpha=0.85)
        ax.set_ylim(bottom=1e-3)
        top = ax.get_ylim()[1]
        ax.set_ylim(top=top * 100)  # headroom so the legend sits above the curves
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_exploitability(traces, steps, path):
    methods = list(ua.METHODS)
    colors = dict(zip(methods, plt.cm.tab10(np.arange(len(methods))), strict=True))
    fig, axes = plt.subplots(1, len(traces), figsize=(6.2 * len(traces), 5.0), squeeze=False)
    t = np.arange(1, steps + 1)
    for ax, (name, by_method) in zip(axes[0], traces.items(), strict=True):
        for tol in TOLERANCES:
            ax.axhline(tol, color="0.6", lw=0.8, ls=":")
        for method in methods:
            tr = by_method[method]
            ax.loglog(t, np.maximum(tr["exploitability"], FLOOR), color=colors[method], lw=1.4)
            ax.loglog(
                t,
                np.maximum(tr["mixture_exploitability"], FLOOR),
                color=colors[method],
                lw=1.2,
                ls="--",
            )
        ax.set_title(f"{name}, k = 4: exploitability (dotted: 1e-3, 1e-4, 1e-6)")
        ax.set_xlabel("step t")
        ax.set_ylabel(r"exploitability $\varepsilon_k$ ($\leq 10^{-16}$ drawn at $10^{-16}$)")
        ax.set_ylim(FLOOR / 3, 1.0)
        ax.grid(True, which="major", alpha=0.3)
    handles = [plt.Line2D([], [], color=colors[m], lw=2) for m in methods]
    handles += [plt.Line2D([], [], color="k", lw=1.4), plt.Line2D([], [], color="k", ls="--")]
    labels = methods + ["last iterate", "mixture of iterates"]
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8.5, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)


def markdown_tables(result):
    """The tables that go into benchmarks/RESULTS.md."""
    lines = [
        f"Regret, k = 4, T = {result['steps']}: log-log slope of regret against t over the "
        "second half of the run (bound: slope 0.5).",
        "",
        "| population | method | slope | Reg_T | bound | last-iterate ε_T | mixture ε_T |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, by_method in result["k=4"].items():
        for method, r in by_method.items():
            slope = r["regret_slope_second_half"]
            slope = "n/a" if slope is None else f"{round(slope, 2) + 0.0:.2f}"
            lines.append(
                f"| {name} | {method} | {slope} | "
                f"{r['final_regret']:.3g} | {r['final_bound']:.3g} | "
                f"{r['final_exploitability']:.2g} | {r['final_mixture_exploitability']:.2g} |"
            )
    for key in [k for k in result if k.startswith("k=")]:
        lines += [
            "",
            f"To tolerance, {key}, T = {result['steps']}: first step with last-iterate "
            "exploitability <= tol, wall time of `solve(..., tol=tol)` (compile excluded), "
            "and the mixture's first step; — = not reached within T.",
            "",
            "| population | method | "
            + " | ".join(f"{t:g}: steps (ms)" for t in TOLERANCES)
            + " | mixture "
            + " / ".join(f"{t:g}" for t in TOLERANCES)
            + " | compile s |",
            "| --- | --- |" + " ---: |" * (len(TOLERANCES) + 2),
        ]
        for name, by_method in result[key].items():
            for method, r in by_method.items():
                cells, mix, compile_s = [], [], []
                for tol in TOLERANCES:
                    e = r["tolerances"][f"{tol:g}"]
                    if e["steps"] is None:
                        cells.append("—")
                    elif e["wall_s"] is None:  # quick mode times only the tightest one
                        cells.append(str(e["steps"]))
                    else:
                        ms = 1e3 * e["wall_s"]
                        cells.append(
                            f"{e['steps']} ({ms:.3g})" if ms < 1e3 else f"{e['steps']} ({ms:.0f})"
                        )
                    mix.append("—" if e["mixture_steps"] is None else str(e["mixture_steps"]))
                    if e["compile_s"] is not None:
                        compile_s.append(e["compile_s"])
                compile_cell = f"{np.median(compile_s):.2f}" if compile_s else "—"
                lines.append(
                    f"| {name} | {method} | " + " | ".join(cells) + f" | {' / '.join(mix)} | "
                    f"{compile_cell} |"
                )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 2000, k = 4 only")
    parser.add_argument("--steps", type=int, default=None, help="horizon T (overrides the mode)")
    args = parser.parse_args(argv)
    steps = args.steps or (2000 if args.quick else 20000)
    ks = (4,) if args.quick else (4, 16)
    start = time.perf_counter()
    RESULTS.mkdir(exist_ok=True)
    pops = populations()
    result = {
        "date": datetime.date.today().isoformat(),
        "device": f"{jax.devices()[0].device_kind} ({platform.processor() or platform.machine()}, "
        f"{jax.local_device_count()} device)",
        "jax": jax.__version__,
        "dtype": "float64",
        "mode": "quick" if args.quick else "full",
        "steps": steps,
        "tolerances": list(TOLERANCES),
        "populations": {
            name: {"type": type(pop).__name__, "num_responses": pop.num_responses}
            for name, pop in pops.items()
        },
    }
    traces = {}
    for k in ks:
        result[f"k={k}"] = {}
        for name, pop in pops.items():
            result[f"k={k}"][name] = {}
            for method in ua.METHODS:
                record, trace = run_one(pop, k, method, steps, time_all=not args.quick)
                result[f"k={k}"][name][method] = record
                if k == 4:
                    traces.setdefault(name, {})[method] = trace
                reached = {t: e["steps"] for t, e in record["tolerances"].items()}
                print(f"k={k} {name:14s} {method:24s} steps to tol {reached}", flush=True)
    tag = "_quick" if args.quick else ""  # a quick run never overwrites the full results
    plot_regret(traces, result["k=4"], steps, RESULTS / f"convergence{tag}.png")
    plot_exploitability(traces, steps, RESULTS / f"convergence_exploitability{tag}.png")
    result["total_s"] = time.perf_counter() - start
    (RESULTS / f"convergence{tag}.json").write_text(json.dumps(result, indent=2))
    print(markdown_tables(result))
    print(f"total {result['total_s']:.1f} s")


if __name__ == "__main__":
    main()
