"""One process of a ``jax.distributed`` run, launched twice by tests/test_distributed.py.

``python tests/distributed_check.py PROCESS_ID NUM_PROCESSES PORT`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``: the processes join over gloo (CPU
collectives) into one run of 2 x 2 = 4 global devices, shard prompts and users over them (every
process holding the full batch, and each holding only its own slice), gather the results with
``multihost_utils.process_allgather`` and compare them with the same calls on one local device.
Process 0 prints one line ``REPORT {json}`` (gloo prints its own lines too): ``{check: largest
absolute difference}`` plus ``"shards"``, ``"memory"`` and ``"cpu_seconds"`` facts; any failure
exits non-zero. Only process 0 computes the one-device references (:func:`reference`); the other
joins the sharded calls and the gathers.
"""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

import ualign_jax as ua  # noqa: E402
from ualign_jax import cli  # noqa: E402

K = 3
CLOCK = {"last": time.process_time()}
#: Whether this process compares and reports (process 0); set by main.
REPORTER = {"is_me": True}


def lap(report, name):
    """CPU seconds this process spent since the last lap (for keeping the test fast)."""
    now = time.process_time()
    report.setdefault("cpu_seconds", {})[name] = round(now - CLOCK["last"], 2)
    CLOCK["last"] = now


def gathered(tree):
    """Every leaf as one host NumPy array holding the global values."""

    def host(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return [host(leaf) for leaf in jax.tree.leaves(tree)]


def reference(call, *args):
    """``call(*args)`` on the reporting process; ``None`` on the others (they compare nothing)."""
    return call(*args) if REPORTER["is_me"] else None


def difference(plain, sharded) -> float:
    """Largest absolute difference; every process joins the gather of ``sharded``."""
    got = gathered(sharded)
    if plain is None:
        return 0.0
    pairs = zip(gathered(plain), got, strict=True)
    return max(float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) for x, y in pairs)


def scratch_bytes(pop, policy) -> int:
    compiled = jax.jit(ua.response_payoffs, static_argnums=2).lower(pop, policy, K).compile()
    return int(compiled.memory_analysis().temp_size_in_bytes)


