"""Bad command lines, data files and policy files for the ``ualign`` CLI (the cli/ package).

Every case must exit with code 2 and print exactly one ``ualign: error:`` line naming the option
or file, with no traceback. The catalogues: ``BAD_COMMAND_LINES``, the files of
``_inputs.BAD_FILES`` named in ``BAD_CLI_DATA``, ``BAD_CLI_POLICIES`` and
``BAD_OUTPUTS_AND_POLICIES`` (an --out that is a file or inside one, empty, complex or boolean
policies, a k range too long to hold in memory).
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from ualign_jax.cli import main as cli_main

from ._inputs import BAD_FILES, PI, U3, write_npy, write_npz

pytestmark = pytest.mark.fuzz  # deselect with -m 'not fuzz'


def run_cli(argv):
    """``ualign argv`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_usage_error(argv, *fragments):
    code, out, err = run_cli(argv)
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("ualign: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])


def cli_files(d):
    write_npz(d / "users.npz", utilities=U3)
    (d / "p.json").write_text(json.dumps(PI.tolist()))
    return d / "users.npz", d / "p.json"


#: Bad command lines: ``name -> argv(folder)`` and the fragments the error line must name.
BAD_COMMAND_LINES = {
    "solve --k 0": (lambda d, u, p: ["solve", u, "--k", "0", "--out", d / "o"], ["--k"]),
    "solve --k -3": (lambda d, u, p: ["solve", u, "--k", "-3", "--out", d / "o"], ["--k"]),
    "solve --k x": (lambda d, u, p: ["solve", u, "--k", "x", "--out", d / "o"], ["--k"]),
    "solve --k 1.5": (lambda d, u, p: ["solve", u, "--k", "1.5", "--out", d / "o"], ["--k"]),
    "solve --k 2**40": (
        lambda d, u, p: ["solve", u, "--k", 2**40, "--out", d / "o", "--quiet"],
        ["k", str(2**40)],
    ),
    "solve --steps 0": (
        lambda d, u, p: ["solve", u, "--k", "2", "--steps", "0", "--out", d / "o"],
        ["--steps"],
    ),
    "solve --tol nan": (
        lambda d, u, p: ["solve", u, "--k", "2", "--tol", "nan", "--out", d / "o"],
        ["--tol"],
    ),
    "solve --tol -1": (
        lambda d, u, p: ["solve", u, "--k", "2", "--tol", "-1", "--out", d / "o"],
        ["--tol"],
    ),
    "solve --method nope": (
        lambda d, u, p: ["solve", u, "--k", "2", "--method", "nope", "--out", d / "o"],
        ["--method", "nope"],
    ),
    "solve a missing file": (
        lambda d, u, p: ["solve", d / "missing.soc", "--k", "2", "--out", d / "o"],
        ["missing.soc"],
    ),
    "solve a directory": (
        lambda d, u, p: ["solve", d, "--k", "2", "--out", d / "o"],
        ["unknown data format"],
    ),
    "unknown subcommand": (lambda d, u, p: ["frobnicate"], ["frobnicate"]),
    "unknown option": (
        lambda d, u, p: ["solve", u, "--k", "2", "--out", d / "o", "--frob"],
        ["--frob"],
    ),
    "evaluate --k 0": (lambda d, u, p: ["evaluate", u, "--policy", p, "--k", "0"], ["--k"]),
    "evaluate --k 1--3": (lambda d, u, p: ["evaluate", u, "--policy", p, "--k", "1--3"], ["--k"]),
    "evaluate --ell x": (lambda d, u, p: ["evaluate", u, "--policy", p, "--ell", "x"], ["--ell"]),
    "evaluate --ell 10**6": (
        lambda d, u, p: ["evaluate", u, "--policy", p, "--k", "1", "--ell", str(10**6)],
        ["--ell", "at most"],
    ),
    "evaluate a missing policy": (
        lambda d, u, p: ["evaluate", u, "--policy", d / "none.json"],
        ["--policy"],
    ),
    "demo --k-max 0": (lambda d, u, p: ["demo", "--k-max", "0"], ["--k-max"]),
}
#: Bad files handed to the CLI: the error must name the file.
BAD_CLI_DATA = ["npz of random bytes", "empty npz file", "truncated npz", "npz utilities complex"]
BAD_CLI_DATA += ["non-UTF-8 PrefLib file", "PrefLib file with an error on line 3"]
BAD_CLI_DATA += ["unknown extension"]
#: Bad policy files for ``ualign evaluate``: (file name, content).
BAD_CLI_POLICIES = {
    "JSON syntax error": ("a.json", b"{not json"),
    "JSON without a policy key": ("b.json", b'{"x": 1}'),
    "JSON string": ("c.json", b'"abc"'),
    "JSON null": ("d.json", b"null"),
    "JSON nested list": ("e.json", b"[[0.2, 0.3, 0.5]]"),
    "JSON ragged list": ("f.json", b"[0.2, [0.3], 0.5]"),
    "JSON wrong length": ("g.json", b"[0.5, 0.5]"),
    "JSON NaN": ("h.json", b"[NaN, 0.5, 0.5]"),
    "JSON negative entry": ("i.json", b"[-0.5, 1.0, 0.5]"),
    "JSON unnormalised": ("j.json", b"[1, 1, 1]"),
    "JSON overflowing number": ("k.json", b"[1e400, 0, 0]"),
    "random bytes .npy": ("l.npy", b"\x93NUMPY garbage"),
    "random bytes .npz": ("m.npz", b"garbage"),
    "npz without a policy key": ("n.npz", None),
    "unsupported extension": ("o.txt", b"0.2 0.3 0.5"),
}


@pytest.mark.parametrize("name", list(BAD_COMMAND_LINES))
def test_cli_bad_options_exit_2_with_one_line(name, scratch):
    users, policy = cli_files(scratch)
    argv, fragments = BAD_COMMAND_LINES[name]
    assert_usage_error(argv(scratch, users, policy), *fragments)


@pytest.mark.parametrize("name", BAD_CLI_DATA)
def test_cli_bad_data_files_exit_2_naming_the_file(name, scratch):
    path = BAD_FILES[name](scratch)
    assert_usage_error(["solve", path, "--k", "2", "--out", scratch / "o"], path.name)
    assert not (scratch / "o").exists()


@pytest.mark.parametrize("name", list(BAD_CLI_POLICIES))
def test_cli_bad_policy_files_exit_2_naming_the_option(name, scratch):
    users, _ = cli_files(scratch)
    file_name, content = BAD_CLI_POLICIES[name]
    path = scratch / file_name
    if content is None:
        write_npz(path, weights=PI)
    else:
        path.write_bytes(content)
    assert_usage_error(["evaluate", users, "--policy", path, "--k", "1"], "--policy")


#: Outputs and policies the CLI must refuse with exit 2 and one error line (no progress line
#: above it): ``name -> argv(folder, users file)``.
BAD_OUTPUTS_AND_POLICIES = {
    "--out is an existing file": lambda d, u: [
        "solve",
        u,
        "--k",
        "2",
        "--steps",
        "5",
        "--out",
        d / "p.json",
    ],
    "--out inside a file": lambda d, u: [
        "solve",
        u,
        "--k",
        "2",
        "--steps",
        "5",
        "--quiet",
        "--out",
        d / "p.json" / "sub",
    ],
    "empty .npy policy": lambda d, u: ["evaluate", u, "--policy", d / "e.npy"],
    "complex .npy policy": lambda d, u: [
        "evaluate",
        u,
        "--policy",
        d / "c.npy",
        "--k",
        "1",
    ],
    "JSON booleans as a policy": lambda d, u: ["evaluate", u, "--policy", d / "b.json", "--k", "1"],
    "--k 1-100000000000 (10**11 values)": lambda d, u: [
        "evaluate",
        u,
        "--policy",
        d / "p.json",
        "--k",
        "1-100000000000",
    ],
}


@pytest.mark.parametrize("name", list(BAD_OUTPUTS_AND_POLICIES))
def test_cli_bad_outputs_and_policies_exit_2_with_one_line(name, scratch):
    """cli/: each input ends in exit code 2 and one error line, not a traceback or a late
    error after solving."""
    users, _ = cli_files(scratch)
    (scratch / "e.npy").write_bytes(b"")
    write_npy(scratch / "c.npy", PI + 0.5j)
    (scratch / "b.json").write_text("[true, false, false]")
    try:
        assert_usage_error(BAD_OUTPUTS_AND_POLICIES[name](scratch, users))
    except (AssertionError, OSError, EOFError, MemoryError) as err:
        pytest.fail(f"{name}: {type(err).__name__}: {err}")
