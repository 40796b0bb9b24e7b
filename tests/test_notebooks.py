"""The notebooks in ``notebooks/`` run headless without error, and are stored without outputs.

Each notebook is executed by ``nbclient`` in a fresh Python kernel whose working directory is a
temporary folder; the executed copy lives only in memory, so nothing is written back to the
repository. A notebook fails the test on the first cell that raises (the notebooks assert the
claims their prose makes). Needs the ``test`` extra (``nbclient``, ``nbformat``, ``ipykernel``).
"""

from __future__ import annotations

import ast
import os
import re
import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: Seconds one cell may run; the notebooks take well under a minute each on a 2-core CPU.
CELL_TIMEOUT = 600


def test_notebooks_exist():
    names = {path.name for path in NOTEBOOKS}
    expected = {
        "quickstart.ipynb",
        "theory_tour.ipynb",
        "sushi_study.ipynb",
        "accelerator_scaling.ipynb",
        "training_a_policy_network.ipynb",
    }
    assert expected <= names, f"missing notebooks: {sorted(expected - names)}"


def solver_claims(text: str) -> list[tuple[str, set[str]]]:
    """Sentences that say which solver is the default, with the methods each one names."""
    from ualign_jax.solver import METHODS  # noqa: PLC0415

    claims = []
    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
        if "default" not in sentence:
            continue
        named = {m for m in METHODS if m in sentence or m.replace("_", " ") in sentence}
        if named:
            claims.append((sentence, named))
    return claims


def test_solver_claims_catch_a_wrong_default():
    (claim,) = solver_claims("`ua.solve` runs self-play (adaptive extragradient by default).")
    assert "optimistic_gradient" not in claim[1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_names_the_default_solver(path):
    """Prose that names the default solver names ``DEFAULT_METHOD`` (issue #13, item 4)."""
    from ualign_jax.solver import DEFAULT_METHOD  # noqa: PLC0415

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for sentence, named in solver_claims(cell.source):
            assert DEFAULT_METHOD in named, f"{path.name}: {sentence}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_stripped(path):
    """Stored without outputs or execution counts (git holds sources only)."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {index} has stored outputs"
            assert cell.execution_count is None, f"{path.name}: cell {index} has a count"


def code_of(path: Path) -> str:
    """A notebook's code cells as one Python module (IPython magics and shell lines left out)."""
    nb = nbformat.read(path, as_version=4)
    lines = [
        line
        for cell in nb.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if not line.lstrip().startswith(("%", "!"))
    ]
    return "\n".join(lines)


def library_names(code: str) -> set[str]:
    """Every ``ua.name`` and ``ua.namespace.name`` a module's code reads."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "ua":
                names.add(node.attr)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner = node.value
            if isinstance(inner.value, ast.Name) and inner.value.id == "ua":
                names.add(f"{inner.attr}.{node.attr}")
    return names


def test_library_names_are_found_in_code():
    code = "import ualign_jax as ua\nx = ua.solve(p, 2)\nua.plotting.plot_policy(x)\n"
    assert library_names(code) == {"solve", "plotting", "plotting.plot_policy"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_uses_only_names_the_library_has(path):
    """Every notebook parses and every ``ua.`` name it reads exists: the API drift the full runs
    (marked slow, but for the quickstart) would catch, checked without executing anything."""
    import ualign_jax as ua  # noqa: PLC0415

    missing = []
    for name in sorted(library_names(code_of(path))):
        owner = ua
        for part in name.split("."):
            if not hasattr(owner, part):
                missing.append(name)
                break
            owner = getattr(owner, part)
    assert not missing, f"{path.name} reads names ualign_jax does not have: {missing}"


#: Executing a notebook compiles dozens of programs (the theory tour takes about a minute on two
#: cores): the default suite runs the quickstart, ``-m slow`` runs the others.
FAST_NOTEBOOKS = {"quickstart"}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, marks=() if path.stem in FAST_NOTEBOOKS else pytest.mark.slow)
        for path in NOTEBOOKS
    ],
    ids=[path.stem for path in NOTEBOOKS],
)
def test_notebook_runs(path, tmp_path, monkeypatch):
    # The kernel inherits this environment; the notebooks choose their own precision. Its working
    # directory is tmp_path, so a stray relative write cannot land in the repository.
    monkeypatch.delenv("JAX_ENABLE_X64", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
        allow_errors=False,
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}", pytrace=False)
    elapsed = time.perf_counter() - start
    print(f"{path.name}: {elapsed:.1f} s", file=sys.stderr)
    assert os.listdir(tmp_path) == [], f"{path.name} left files in its working directory"
