"""Long runs checkpoint their state atomically and resume to the uninterrupted result exactly."""

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua
from ualign_jax.cli import main

solve_module = importlib.import_module("ualign_jax.solve")  # `ua.solve` is the function
SUSHI = Path(ua.__file__).parent / "datasets" / "00014-00000001.soc"
POP = ua.RankingPopulation(
    jnp.asarray(np.random.default_rng(3).integers(0, 5, (2, 7, 5)).astype(np.float64))
)


def assert_same_solution(a, b):
    for x, y in zip(
        [a.policy, a.mixture.policies, a.mixture.weights, a.num_steps, a.outcome, *a.trace],
        [b.policy, b.mixture.policies, b.mixture.weights, b.num_steps, b.outcome, *b.trace],
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("tol", [None, 1e-9])
def test_a_run_stopped_after_a_checkpoint_resumes_to_the_uninterrupted_result(
    tmp_path, monkeypatch, tol
):
    options = {"method": "optimistic_hedge", "steps": 300, "tol": tol, "mixture_size": 64}
    whole = ua.solve(POP, 3, **options)
    path = tmp_path / "run.npz"
    saves = []
    real_save = solve_module.save_checkpoint

    def save_then_stop(*args):
        real_save(*args)
        saves.append(args)
        if len(saves) == 2:
            raise KeyboardInterrupt  # the user stops the run right after the second checkpoint

    monkeypatch.setattr(solve_module, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        ua.solve(POP, 3, **options, checkpoint=path, checkpoint_every=70)
    stopped_at = np.load(path)["leaf_0000"]  # RunState.step, per prompt
    assert np.all(stopped_at == 140)
    monkeypatch.setattr(solve_module, "save_checkpoint", real_save)
    resumed = ua.solve(POP, 3, **options, checkpoint=path, checkpoint_every=70)
    assert_same_solution(whole, resumed)
    assert np.all(np.load(path)["leaf_0000"] == np.asarray(whole.num_steps))


def test_a_checkpoint_from_another_run_or_a_broken_file_is_refused(tmp_path):
    path = tmp_path / "run.npz"
    ua.solve(POP, 2, steps=20, checkpoint=path, checkpoint_every=10)
    with pytest.raises(ValueError, match=r"belongs to another run \(differs in: config\)"):
        ua.solve(POP, 3, steps=20, checkpoint=path)
    other = ua.RankingPopulation(jnp.where(POP.utilities > 2, POP.utilities + 1.0, POP.utilities))
    with pytest.raises(ValueError, match=r"differs in: population"):
        ua.solve(other, 2, steps=20, checkpoint=path)
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable .npz checkpoint"):
        ua.solve(POP, 2, steps=20, checkpoint=path)
    with pytest.raises(ValueError, match="checkpoint_every needs checkpoint"):
        ua.solve(POP, 2, steps=20, checkpoint_every=5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_killed_cli_run_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    """SIGKILL a real ``ualign solve`` process once its first checkpoint is on disk, resume."""
    steps, every = 4000, 100
    common = [
        str(SUSHI),
        "--k",
        "4",
        "--method",
        "hedge",
        "--steps",
        str(steps),
        "--x64",
        "--quiet",
    ]
    checkpoint = tmp_path / "run.npz"
    resumable = [*common, "--checkpoint", str(checkpoint), "--checkpoint-every", str(every)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "ualign_jax.cli", "solve", *resumable]
    proc = subprocess.Popen([*command, "--out", str(tmp_path / "a")], env=env)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be stopped"
    stopped_at = int(np.load(checkpoint)["leaf_0000"])
    assert 0 < stopped_at < steps and stopped_at % every == 0
    assert not (tmp_path / "a").exists()  # nothing half-written

    assert main(["solve", *resumable, "--out", str(tmp_path / "a")]) == 0
    assert main(["solve", *common, "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    resumed, whole = (json.loads((tmp_path / d / "policy.json").read_text()) for d in "ab")
    assert resumed == whole
    for name in ("trace.npz", "mixture.npz"):
        with np.load(tmp_path / "a" / name) as x, np.load(tmp_path / "b" / name) as y:
            for key in x.files:
                np.testing.assert_array_equal(x[key], y[key])


def test_cli_checkpoint_options_are_checked(tmp_path, capsys):
    base = ["solve", str(SUSHI), "--k", "2", "--steps", "20", "--out", str(tmp_path / "o")]
    assert main([*base, "--checkpoint-every", "5"]) == 2
    assert "--checkpoint-every needs --checkpoint" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(tmp_path / "c.npz"), "--checkpoint-every", "0"]) == 2
    assert "--checkpoint-every must be >= 1" in capsys.readouterr().err
    (tmp_path / "c.npz").write_text("garbage")
    assert main([*base, "--checkpoint", str(tmp_path / "c.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable .npz checkpoint" in err[0]