def main() -> None:
    process, processes, port = (int(a) for a in sys.argv[1:4])
    jax.distributed.initialize(f"127.0.0.1:{port}", processes, process)
    REPORTER["is_me"] = process == 0
    assert jax.device_count() == 2 * processes and jax.local_device_count() == 2
    rng = np.random.default_rng(0)  # the same data on every process
    report = {}

    # Prompts: 8 prompts x 6 users x 5 responses over a 4-device prompt mesh (float64).
    prompts = ua.RankingPopulation(rng.integers(0, 4, (8, 6, 5)).astype(np.float64))
    policy = jnp.asarray(rng.dirichlet(np.ones(5), 8))
    mesh = ua.prompt_mesh()
    calls = {
        "payoffs": lambda p, x: ua.response_payoffs(p, x, K),
        "exploitability": lambda p, x: ua.exploitability(p, x, K),
        "solve64": lambda p, x: ua.solve(p, K, steps=30).policy,
    }
    full = ua.shard_prompts((prompts, policy), mesh)
    mine = slice(4 * process, 4 * process + 4)
    local_prompts = ua.RankingPopulation(np.asarray(prompts.utilities)[mine])
    local = ua.shard_prompts((local_prompts, policy[mine]), mesh, process_local=True)
    for name, call in calls.items():
        plain = reference(call, prompts, policy)
        report[f"prompts/{name}"] = difference(plain, call(*full))
        report[f"prompts_local/{name}"] = difference(plain, call(*local))
    lap(report, "prompts")

    # Users: 200 ranking users (padded to the chunk layout) and 96 Plackett-Luce users. float32
    # for one-shot values; float64 for the iterated ones (solve, nlhf), where the rounding of a
    # sum in another order grows with the steps.
    utilities = rng.integers(0, 6, (200, 6))
    user_weights = rng.random(200)
    ranking = ua.RankingPopulation(utilities.astype(np.float32), user_weights)
    ranking64 = ua.RankingPopulation(utilities.astype(np.float64), user_weights)
    luce = ua.PlackettLucePopulation(rng.normal(size=(96, 6)).astype(np.float32))
    pi = jnp.asarray(rng.dirichlet(np.ones(6)), jnp.float32)
    other = jnp.asarray(rng.dirichlet(np.ones(6)), jnp.float32)
    user_calls = {
        "payoffs": lambda p: ua.response_payoffs(p, pi.astype(p.dtype), K),
        "win_rate": lambda p: ua.win_rate(p, pi, K, other, ell=2),
        "exploitability": lambda p: ua.exploitability(p, pi, K),
        "robust_win_rate": lambda p: ua.robust_win_rate(p, pi, K),
        "pairwise_matrix": lambda p: ua.pairwise_matrix(p),
        "rlhf": lambda p: ua.rlhf(p),
        "solve64": lambda p: ua.solve(p, K, steps=30).policy,
        "nlhf64": lambda p: ua.nlhf(p, steps=200),
    }
    mine = slice(100 * process, 100 * process + 100)
    pops = {
        "users": (ranking, ranking64),
        # each process builds a population from its own 100 users, uniform weights
        "users_local": (
            ua.RankingPopulation(utilities.astype(np.float32)),
            ua.RankingPopulation(utilities.astype(np.float64)),
        ),
    }
    placed = {
        "users": (
            ua.shard_users(ranking, ua.user_mesh()),
            ua.shard_users(ranking64, ua.user_mesh()),
        ),
        "users_local": tuple(
            ua.shard_users(ua.RankingPopulation(utilities[mine].astype(d)), ua.user_mesh(), True)
            for d in (np.float32, np.float64)
        ),
    }
    for group in pops:
        for name, call in user_calls.items():
            which = 1 if name.endswith("64") else 0
            report[f"{group}/{name}"] = difference(
                reference(call, pops[group][which]), call(placed[group][which])
            )
    # Prepared populations: prepared then sharded (the stored order travels with its users),
    # and sharded then prepared (sorted on the devices).
    for label, arrange in (
        ("prepared_then_sharded", lambda p: ua.shard_users(ua.prepare(p), ua.user_mesh())),
        ("sharded_then_prepared", lambda p: ua.prepare(ua.shard_users(p, ua.user_mesh()))),
    ):
        for name in ("payoffs", "exploitability", "robust_win_rate", "solve64"):
            plain = pops["users"][1 if name.endswith("64") else 0]
            call = user_calls[name]
            report[f"users_prepared/{label}_{name}"] = difference(
                reference(call, plain), call(arrange(plain))
            )
    sharded = placed["users"][0]
    luce_sharded = ua.shard_users(luce, ua.user_mesh())
    report["users_luce/payoffs"] = difference(
        reference(user_calls["payoffs"], luce), user_calls["payoffs"](luce_sharded)
    )
    lap(report, "users")
    report["shards"] = {
        "users_padded": sharded.num_users,
        "local_shard_users": sorted(
            {s.data.shape[0] for s in sharded.utilities.addressable_shards}
        ),
        "local_shards": len(sharded.utilities.addressable_shards),
    }

    # Prompts and users at once: a 2 x 2 mesh, 4 prompts x 64 users.
    both = ua.RankingPopulation(rng.integers(0, 5, (4, 64, 5)).astype(np.float32))
    policy4 = jnp.asarray(rng.dirichlet(np.ones(5), 4), jnp.float32)
    grid = ua.user_mesh(prompts=2)
    both_sharded = ua.shard_users(both, grid)
    policy_sharded = ua.shard_prompts(policy4, grid)
    for name, call in (("payoffs", ua.response_payoffs), ("exploitability", ua.exploitability)):
        report[f"grid/{name}"] = difference(
            reference(call, both, policy4, K), call(both_sharded, policy_sharded, K)
        )
    lap(report, "grid")

    # Scratch memory: 4096 users x 16 responses, whole on one device vs sharded over 4.
    big = ua.RankingPopulation(rng.random((4096, 16)).astype(np.float32))
    flat = jnp.full(16, 1 / 16, jnp.float32)
    big_sharded = ua.shard_users(big, ua.user_mesh())
    if REPORTER["is_me"]:  # compiling alone: no other process takes part
        report["memory"] = {
            "one_device": scratch_bytes(big, flat),
            "sharded": scratch_bytes(big_sharded, flat),
        }
    report["users_big/payoffs"] = difference(
        reference(ua.response_payoffs, big, flat, K), ua.response_payoffs(big_sharded, flat, K)
    )
    lap(report, "memory")

    # Training rewards (ua.sample_rewards, when present): judges sharded over users.
    if hasattr(ua, "sample_rewards"):
        scores = jnp.asarray(rng.normal(size=(4, 64, 8)), jnp.float32)
        plain = reference(ua.sample_rewards, scores, 2)
        report["rewards/users"] = difference(plain, ua.sample_rewards(ua.shard_users(scores), 2))
        mine_scores = np.asarray(scores)[:, 32 * process : 32 * process + 32]
        local_scores = ua.shard_users(mine_scores, ua.user_mesh(), process_local=True)
        report["rewards/users_local"] = difference(plain, ua.sample_rewards(local_scores, 2))

        lap(report, "rewards")

    # The command line: `ualign solve --distributed` on both processes (already joined here).
    folder = Path(tempfile.gettempdir()) / f"ualign-distributed-{port}"
    if process == 0:
        np.savez(folder.with_suffix(".npz"), utilities=utilities.astype(np.float32))
    multihost_utils.sync_global_devices("data")
    argv = [
        "solve",
        str(folder.with_suffix(".npz")),
        "--k",
        "2",
        "--steps",
        "50",
        "--tol",
        "0",
        "--x64",
    ]
    code = cli.main([*argv, "--out", str(folder), "--quiet", "--distributed"])
    multihost_utils.sync_global_devices("cli")
    if process == 0:
        written = json.loads((folder / "policy.json").read_text())["policy"]
        alone = ua.solve(ua.RankingPopulation(utilities.astype(np.float64)), 2, steps=50).policy
        report["cli/solve64"] = difference(np.asarray(written), alone) if code == 0 else 1.0
        shutil.rmtree(folder)
        folder.with_suffix(".npz").unlink()
    lap(report, "cli")

    multihost_utils.sync_global_devices("done")
    if process == 0:
        print("REPORT " + json.dumps(report), flush=True)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
