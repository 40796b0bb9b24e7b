"""The ``ualign`` command as a user meets it: outputs, exit codes, one-line errors."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ualign_jax.cli import app, bench, common, demo, main, output, reproduce
from ualign_jax.cli import solve as solve_command
from ualign_jax.cli.progress import Progress
from ualign_jax.cli.solve import SOLVE_OUTPUTS

NETFLIX = Path(__file__).resolve().parent.parent / "ualign_jax" / "bundled" / "00004-00000001.soc"


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
    assert f"wrote 3 files in {out}" in proc.stdout
    assert "solving: 3/3 k=3" in proc.stderr and "\r" not in proc.stderr  # progress, log-safe
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
    assert sorted(p.name for p in out.iterdir()) == sorted(SOLVE_OUTPUTS)
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "optimistic_gradient" and report["outcome"] == "successful"
    assert report["steps"] < 200  # stops at the default tolerance, not after all 2000 steps
    assert report["exploitability"] <= 1e-6 + 1e-7
    assert [e["name"] for e in report["policy"]][0] == "Shrek (Full-screen)"
    policy = json.loads((out / "policy.json").read_text())
    assert policy["names"][0] == "Shrek (Full-screen)"
    assert policy["k"] == 2 and policy["method"] == "optimistic_gradient"
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
    assert [r["policy_solved_for_this_k"] for r in rows] == [False, False, True, True]
    assert json.loads(stdout)["solved_for"] == {"k": 2, "method": "optimistic_gradient"}
    code, stdout, _ = run_main(
        capsys, "evaluate", NETFLIX, "--policy", out / "policy.json", "--k", "1,2"
    )
    assert "solved for k=2 (optimistic_gradient)" in stdout


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
    with pytest.raises(SystemExit):
        main(["solve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("optimistic_gradient, extragradient", "(default: optimistic_gradient)"):
        assert words in text
    for option in ("--steps", "--tol", "--checkpoint-every", "--x64"):
        assert text.split(option)[-1].split("--")[0].count("default") == 1, option


# --------------------------------------------------------------------------- outputs (#13 6, 7)

NAMES = ["Price $5#1 $6", "$\\foo$", "tuna \udcff"]


@pytest.fixture
def tiny(tmp_path):
    """Three users, three responses, names matplotlib would read as math (one solve compiles)."""
    path = tmp_path / "tiny.npz"
    utilities = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0]])
    np.savez(path, utilities=utilities, weights=np.array([1.0, 1.0, 2.0]), names=np.array(NAMES))
    return path


def solve_tiny(capsys, tiny, out, *extra):
    return run_main(capsys, "solve", tiny, "--k", "2", "--out", out, *extra)


def hidden(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_solve_draws_and_prints_names_literally(tiny, tmp_path, capsys):
    code, stdout, err = solve_tiny(capsys, tiny, tmp_path / "o")
    assert code == 0, err
    assert "Price $5#1 $6" in stdout and "tuna \\udcff" in stdout
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert [e["name"] for e in report["policy"]] == NAMES
    assert f"wrote 6 files in {tmp_path / 'o'}" in stdout
    assert "\r" not in err  # stderr is not a terminal: plain progress lines


def test_policy_listed_by_position_even_with_repeated_names():
    entries = common.by_position(["a", "a", "b"], np.array([0.25, 0.5, 0.25]))
    assert [e["probability"] for e in entries] == [0.25, 0.5, 0.25]


def test_out_behind_a_cross_device_symlink(tiny, tmp_path, capsys):
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the temporary folder")
    target = Path(tempfile.mkdtemp(dir=other))
    try:
        (tmp_path / "link").symlink_to(target)
        code, _, err = solve_tiny(capsys, tiny, tmp_path / "link", "--quiet")
        assert code == 0, err
        assert sorted(p.name for p in target.iterdir()) == sorted(SOLVE_OUTPUTS)
        assert hidden(tmp_path) == [] and hidden(other / target.name) == []
    finally:
        shutil.rmtree(target)


def test_dangling_symlink_out_and_checkpoint(tiny, tmp_path, capsys):
    (tmp_path / "gone").symlink_to(tmp_path / "missing")
    assert_usage_error(
        capsys, ["solve", tiny, "--k", "2", "--out", tmp_path / "gone"], "--out", "does not exist"
    )
    assert_usage_error(
        capsys,
        ["solve", tiny, "--k", "2", "--out", tmp_path / "o", "--checkpoint", tmp_path / "gone"],
        "--checkpoint",
    )


def test_unwritable_places_are_refused_before_solving(tiny, tmp_path, capsys, monkeypatch):
    import ualign_jax as ua

    def no_solve(*args, **kwargs):
        raise AssertionError("solved before checking the output")

    monkeypatch.setattr(ua, "solve", no_solve)
    (tmp_path / "file").write_text("x")
    for option in ("--out", "--checkpoint"):
        argv = ["solve", tiny, "--k", "2", "--out", tmp_path / "o"]
        assert_usage_error(capsys, [*argv, option, tmp_path / "file" / "x"], option, "not a folder")
    real_mkdtemp = tempfile.mkdtemp

    def read_only(*args, **kwargs):
        if str(kwargs.get("dir", "")).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkdtemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    assert_usage_error(
        capsys, ["solve", tiny, "--k", "2", "--out", tmp_path / "o"], "--out", "Read-only"
    )
    assert_usage_error(
        capsys,
        ["solve", tiny, "--k", "2", "--out", "/tmp/x", "--checkpoint", tmp_path / "c.npz"],
        "--checkpoint",
        "Read-only",
    )


def test_a_full_disk_keeps_the_results_and_says_where(tiny, tmp_path, capsys, monkeypatch):
    real_write = common.write_json

    def full(path, payload):
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, payload)

    monkeypatch.setattr(solve_command, "write_json", full)
    code, _, err = solve_tiny(capsys, tiny, tmp_path / "o", "--quiet")
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert "No space left" in line and "the finished results are in" in line
    kept = Path(line.rsplit(" ", 1)[-1])
    try:
        assert sorted(p.name for p in kept.iterdir()) == sorted(SOLVE_OUTPUTS)
    finally:
        shutil.rmtree(kept)
    assert not (tmp_path / "o").exists() and hidden(tmp_path) == []


def test_a_failed_swap_keeps_the_finished_folder(tiny, tmp_path, capsys, monkeypatch):
    def broken(staging, target):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(output, "_swap_in", broken)
    code, _, err = solve_tiny(capsys, tiny, tmp_path / "o", "--quiet")
    assert code == 2 and "Traceback" not in err
    kept = Path(err.strip().rsplit(" ", 1)[-1])
    assert (kept / "report.json").is_file() and kept.parent == tmp_path


def test_output_folder_is_replaced_whole_and_said_so(tiny, tmp_path, capsys):
    out = tmp_path / "o"
    assert solve_tiny(capsys, tiny, out, "--quiet")[0] == 0
    (out / "stale.txt").write_text("from an older version")
    code, stdout, _ = solve_tiny(capsys, tiny, out)
    assert code == 0 and f"replaced the previous outputs in {out}" in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(SOLVE_OUTPUTS)  # one set, not a merge
    assert hidden(tmp_path) == []


def test_out_that_ualign_did_not_write_is_refused_up_front(tiny, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    assert_usage_error(capsys, ["solve", tiny, "--k", "2", "--out", mine], "--out", "not empty")
    assert (mine / "thesis.tex").read_text() == "keep me"
    out = tmp_path / "o"
    assert solve_tiny(capsys, tiny, out, "--quiet")[0] == 0
    (out / "policy.json").unlink()
    (out / "policy.json").mkdir()  # a folder where a result file goes: refused before solving
    assert_usage_error(capsys, ["solve", tiny, "--k", "2", "--out", out], "policy.json")
    assert (out / "policy.json").is_dir() and (out / "report.json").is_file()


#: ``python -m ualign_jax.cli`` that answers Ctrl-C even if this process ignores SIGINT (a job
#: put in the background by a non-interactive shell does, and its children inherit that).
CLI_SEEING_CTRL_C = [
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('ualign_jax.cli', run_name='__main__', alter_sys=True)",
]


def test_ctrl_c_exits_130_promptly_and_leaves_nothing(tmp_path):
    np.savez(tmp_path / "d.npz", utilities=np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0]]))
    checkpoint = tmp_path / "ck" / "run.npz"
    command = [*CLI_SEEING_CTRL_C, "solve", tmp_path / "d.npz", "--k", "2", "--out", tmp_path / "o"]
    command += ["--method", "hedge", "--steps", "200000", "--tol", "0"]
    command += ["--checkpoint", checkpoint, "--checkpoint-every", "1"]
    proc = subprocess.Popen([str(c) for c in command], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not checkpoint.exists():  # the run is under way: it has saved a checkpoint
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 5
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("ualign: interrupt")
    assert not (tmp_path / "o").exists() and hidden(tmp_path) == []
    assert [p.name for p in checkpoint.parent.iterdir()] == ["run.npz"]


def test_ctrl_c_waits_for_a_checkpoint_write_and_holds_back_the_next(tmp_path, monkeypatch):
    from ualign_jax import checkpoint as checkpoints

    path = tmp_path / "run.npz"
    output.track_checkpoint(path)
    writing, finish = threading.Event(), threading.Event()
    savez = np.savez

    def slow_savez(file, **arrays):  # a write caught half-way by Ctrl-C
        writing.set()
        finish.wait(10)
        savez(file, **arrays)

    monkeypatch.setattr(np, "savez", slow_savez)
    first = threading.Thread(target=checkpoints.save_checkpoint, args=(path, [np.zeros(2)], {}))
    first.start()
    assert writing.wait(10)
    threading.Timer(0.2, finish.set).start()
    try:
        with output.cancelled():  # waits for the write, then removes temporaries
            assert not first.is_alive() and [p.name for p in tmp_path.iterdir()] == ["run.npz"]
            late = threading.Thread(
                target=checkpoints.save_checkpoint, args=(path, [np.ones(2)], {}), daemon=True
            )
            late.start()
            late.join(0.3)
            assert late.is_alive()  # a write begun after Ctrl-C waits: nothing half-written
            assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]
        late.join(10)
    finally:
        output.start_run()
    assert not late.is_alive() and [p.name for p in tmp_path.iterdir()] == ["run.npz"]


# --------------------------------------------------------------------------- caps, evaluate, bench


def test_loops_over_k_are_capped(tmp_path, capsys):
    assert_usage_error(capsys, ["demo", "--k-max", str(demo.MAX_DEMO_K + 1)], "--k-max")
    assert_usage_error(
        capsys, ["evaluate", NETFLIX, "--policy", "p.json", "--k", "1-1000", "--ell", "1"], "pairs"
    )
    assert_usage_error(capsys, ["evaluate", NETFLIX, "--policy", "p.json", "--k", "1-100001"])


def test_evaluate_refuses_a_policy_for_other_names(tiny, tmp_path, capsys):
    names = ["Shrek (Full-screen)", "The X-Files: Season 2", "Tuna"]
    (tmp_path / "p.json").write_text(json.dumps({"policy": [0.2, 0.3, 0.5], "names": names}))
    assert_usage_error(
        capsys, ["evaluate", NETFLIX, "--policy", tmp_path / "p.json"], "names", "'Tuna'"
    )


def test_bench_reports_cleanly(tmp_path, capsys, monkeypatch):
    suite = tmp_path / "benchmarks" / "suite.py"
    suite.parent.mkdir()
    peers = {"games": {"g": {"solvers": {"x": {"library": "nashpy", "status": "not installed"}}}}}
    suite.write_text(
        "import json, pathlib\n"
        "out = pathlib.Path(__file__).parent / 'results'\n"
        "for name in ('a.png', 'b.png', 'c.png', 'suite_quick.json'):\n"
        "    (out / name).write_text('x')\n"
        f"(out / 'peers_quick.json').write_text(json.dumps({peers!r}))\n"
        "print('| markdown | table |')\nprint(json.dumps({'a': 1}))\n"
    )
    monkeypatch.setattr(bench, "find_suite", lambda: suite)
    code, stdout, _ = run_main(capsys, "bench")
    assert code == 0
    for name in ("a.png", "b.png", "c.png", "peers_quick.json", 'pip install -e ".[peers]"'):
        assert name in stdout
    assert "markdown" not in stdout and "{" not in stdout
    monkeypatch.setattr(bench, "find_suite", lambda: None)
    assert_usage_error(capsys, ["bench"], "clone")


def test_reproduce_table_fits_in_100_columns(capsys):
    row = {"claim": "T5 self-play regret", "passed": True, "detail": "x = 1.0e-3; " * 40}
    reproduce.print_reproduce({"rows": [row, {**row, "passed": False}]})
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100 and "1 of 2 claims hold" in lines[-1]


def test_progress_has_no_carriage_returns_off_a_terminal(capsys):
    bar = Progress(30, "solving")
    for k in range(30):
        bar.step(f"k={k}")
    err = capsys.readouterr().err
    assert "\r" not in err and 1 <= len(err.splitlines()) <= 10


def test_help_answers_without_loading_jax():
    code = (
        "import sys\nfrom ualign_jax.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "import ualign_jax\nprint(sorted(m for m in ('jax', 'matplotlib') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_ctrl_c_in_process_raises_system_exit_130(tiny, tmp_path, capsys, monkeypatch):
    def interrupted(runner, args):
        raise KeyboardInterrupt

    monkeypatch.setattr(app, "_run_interruptibly", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(["solve", str(tiny), "--k", "2", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        "ualign: interrupted; no partial output was left behind"
    ]
    assert output._CANCELLED.is_set()
    with pytest.raises(KeyboardInterrupt):  # an abandoned worker cannot swap its outputs in
        output._swap_in(tmp_path / "staging", tmp_path / "o")
    output._CANCELLED.clear()


def test_progress_is_a_tqdm_bar_on_a_terminal(monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = Progress(3, "solving")
    for k in range(3):
        bar.step(f"k={k}")
    text = sys.stderr.getvalue()
    assert "solving" in text and "3/3" in text and bar._bar is None  # closed at the end


def test_a_checkpoint_that_cannot_be_saved_mid_run_is_one_line(tiny, tmp_path, capsys, monkeypatch):
    from ualign_jax import checkpoint as checkpoint_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", full)
    argv = ["solve", tiny, "--k", "2", "--out", tmp_path / "o", "--quiet"]
    argv += ["--checkpoint", tmp_path / "run.npz", "--checkpoint-every", "2", "--tol", "0"]
    assert_usage_error(capsys, argv, "--checkpoint", "No space left")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- sweep (#18 item 6)

# Two files over the same 3 responses (one compiled program after padding) and a broken one.
CYCLE = "# NUMBER ALTERNATIVES: 3\n4: 1,2,3\n3: 2,3,1\n2: 3,1,2\n"
SPLIT = "# NUMBER ALTERNATIVES: 3\n5: 1,2,3\n4: 2,1,3\n3: 3,1,2\n"


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "cycle.soc").write_text(CYCLE)
    (folder / "split.soc").write_text(SPLIT)
    (folder / "broken.soc").write_text("# NUMBER ALTERNATIVES: 3\n2: 1,2,9\n")
    return folder


def sweep_json(capsys, *argv):
    code, stdout, err = run_main(capsys, "sweep", *argv, "--json")
    assert code == 0, err
    return json.loads(stdout)


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def test_sweep_writes_rows_resumes_and_turns_a_broken_file_into_a_row(corpus, tmp_path, capsys):
    import ualign_jax as ua
    from ualign_jax.sweep import SWEEP_METHODS

    out = tmp_path / "sweep"
    first = sweep_json(capsys, corpus, "--k", "1", "--ell", "1,2", "--out", out)
    assert first["files"] == 3 and first["rows_computed"] == 2 * 2 * len(SWEEP_METHODS)
    assert first["pairs_skipped"] == 0 and first["error_rows_this_run"] == 1
    (error,) = first["error_rows"]
    assert error["file"] == "broken.soc" and "9" in error["error"]
    assert len(rows_of(out)) == first["rows_computed"] + 1
    assert {Path(f).name for f in first["outputs"]} >= {"rows.csv", "summary.md", "summary.json"}

    # a row against the library called directly
    pop = ua.prepare(ua.load_population(corpus / "split.soc"))
    row = next(
        r
        for r in rows_of(out)
        if r["file"] == "split.soc" and r["method"] == "nlhf" and r["ell"] == 2
    )
    expected = float(ua.robust_win_rate(pop, ua.nlhf(pop), 1, 2))
    assert row["robust_win_rate"] == pytest.approx(expected, abs=1e-6)

    # files named one by one, one more k: only the new (file, k) pairs are computed
    files = [corpus / "cycle.soc", corpus / "split.soc", corpus / "broken.soc"]
    second = sweep_json(capsys, *files, "--k", "1,2", "--ell", "1,2", "--out", out)
    assert second["rows_computed"] == 2 * 2 * len(SWEEP_METHODS)
    assert second["pairs_skipped"] == 4  # the good files' k=1, the broken file's k=1 and k=2
    assert second["error_rows_this_run"] == 0 and second["rows"] == len(rows_of(out))
    before = (out / "rows.jsonl").read_bytes()

    code, stdout, _ = run_main(capsys, "sweep", corpus, "--k", "1,2", "--ell", "1,2", "--out", out)
    assert code == 0
    assert "0 rows computed, 6 (file, k) pairs skipped" in stdout
    assert "broken.soc" in stdout and f"summary: {out / 'summary.md'}" in stdout
    assert (out / "rows.jsonl").read_bytes() == before  # a rerun computes and adds nothing


def test_sweep_ctrl_c_keeps_the_rows_written_and_a_rerun_resumes(
    corpus, tmp_path, capsys, monkeypatch
):
    from ualign_jax.cli import sweep as sweep_command

    class StopAfterOne(Progress):
        def step(self, note=""):
            super().step(note)
            raise KeyboardInterrupt  # Ctrl-C once the first (file, k) is written

    monkeypatch.setattr(sweep_command, "Progress", StopAfterOne)
    out = tmp_path / "sweep"
    argv = ["sweep", corpus / "cycle.soc", corpus / "split.soc", "--k", "1", "--ell", "1"]
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in [*argv, "--out", out, "--quiet"]])
    assert exit_info.value.code == 130
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "rows written so far are kept" in line and str(out) in line
    output._CANCELLED.clear()
    kept = rows_of(out)
    assert {r["file"] for r in kept} == {"cycle.soc"} and len(kept) == 4  # one (file, k), whole

    monkeypatch.undo()
    report = sweep_json(capsys, *argv[1:], "--out", out)
    assert report["pairs_skipped"] == 1 and report["rows_computed"] == 4
    assert rows_of(out)[:4] == kept


def test_sweep_refuses_bad_places_and_options_in_one_line(corpus, tmp_path, capsys, monkeypatch):
    from ualign_jax import sweep as sweep_module

    data = corpus / "cycle.soc"
    (tmp_path / "file").write_text("x")
    assert_usage_error(capsys, ["sweep", data, "--out", tmp_path / "file"], "--out", "not a folder")
    assert_usage_error(
        capsys, ["sweep", data, "--out", tmp_path / "file" / "x"], "--out", "not a folder"
    )
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    assert_usage_error(capsys, ["sweep", data, "--out", mine], "--out", "not empty")
    assert_usage_error(
        capsys, ["sweep", tmp_path / "none.soc", "--out", tmp_path / "o"], "none.soc"
    )
    (tmp_path / "empty").mkdir()
    assert_usage_error(capsys, ["sweep", tmp_path / "empty", "--out", tmp_path / "o"], "no ")
    assert_usage_error(capsys, ["sweep", data, "--out", tmp_path / "o", "--k", "0"], "--k")
    assert_usage_error(capsys, ["sweep", data, "--out", tmp_path / "o", "--tol", "0"], "--tol")
    assert_usage_error(
        capsys, ["sweep", data, "--out", tmp_path / "o", "--method", "nope"], "--method", "nope"
    )
    real_mkdtemp = tempfile.mkdtemp

    def read_only(*args, **kwargs):
        if str(kwargs.get("dir", "")).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkdtemp(*args, **kwargs)

    def no_sweep(*args, **kwargs):
        raise AssertionError("swept before checking the output")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    monkeypatch.setattr(sweep_module, "run_sweep", no_sweep)
    for out in (tmp_path / "o", tmp_path / "empty"):  # a new folder, an existing one
        assert_usage_error(capsys, ["sweep", data, "--out", out], "--out", "Read-only")
    assert not (tmp_path / "o").exists()


def test_sweep_out_that_fails_mid_run_is_one_line(corpus, tmp_path, capsys, monkeypatch):
    from ualign_jax import sweep as sweep_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sweep_module, "run_sweep", full)
    assert_usage_error(
        capsys,
        ["sweep", corpus / "cycle.soc", "--out", tmp_path / "o"],
        "--out",
        "No space left",
        "rerun resumes",
    )


# --------------------------------------------------------------------------- reproduce T4 (#18 6)


@pytest.fixture
def fake_claims(monkeypatch):
    """Two fast claims in place of T1-T5 (the real T4 solves sushi twice in float64)."""
    import jax

    from ualign_jax import reproduce as theory

    def t2_fake():
        return {"claim": "T2 fake", "passed": True, "detail": "two"}

    def t4_fake():
        return {"claim": "T4 fake", "passed": True, "detail": "four"}

    monkeypatch.setattr(theory, "CLAIMS", (t2_fake, t4_fake))
    x64 = jax.config.jax_enable_x64
    yield theory
    jax.config.update("jax_enable_x64", x64)  # reproduce turns float64 on for its process


def test_reproduce_runs_the_claims_named(fake_claims, capsys, monkeypatch):
    code, stdout, _ = run_main(capsys, "reproduce", "t4", "--json")
    report = json.loads(stdout)
    assert code == 0 and report["claims"] == ["T4"]
    assert [r["claim"] for r in report["rows"]] == ["T4 fake"]
    code, stdout, _ = run_main(capsys, "reproduce", "T4", "T2")  # the order of CLAIMS
    assert code == 0 and stdout.splitlines()[0] == "pass  T2 fake"
    assert stdout.splitlines()[-1] == "2 of 2 claims hold"
    code, stdout, _ = run_main(capsys, "reproduce")  # no argument: every claim, as before
    assert [line for line in stdout.splitlines() if not line.startswith(" ")] == [
        "pass  T2 fake",
        "pass  T4 fake",
        "2 of 2 claims hold",
    ]
    assert_usage_error(capsys, ["reproduce", "T4", "T9"], "'T9'", "T2, T4")

    def t4_failing():
        return {"claim": "T4 failing", "passed": False, "detail": "below the bound"}

    monkeypatch.setattr(fake_claims, "CLAIMS", (t4_failing,))
    code, stdout, _ = run_main(capsys, "reproduce", "T4")
    assert code == 1 and "FAIL  T4 failing" in stdout


# --------------------------------------------------------------------------- k-output policies


LAW = {"tuples": [[0, 1], [1, 2], [2, 2]], "weights": [2.0, 1.0, 1.0]}


def test_evaluate_a_law_over_k_tuples_json_and_npz(tiny, tmp_path, capsys):
    import ualign_jax as ua
    from ualign_jax.files import write_k_output_file

    pop = ua.load_population(tiny)
    law = ua.KOutputPolicy(np.array(LAW["tuples"]), np.array(LAW["weights"]))
    uniform = ua.uniform_policy(3)
    expected = {
        ell: (
            float(ua.robust_win_rate(pop, law, 2, ell)),
            float(ua.win_rate(pop, law, 2, uniform, ell)),
        )
        for ell in (1, 2)
    }
    assert expected[1][0] != expected[2][0]  # the two rows differ: a swap would show
    for name in ("law.json", "law.npz"):
        write_k_output_file(tmp_path / name, LAW["tuples"], LAW["weights"], NAMES)
        code, stdout, err = run_main(
            capsys, "evaluate", tiny, "--policy", tmp_path / name, "--ell", "1,2", "--json"
        )
        assert code == 0, err
        report = json.loads(stdout)
        assert report["policy_kind"] == "k_tuples" and report["solved_for"] is None
        assert [(r["k"], r["ell"]) for r in report["rows"]] == [(2, 1), (2, 2)]
        for r in report["rows"]:
            robust, versus_uniform = expected[r["ell"]]
            assert r["robust_win_rate"] == pytest.approx(robust, abs=1e-6)
            assert r["win_rate_vs_uniform"] == pytest.approx(versus_uniform, abs=1e-6)
            assert not r["policy_solved_for_this_k"]
    code, stdout, _ = run_main(capsys, "evaluate", tiny, "--policy", tmp_path / "law.json")
    assert code == 0 and "law over 3 tuples of k=2" in stdout
    assert_usage_error(
        capsys,
        ["evaluate", tiny, "--policy", tmp_path / "law.json", "--k", "1,2"],
        "--k",
        "2-tuples",
        "must be 2",
    )


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"tuples": [[0, 3]]}, "index 3"),
        ({"tuples": [[0, 1], [2]]}, "equally long"),
        ({"tuples": [[0, 1]], "weights": [-1.0]}, "nonnegative"),
        ({"tuples": [[0, 1], [1, 2]], "weights": [0, 0]}, "not all zero"),
        ({"tuples": [[0, 1]], "weights": [1.0, 1.0]}, "one entry per tuple"),
        ({"tuples": [[0, 1]], "names": ["a", "b", "c"]}, "names differ"),
        ({"tuples": [[0, True]]}, "integer"),
    ],
)
def test_evaluate_refuses_a_bad_law_file_naming_it(tiny, tmp_path, capsys, payload, fragment):
    path = tmp_path / "bad_law.json"
    path.write_text(json.dumps(payload))
    assert_usage_error(
        capsys, ["evaluate", tiny, "--policy", path], "--policy", "bad_law.json", fragment
    )


def test_evaluate_refuses_a_bad_law_archive_naming_it(tiny, tmp_path, capsys):
    np.savez(tmp_path / "floats.npz", tuples=np.array([[0.0, 1.0]]))
    np.savez(tmp_path / "extra.npz", tuples=np.array([[0, 1]]), scores=np.ones(1))
    np.savez(tmp_path / "range.npz", tuples=np.array([[0, -1]]))
    for name, fragment in (("floats", "integer"), ("extra", "scores"), ("range", "index -1")):
        argv = ["evaluate", tiny, "--policy", tmp_path / f"{name}.npz"]
        assert_usage_error(capsys, argv, f"{name}.npz", fragment)


def test_policy_files_use_the_float32_simplex_tolerance(tmp_path):
    from ualign_jax._validation import simplex_tolerance
    from ualign_jax.files import load_policy_file

    tol = simplex_tolerance(np.float32)
    (tmp_path / "near.json").write_text(json.dumps([0.25, 0.75 + tol / 2]))
    policy = load_policy_file(tmp_path / "near.json", 2)
    np.testing.assert_allclose(policy.sum(), 1.0, rtol=0, atol=1e-15)  # renormalised
    (tmp_path / "off.json").write_text(json.dumps([0.25, 0.75 + 3 * tol]))
    with pytest.raises(ValueError, match="off.json.*sum to 1"):
        load_policy_file(tmp_path / "off.json", 2)
