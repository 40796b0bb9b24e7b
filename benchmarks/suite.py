"""The benchmark suite in one command: ``python benchmarks/suite.py [--quick]`` (``ualign bench``).

Writes ``benchmarks/results/suite.json`` and ``suite.png`` (``--quick``: ``suite_quick.*``) with

1. payoff throughput against m·n: seconds per Hedge step (ranking users, k = 8, inside one
   jitted scan) and the roofline, the time to read one int32 per (user, response) pair at the
   read bandwidth measured in the same run;
2. batched prompts: P prompts x 64 users x 16 responses, k = 4, seconds per Hedge step;
3. sharded scaling: the same batch with its prompt axis sharded over 1, 2, 4 devices (on a CPU,
   forced host devices in subprocesses; on accelerators, the devices there are);
4. structured against dense: the closed form against contracting the win tensor
   (``payoff_speed.py``), and the closed form against NumPy;
5. the other scripts: ``convergence.py`` and ``peers.py`` (run as they are, their own JSON).

Absolute times mean something only on the device they were taken on (recorded in the JSON).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

import payoff_speed  # noqa: E402

import ualign_jax as ua  # noqa: E402

#: m x n grids (users, responses) for the throughput section.
THROUGHPUT = {
    "quick": [(1000, 10), (1000, 100), (10_000, 100), (10_000, 1000)],
    "cpu": [(1000, 10), (1000, 100), (10_000, 100), (10_000, 1000), (10_000, 3000)],
    "accelerator": [(1000, 100), (10_000, 100), (10_000, 1000), (10_000, 10_000), (30_000, 10_000)],
}
PROMPTS = {"quick": [1, 64, 512], "cpu": [1, 64, 512, 4096], "accelerator": [1, 64, 512, 4096]}
#: The issue's targets (issue #5), per Hedge step on an H100.
TARGETS_MS = {"m=10000 n=10000 k=8": 0.4, "4096 prompts x 64 x 16, k=4": 0.02}


def hedge_scan(pop, k: int, steps: int, eta: float = 0.1):
    """A jitted function running ``steps`` Hedge steps on ``pop`` (prompt axes vmapped)."""

    def one_prompt(p, policy):
        def body(policy, _):
            u = ua.payoffs.single_policy_payoffs(p, policy, k)
            return jax.nn.softmax(jnp.log(policy) + eta * u), None

        return jax.lax.scan(body, policy, None, length=steps)[0]

    run = one_prompt
    for _ in pop.batch_shape:
        run = jax.vmap(run)
    return jax.jit(run)


def seconds_per_step(pop, k: int, steps: int) -> float:
    """Best-of-3 wall time of one ``steps``-step Hedge scan, per step (compile excluded)."""
    n = pop.num_responses
    policy = jnp.full((*pop.batch_shape, n), 1.0 / n, pop.dtype)
    if pop.batch_shape and hasattr(pop.weights, "sharding"):
        policy = jax.device_put(policy, pop.weights.sharding)
    run = hedge_scan(pop, k, steps)
    run(pop, policy).block_until_ready()
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        run(pop, policy).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return best / steps


def read_bandwidth() -> float:
    """Bytes per second of a jitted sum over a large int32 array (this device's read rate)."""
    size = 2**26 if jax.default_backend() != "cpu" else 2**25
    data = jnp.arange(size, dtype=jnp.int32)
    total = jax.jit(lambda x: jnp.sum(x, dtype=jnp.int32))
    total(data).block_until_ready()
    best = np.inf
    for _ in range(5):
        start = time.perf_counter()
        total(data).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 4 * size / best


def random_rankings(shape, seed: int = 0) -> np.ndarray:
    """Strict random rankings, ``float32``, shape ``[..., m, n]``."""
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random(shape), axis=-1).astype(np.float32)


def throughput(grid, bandwidth: float, steps: int) -> list[dict]:
    rows = []
    for m, n in grid:
        pop = ua.RankingPopulation(random_rankings((m, n)))
        seconds = seconds_per_step(pop, 8, steps)
        floor = 4 * m * n / bandwidth
        rows.append(
            {
                "m": m,
                "n": n,
                "k": 8,
                "ms_per_step": 1e3 * seconds,
                "roofline_ms": 1e3 * floor,
                "times_roofline": seconds / floor,
            }
        )
        print(
            f"throughput m={m} n={n}: {1e3 * seconds:.4g} ms/step, {seconds / floor:.1f}x roofline",
            file=sys.stderr,
        )
    return rows


def batched(prompt_counts, steps: int) -> list[dict]:
    rows = []
    for prompts in prompt_counts:
        pop = ua.RankingPopulation(random_rankings((prompts, 64, 16), seed=prompts))
        seconds = seconds_per_step(pop, 4, steps)
        rows.append(
            {
                "prompts": prompts,
                "m": 64,
                "n": 16,
                "k": 4,
                "ms_per_step": 1e3 * seconds,
                "us_per_prompt_step": 1e6 * seconds / prompts,
            }
        )
        print(f"batched P={prompts}: {1e3 * seconds:.4g} ms/step", file=sys.stderr)
    return rows


