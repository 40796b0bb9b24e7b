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

checkpoint_module = importlib.import_module("ualign_jax.checkpoint")
SUSHI = Path(ua.__file__).parent / "bundled" / "00014-00000001.soc"
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
    real_save = checkpoint_module.save_checkpoint

    def save_then_stop(*args):
        real_save(*args)
        saves.append(args)
        if len(saves) == 2:
            raise KeyboardInterrupt  # the user stops the run right after the second checkpoint

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        ua.solve(POP, 3, **options, checkpoint=path, checkpoint_every=70)
    stopped_at = np.load(path)["leaf_0000"]  # RunState.step, per prompt
    assert np.all(stopped_at == 140)
    monkeypatch.setattr(checkpoint_module, "save_checkpoint", real_save)
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
    steps, every = 2000, 100
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


def _rewrite(path, **changes):
    """Rewrite the checkpoint at ``path`` with some arrays replaced (None: removed)."""
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays.update(changes)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})


def _leaf(path, offset_from_end):
    with np.load(path) as stored:
        keys = sorted(k for k in stored.files if k.startswith("leaf_"))
        key = keys[len(keys) - offset_from_end]
        return key, stored[key]


def _retyped_steps(path):
    """The saved metadata with ``steps`` written as a float (20.0 == 20 in Python)."""
    with np.load(path) as stored:
        metadata = json.loads(str(stored["__metadata__"]))
    metadata["config"]["steps"] = float(metadata["config"]["steps"])
    return json.dumps(metadata)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "run.npz"
    ua.solve(POP, 2, method="hedge", steps=20, checkpoint=path, checkpoint_every=10)
    return path.read_bytes()


# leaves after `kept`: the trace buffers, `last`, `done`
LAST = 2
KEPT = 3 + len(ua.Trace._fields)


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (lambda p: {"leaf_0000": np.full(2, 10**6, np.int32)}, r"step 1000000 is outside 0\.\.20"),
        (lambda p: {"leaf_0000": np.full(2, -1, np.int32)}, r"step -1 is outside"),
        (
            lambda p: {_leaf(p, LAST)[0]: np.full_like(_leaf(p, LAST)[1], 0.5)},
            "last iterate is not a probability vector",
        ),
        (
            lambda p: {_leaf(p, KEPT)[0]: _leaf(p, KEPT)[1] + 1.0},
            "kept iterates are not probability vectors",
        ),
        (
            lambda p: {_leaf(p, LAST)[0]: np.full_like(_leaf(p, LAST)[1], np.nan)},
            "non-finite values",
        ),
        (lambda p: {"leaf_0001": np.zeros(3)}, r"array 1 has float64\[3\]"),
        (lambda p: {"leaf_0001": None}, "missing: leaf_0001"),
        (lambda p: {"leaf_0001": None, "leaf_x": np.zeros(1)}, "unexpected: 'leaf_x'"),
        (lambda p: {"__metadata__": None}, "no __metadata__ record"),
        (lambda p: {"__metadata__": np.asarray("[1, 2]")}, "must be a JSON object, got list"),
        (lambda p: {"__metadata__": np.asarray(3.0)}, "must be a text record"),
        (lambda p: {"__metadata__": np.asarray("[" * 100_000)}, "nested too deeply"),
        (lambda p: {"__metadata__": np.asarray("{'a': 1}")}, "not valid JSON"),
        (
            lambda p: {"__metadata__": np.asarray(_retyped_steps(p))},
            r"belongs to another run \(differs in: config\)",
        ),
    ],
)
def test_every_field_of_a_checkpoint_is_validated(tmp_path, saved_run, edit, what):
    """A hand-edited step of 10**6 was accepted (the report said 1000000 steps of 20)."""
    path = tmp_path / "run.npz"
    path.write_bytes(saved_run)
    _rewrite(path, **edit(path))
    with pytest.raises(ValueError, match=what) as info:
        ua.solve(POP, 2, method="hedge", steps=20, checkpoint=path, checkpoint_every=10)
    assert str(info.value).startswith(f"checkpoint {path}")


def test_cli_refuses_an_edited_checkpoint_in_one_line(tmp_path, capsys):
    base = ["solve", str(SUSHI), "--k", "2", "--steps", "20", "--quiet"]
    checkpoint = tmp_path / "c.npz"
    assert main([*base, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "a")]) == 0
    _rewrite(checkpoint, leaf_0000=np.asarray(10**6, np.int32))
    assert main([*base, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "step 1000000 is outside 0..20" in err[0]
    assert not (tmp_path / "b").exists()
