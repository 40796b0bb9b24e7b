"""The ``ualign`` command as a user meets it: outputs, exit codes, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ualign_jax.cli import main

NETFLIX = Path(__file__).resolve().parent.parent / "ualign_jax" / "datasets" / "00004-00000001.soc"


def run_main(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(capsys, argv, *fragments):
    code, out, err = run_main(capsys, *argv)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ualign: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_demo_in_a_subprocess_prints_the_table_and_writes_outputs(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "ualign_jax.cli", "demo", "--k-max", "3", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "k/(k+1)" in proc.stdout and "NLHF" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["k"] == [1, 2, 3]
    equilibrium = report["robust_win_rate"]["ualign (k+1)-player equilibrium"]
    for k, rate in zip(report["k"], equilibrium, strict=True):
        assert rate >= k / (k + 1) - 1e-3
    for name in ("robust_win_rate.png", "policy.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo-")]


def test_solve_then_evaluate_round_trip(tmp_path, capsys):
    out = tmp_path / "solved"
    code, stdout, _ = run_main(capsys, "solve", NETFLIX, "--k", "2", "--out", out, "--quiet")
    assert code == 0
    for name in ("policy.json", "mixture.npz", "trace.npz", "report.json", "policy.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "optimistic_gradient" and report["outcome"] == "successful"
    policy = json.loads((out / "policy.json").read_text())
    assert policy["names"][0] == "Shrek (Full-screen)"
    np.testing.assert_allclose(sum(policy["policy"]), 1.0, atol=1e-6)
    code, stdout, _ = run_main(
        capsys,
        "evaluate",
        NETFLIX,
        "--policy",
        out / "policy.json",
        "--k",
        "1,2",
        "--ell",
        "1,2",
        "--json",
    )
    assert code == 0
    rows = json.loads(stdout)["rows"]
    assert [(r["k"], r["ell"]) for r in rows] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    k2 = next(r for r in rows if r["k"] == 2 and r["ell"] == 1)
    assert k2["robust_win_rate"] >= 2 / 3 - 1e-3


def test_evaluate_accepts_npz_data_and_npy_policy(tmp_path, capsys):
    np.savez(
        tmp_path / "users.npz",
        log_weights=np.array([[0.0, 1.0], [1.0, 0.0]]),
        weights=np.array([1.0, 3.0]),
        names=np.array(["a", "b"]),
    )
    np.save(tmp_path / "p.npy", np.array([0.25, 0.75]))
    code, stdout, _ = run_main(
        capsys, "evaluate", tmp_path / "users.npz", "--policy", tmp_path / "p.npy", "--k", "1"
    )
    assert code == 0 and "robust WR" in stdout


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.soc"
    bad.write_text("# NUMBER ALTERNATIVES: 3\n2: 1,2,3\n1: 1,2,7\n")
    assert_usage_error(capsys, ["solve", bad, "--k", "2", "--out", tmp_path / "o"], "bad.soc:3")
    assert not (tmp_path / "o").exists()
    assert_usage_error(
        capsys,
        ["solve", tmp_path / "missing.soc", "--k", "2", "--out", tmp_path / "o"],
        "missing.soc",
    )
    np.savez(tmp_path / "wrong.npz", scores=np.eye(2))
    assert_usage_error(
        capsys, ["evaluate", tmp_path / "wrong.npz", "--policy", "x.json"], "wrong.npz", "utilities"
    )
    assert_usage_error(capsys, ["solve", NETFLIX, "--k", "0", "--out", tmp_path / "o"], "--k")
    assert_usage_error(
        capsys,
        ["solve", NETFLIX, "--k", "2", "--out", tmp_path / "o", "--method", "nope"],
        "--method",
        "nope",
    )
    assert_usage_error(capsys, ["demo", "--k-max", "0"], "--k-max")
    assert_usage_error(capsys, ["solve", NETFLIX, "--k", "two", "--out", "o"], "--k")
    assert_usage_error(
        capsys, ["evaluate", NETFLIX, "--policy", tmp_path / "none.json"], "--policy"
    )
    (tmp_path / "p.json").write_text("[0.5, 0.6, 0.1]")
    assert_usage_error(capsys, ["evaluate", NETFLIX, "--policy", tmp_path / "p.json"], "sum to 1")
    (tmp_path / "q.json").write_text("[0.5, 0.5]")
    assert_usage_error(
        capsys, ["evaluate", NETFLIX, "--policy", tmp_path / "q.json"], "3 responses"
    )
    assert_usage_error(
        capsys, ["evaluate", NETFLIX, "--policy", tmp_path / "q.json", "--k", "1,x"], "--k"
    )
    assert_usage_error(capsys, ["frobnicate"], "frobnicate")


def test_help_is_useful(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("demo", "solve", "evaluate", "reproduce", "bench"):
        assert command in text
