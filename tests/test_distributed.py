"""Users sharded over devices; two local processes joined by ``jax.distributed`` (gloo).

The multi-process checks run in one launch of tests/distributed_check.py as two processes with
two forced host devices each (4 global devices); see that script for what each check compares.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua
from ualign_jax._numerics import chunked_user_sum, strided_user_slice
from ualign_jax.population import unchecked_replace
from ualign_jax.sharding import initialize_distributed, user_chunk_for

#: float32 results equal the one-device ones to this (sums over users in another order).
FLOAT32_TOLERANCE = 1e-6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two_processes(env: dict, timeout: float = 300.0) -> dict:
    """Run distributed_check.py as processes 0 and 1; kill both on failure or timeout."""
    script = Path(__file__).with_name("distributed_check.py")
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(i), "2", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
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
        assert proc.returncode == 0, err[-3000:]
    lines = [line for line in outputs[0][0].splitlines() if line.startswith("REPORT ")]
    assert len(lines) == 1, outputs[0][0][-3000:]
    return json.loads(lines[0].removeprefix("REPORT "))


@pytest.fixture(scope="module")
def report(forced_devices_env):
    return launch_two_processes(forced_devices_env(2))


def test_two_processes_give_the_one_process_results(report):
    checks = {name: value for name, value in report.items() if "/" in name}
    groups = {name.split("/")[0] for name in checks}
    expected = {"prompts", "prompts_local", "users", "users_local", "users_luce", "grid"}
    if hasattr(ua, "sample_rewards"):  # judges sharded over users, once training is merged
        expected |= {"rewards"}
    assert expected | {"users_big", "cli"} <= groups, groups
    assert len(checks) >= 3 * 2 + 8 * 2 + 1 + 2 + 1 + 1, sorted(checks)
    for name, value in checks.items():
        assert value <= FLOAT32_TOLERANCE, (name, value)


def test_each_device_holds_only_its_users(report):
    shards = report["shards"]
    assert shards["local_shards"] == 2  # this process's two devices
    assert shards["users_padded"] % 4 == 0 and shards["users_padded"] >= 200
    assert shards["local_shard_users"] == [shards["users_padded"] // 4]
    # XLA's scratch for 4096 x 16 users: sharded over 4 devices, each needs under a third.
    memory = report["memory"]
    assert memory["sharded"] * 3 < memory["one_device"], memory


def test_strided_chunks_tile_the_users():
    pop = ua.RankingPopulation(jnp.arange(12.0).reshape(6, 2))
    sub = strided_user_slice(pop, 1, 2)
    assert sub.utilities[:, 0].tolist() == [2.0, 6.0, 10.0]
    assert sub.weights.shape == (3,)
    strided = unchecked_replace(pop, user_chunk=3, strided_users=True)
    assert strided.user_chunk == 3 and strided.strided_users and not pop.strided_users
    # the layout is part of the tree structure: the two layouts never share a compiled program
    assert jax.tree.structure(strided) != jax.tree.structure(pop.with_user_chunk(3))
    seen = []
    chunked_user_sum(strided, lambda p: seen.append(p.utilities[:, 0]) or jnp.zeros(2))
    assert seen[0].shape == (3,)  # one traced chunk of 3 strided users, run twice by the loop
    policy = jnp.asarray([0.3, 0.7])
    np.testing.assert_allclose(
        ua.response_payoffs(strided, policy, 2),
        ua.response_payoffs(pop.with_user_chunk(3), policy, 2),
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.parametrize("m", [1, 7, 64, 200, 5000])
def test_user_chunks_split_evenly_over_devices(m):
    pop = ua.RankingPopulation(np.zeros((m, 20), np.float32))
    for devices in (1, 2, 3, 4):
        chunk = user_chunk_for(pop, devices)
        assert chunk % devices == 0
        per_device = chunk // devices
        assert per_device <= 64 or per_device % 64 == 0, (m, devices, chunk)
        padded = -(-m // chunk) * chunk
        assert padded - m < max(64, -(-m // devices)) * devices, (m, devices, chunk)


def test_only_the_pairwise_engine_caps_the_chunk():
    # 20,000 x 16 ranking users use the scan engine: one chunk of about 2^22 / 16 users.
    large = ua.RankingPopulation(np.zeros((20_000, 16), np.float32))
    assert user_chunk_for(large, 4) == 20_224  # 5056 users per device, a multiple of 64
    small = ua.RankingPopulation(np.zeros((4096, 16), np.float32))
    assert user_chunk_for(small, 4) == 1024  # pairwise: one USER_SLICE product per chunk


def test_padded_users_change_nothing():
    rng = np.random.default_rng(1)
    pop = ua.RankingPopulation(rng.integers(0, 3, (7, 4)).astype(np.float64), rng.random(7))
    sharded = ua.shard_users(pop, ua.user_mesh())
    assert sharded.num_users >= 7 and float(jnp.sum(sharded.weights)) == pytest.approx(1.0)
    policy = jnp.asarray(rng.dirichlet(np.ones(4)))
    np.testing.assert_allclose(
        ua.response_payoffs(sharded, policy, 3), ua.response_payoffs(pop, policy, 3), atol=1e-15
    )


def test_bad_meshes_and_arguments_are_refused():
    pop = ua.RankingPopulation(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="axis named 'users'"):
        ua.shard_users(pop, ua.prompt_mesh())
    with pytest.raises(ValueError, match="axis named 'prompts'"):
        ua.shard_prompts(pop, ua.user_mesh())
    with pytest.raises(ValueError, match="prompts must be an integer"):
        ua.user_mesh(prompts=0)
    with pytest.raises(ValueError, match="pop must be"):
        ua.shard_users(ua.DenseGame([[0.5, 1.0], [0.0, 0.5]]))
    with pytest.raises(ValueError, match="no cluster found"):
        initialize_distributed(environ={})


def test_cli_distributed_outside_a_cluster_is_a_usage_error(tmp_path, monkeypatch, capsys):
    from ualign_jax import cli
    from ualign_jax.sharding import CLUSTER_VARIABLES

    for name in CLUSTER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "users.npz"
    np.savez(data, utilities=np.eye(3))
    argv = ["solve", str(data), "--k", "2", "--out", str(tmp_path / "out"), "--distributed"]
    assert cli.main(argv) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert (
        error.startswith("ualign: error: --distributed: no cluster found")
        and error.count("\n") == 1
    )