def sharded_worker(devices: int, prompts: int, steps: int) -> dict:
    """Run inside a process that sees ``devices`` devices: the batch sharded over all of them."""
    pop = ua.RankingPopulation(random_rankings((prompts, 64, 16), seed=7))
    pop = ua.shard_prompts(pop, ua.prompt_mesh(jax.devices()[:devices]))
    return {
        "devices": devices,
        "prompts": prompts,
        "ms_per_step": 1e3 * seconds_per_step(pop, 4, steps),
    }


def sharded_scaling(prompts: int, steps: int) -> list[dict]:
    rows = []
    on_cpu = jax.default_backend() == "cpu"
    counts = [1, 2, 4] if on_cpu else [d for d in (1, 2, 4, 8) if d <= jax.device_count()]
    for devices in counts:
        env = dict(os.environ)
        if on_cpu:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        command = [
            sys.executable,
            __file__,
            "--sharded-worker",
            str(devices),
            str(prompts),
            str(steps),
        ]
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"sharded over {devices}: {rows[-1]['ms_per_step']:.4g} ms/step", file=sys.stderr)
    return rows


def run_script(name: str, quick: bool) -> dict:
    command = [sys.executable, str(HERE / name)] + (["--quick"] if quick else [])
    start = time.perf_counter()
    code = subprocess.call(command, stdout=sys.stderr)
    return {"script": name, "exit_code": code, "seconds": time.perf_counter() - start}


def plot(result: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    # 2 x 2 panels at a readable size (a 1 x 4 strip made the text tiny).
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    axes = axes.ravel()
    rows = result["throughput"]
    pairs = [r["m"] * r["n"] for r in rows]
    ax = axes[0]
    ax.loglog(pairs, [r["ms_per_step"] for r in rows], "o-", label="Hedge step (closed form)")
    ax.loglog(pairs, [r["roofline_ms"] for r in rows], "k--", label="read 1 int32 per pair")
    ax.set(xlabel="users x responses (m·n)", ylabel="ms per step", title="Payoff throughput, k=8")
    ax.legend()
    rows = result["batched_prompts"]
    ax = axes[1]
    ax.loglog([r["prompts"] for r in rows], [r["ms_per_step"] for r in rows], "o-")
    ax.set(
        xlabel="prompts (64 users x 16 responses each)",
        ylabel="ms per step",
        title="Batched prompts, k=4",
    )
    rows = result["sharded_scaling"]
    ax = axes[2]
    ax.plot([r["devices"] for r in rows], [r["ms_per_step"] for r in rows], "o-")
    ax.set(
        xlabel="devices the prompt axis is sharded over",
        ylabel="ms per step",
        title=f"Sharded prompts ({rows[0]['prompts']} prompts)",
        xticks=[r["devices"] for r in rows],
    )
    ax.set_ylim(bottom=0)
    dense = result["structured_vs_dense"]["per_step_in_scan"]
    ax = axes[3]
    labels = ["closed form", "dense tensor"]
    values = [dense["closed_form_ms"], dense["dense_contraction_ms"]]
    ax.bar(labels, values, color=["tab:blue", "tab:gray"])
    ax.set_yscale("log")
    ax.set(
        ylabel="ms per step",
        title=f"Structured vs dense (m=1000, n=10, k=6): {dense['speedup']:.0f}x",
    )
    fig.suptitle(f"ualign_jax benchmarks on {result['device']}, {result['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small shapes, quick peers/convergence"
    )
    parser.add_argument("--skip-scripts", action="store_true", help="skip convergence.py, peers.py")
    parser.add_argument("--sharded-worker", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sharded_worker:
        print(json.dumps(sharded_worker(*args.sharded_worker)))
        return
    backend = jax.default_backend()
    size = "quick" if args.quick else ("cpu" if backend == "cpu" else "accelerator")
    steps = 20 if args.quick else 100
    bandwidth = read_bandwidth()
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": f"{jax.devices()[0].device_kind} ({backend}, {jax.device_count()} device(s), "
        f"{os.cpu_count()} CPU cores, {platform.machine()})",
        "jax": jax.__version__,
        "quick": args.quick,
        "read_bandwidth_GBps": bandwidth / 1e9,
        "targets_ms_per_step": TARGETS_MS,
        "throughput": throughput(THROUGHPUT[size], bandwidth, steps),
        "batched_prompts": batched(PROMPTS[size], steps),
        "sharded_scaling": sharded_scaling(512 if args.quick else 4096, steps),
        "structured_vs_dense": payoff_speed.versus_dense(),
        "versus_numpy": payoff_speed.versus_numpy(),
        "scripts": []
        if args.skip_scripts
        else [run_script(name, args.quick) for name in ("convergence.py", "peers.py")],
    }
    RESULTS.mkdir(exist_ok=True)
    stem = "suite_quick" if args.quick else "suite"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / f"{stem}.png")
    print(f"wrote {RESULTS / f'{stem}.json'} and {RESULTS / f'{stem}.png'}")


if __name__ == "__main__":
    main()
