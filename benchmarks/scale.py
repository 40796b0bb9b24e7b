"""Users sharded over devices and processes: the largest population, and weak scaling.

``python benchmarks/scale.py [--quick]`` writes ``benchmarks/results/scale.json``
(``scale_quick.json``) with

1. ``largest``: one process, 4 forced host devices, a ranking population of ``--users`` users x
   ``--responses`` responses (float32) sharded over users (chunked, strided chunks), solved for
   ``--steps`` Hedge steps; per device: the bytes of its shards of the population, XLA's scratch
   for the solve program (``memory_analysis``), and the process's peak resident memory;
2. ``weak``: the same users per device on 1, 2, 4 devices of one process and on 2 processes x
   1 and 2 devices (``jax.distributed`` over gloo, two local processes), seconds per Hedge step.

Every configuration runs in fresh subprocesses (the forced device count is fixed per process).
On a CPU the "devices" share the cores and the memory bus of one machine: weak scaling measures
the overhead of the split (collectives, partitioned programs), not added hardware. Timings taken
while other jobs run are not meaningful; the JSON records the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: (processes, devices per process) for the weak-scaling table.
WEAK = [(1, 1), (1, 2), (1, 4), (2, 1), (2, 2)]

SIZES = {
    "quick": {"users": 40_000, "responses": 16, "per_device": 4096, "steps": 5},
    "full": {"users": 10_000_000, "responses": 16, "per_device": 262_144, "steps": 20},
}


def worker(args) -> None:
    """One process of a configuration: build its users, shard, solve, print ``RESULT {json}``."""
    import jax  # noqa: PLC0415

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.processes > 1:
        jax.distributed.initialize(f"127.0.0.1:{args.port}", args.processes, args.process_id)
    import numpy as np  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415

    local_users = args.users // args.processes
    rng = np.random.default_rng(args.process_id)
    utilities = rng.random((local_users, args.responses), dtype=np.float32)
    start = time.perf_counter()
    pop = ua.RankingPopulation(utilities)
    del utilities
    pop = ua.shard_users(pop, ua.user_mesh(), process_local=args.processes > 1)
    build_seconds = time.perf_counter() - start
    k, steps = args.k, args.steps

    def run(p):
        return ua.solve(p, k, steps=steps, method="hedge").policy

    start = time.perf_counter()
    compiled = jax.jit(run).lower(pop).compile()
    compile_seconds = time.perf_counter() - start
    compiled(pop).block_until_ready()
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        compiled(pop).block_until_ready()
        best = min(best, time.perf_counter() - start)
    device = jax.local_devices()[0]
    shard_bytes = sum(
        shard.data.nbytes
        for leaf in jax.tree.leaves(pop)
        if isinstance(leaf, jax.Array)
        for shard in leaf.addressable_shards
        if shard.device == device
    )
    result = {
        "processes": args.processes,
        "devices": jax.device_count(),
        "users": pop.num_users,
        "users_asked": args.users,
        "responses": args.responses,
        "k": k,
        "steps": steps,
        "user_chunk": pop.user_chunk,
        "ms_per_step": 1e3 * best / steps,
        "build_seconds": build_seconds,
        "compile_seconds": compile_seconds,
        "bytes_per_device": {
            "population_shards": shard_bytes,
            "xla_scratch": int(compiled.memory_analysis().temp_size_in_bytes),
        },
        "peak_rss_bytes_this_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if args.process_id == 0:
        print("RESULT " + json.dumps(result), flush=True)
    if args.processes > 1:
        jax.distributed.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(processes: int, devices: int, users: int, opts, timeout: float) -> dict:
    """Run one configuration in fresh processes; kill them all on failure or timeout."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    env["PYTHONWARNINGS"] = "ignore"
    port = free_port()
    common = [
        sys.executable,
        __file__,
        "--worker",
        f"--processes={processes}",
        f"--port={port}",
        f"--users={users}",
        f"--responses={opts.responses}",
        f"--steps={opts.steps}",
        f"--k={opts.k}",
        f"--repeats={opts.repeats}",
    ]
    procs = [
        subprocess.Popen(
            [*common, f"--process-id={i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(processes)
    ]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"{processes} x {devices} failed:\n{err[-3000:]}")
    line = next(x for x in outputs[0][0].splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--users", type=int, default=None, help="users of the largest run")
    parser.add_argument("--per-device", type=int, default=None, help="weak scaling: users/device")
    parser.add_argument("--responses", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-largest", action="store_true")
    parser.add_argument("--skip-weak", action="store_true")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per configuration")
    # worker-only options
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    for name in ("users", "responses", "steps"):
        if getattr(args, name) is None:
            setattr(args, name, size[name])
    if args.worker:
        worker(args)
        return
    per_device = args.per_device or size["per_device"]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "load_average_at_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "weak": [],
    }
    for processes, devices in [] if args.skip_weak else WEAK:
        users = per_device * processes * devices
        row = launch(processes, devices, users, args, args.timeout)
        result["weak"].append(row)
        print(
            f"weak {processes} process(es) x {devices} device(s), {row['users']} users: "
            f"{row['ms_per_step']:.4g} ms/step",
            file=sys.stderr,
        )
    for row in result["weak"]:
        base = result["weak"][0]["ms_per_step"]
        row["efficiency"] = base / row["ms_per_step"]
    if not args.skip_largest:
        row = launch(1, 4, args.users, args, args.timeout)
        result["largest"] = row
        print(
            f"largest: {row['users']} users x {row['responses']} responses on 4 devices: "
            f"{row['ms_per_step']:.4g} ms/step, {row['bytes_per_device']} bytes per device, "
            f"peak RSS {row['peak_rss_bytes_this_process'] / 2**30:.2f} GiB",
            file=sys.stderr,
        )
    result["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    path = (
        Path(args.out)
        if args.out
        else RESULTS / ("scale_quick.json" if args.quick else "scale.json")
    )
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
