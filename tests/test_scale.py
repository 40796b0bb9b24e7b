"""Scale: prompts sharded over several devices give the unsharded results; memory is bounded."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua

#: Baselines computed on the host in float64 (certified polish, Newton fit): equal, not sharded.
HOST_SIDE = ("nlhf", "rlhf")


def test_sharded_prompts_give_the_unsharded_results_on_four_host_devices(forced_devices_env):
    script = Path(__file__).with_name("sharded_check.py")
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=forced_devices_env(4),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert len(report) == 2 * 15 + 4  # ranking (unprepared and prepared), Plackett–Luce
    for name, row in report.items():
        assert row["difference"] <= 1e-12, (name, row)
        assert row["devices"] == (1 if name.split("/")[1] in HOST_SIDE else 4), (name, row)


def temporary_bytes(pop, k=4):
    """XLA's own count of the scratch memory ``response_payoffs`` needs (beyond its inputs)."""
    policy = jnp.full(pop.num_responses, 1.0 / pop.num_responses, pop.dtype)
    compiled = jax.jit(ua.response_payoffs, static_argnums=2).lower(pop, policy, k).compile()
    return compiled.memory_analysis().temp_size_in_bytes


#: Float32 arrays of one chunk's ``[n, chunk]`` entries the scratch may hold (n = 16; measured
#: 16, 2.3 and 804): pairwise engine (XLA's CPU fusion may keep one term per compared response),
#: scan engine (shares in sorted and in response order, and the carried sums), Plackett-Luce
#: (a few per quadrature node); and a fixed allowance for the ``[n]``-sized rest.
SCRATCH_ARRAYS = {"pairwise": 16, "scan": 3, "plackett_luce": 4 * ua.payoffs.PL_QUADRATURE_NODES}
SCRATCH_FIXED_BYTES = 4096
#: Bytes per user-response entry the scan engine's one sort per call may hold: sorted keys,
#: indices and the int32 order (measured 11.5 at n = 16 on CPU).
SORT_BYTES = 3 * 4


@pytest.mark.parametrize("engine", ["pairwise", "scan", "plackett_luce"])
def test_chunked_users_bound_the_scratch_memory(engine):
    n, chunk = 16, 256
    rng = np.random.default_rng(0)
    if engine == "plackett_luce":
        make = ua.PlackettLucePopulation
    else:
        make = lambda table: ua.RankingPopulation(table, engine=engine)
    small, large = (make(rng.random((m, n)).astype(np.float32)) for m in (1024, 8192))
    chunked = [temporary_bytes(p.with_user_chunk(chunk)) for p in (small, large)]
    whole = [temporary_bytes(p.with_user_chunk(p.num_users)) for p in (small, large)]
    # The scan engine sorts each user's utilities once per call, for all users (so that a solver
    # sorts once per run, not once per step): an int32 [m, n] order plus XLA's sort buffers, at
    # most SORT_BYTES per user-response entry. Four int32 [m, n] tables (16 bytes per entry)
    # were stored in the population before, so the total memory is lower than it was.
    sort = [SORT_BYTES * p.num_users * n if engine == "scan" else 0 for p in (small, large)]
    # 8x the users: the chunked scratch stays put; unchunked, the ranking scratch grows with m
    # (Plackett-Luce users are already mapped in blocks; only their [m, n] output grows).
    assert chunked[1] - sort[1] <= 1.1 * chunked[0], (chunked, sort)
    assert whole[1] >= (1 if engine == "plackett_luce" else 3) * whole[0], whole
    assert chunked[1] < whole[1], (chunked, whole)
    chunk_array = chunk * n * 4  # bytes of one float32 [n, chunk] array
    bound = SCRATCH_ARRAYS[engine] * chunk_array + SCRATCH_FIXED_BYTES + sort[1]
    assert chunked[1] <= bound, (chunked, bound)
    policy = jnp.asarray(rng.dirichlet(np.ones(n)), jnp.float32)
    np.testing.assert_allclose(
        ua.response_payoffs(large.with_user_chunk(chunk), policy, 4),
        ua.response_payoffs(large.with_user_chunk(large.num_users), policy, 4),
        rtol=0,
        atol=2e-7,
    )


@pytest.mark.parametrize("chunk", [1, 3, 7, 10, 11])
def test_every_chunk_size_gives_the_same_payoffs(chunk):
    rng = np.random.default_rng(chunk)
    pop = ua.RankingPopulation(rng.integers(0, 3, (10, 4)).astype(np.float64), rng.random(10))
    policy = jnp.asarray(rng.dirichlet(np.ones(4)))
    np.testing.assert_allclose(
        ua.response_payoffs(pop.with_user_chunk(chunk), policy, 3),
        ua.response_payoffs(pop, policy, 3),
        rtol=0,
        atol=1e-15,
    )
    with pytest.raises(ValueError, match="user_chunk must be an integer >= 1"):
        pop.with_user_chunk(0)
