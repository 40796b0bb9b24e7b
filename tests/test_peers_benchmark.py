"""benchmarks/peers.py: the NumPy reference and ualign_jax on the smallest game, fast.

The optional peers (OpenSpiel, Gambit, EGTtools, nashpy) are not needed: a missing one is
recorded as "not installed", never raised.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "peers.py"
ENTRY_KEYS = {"reached", "time_s", "iterations", "exploitability", "ratio"}


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("peers_benchmark", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_reference_and_ualign_reach_tolerance(peers, tmp_path):
    names = [peers.REFERENCE, "numpy optimistic_gradient"]
    smallest = peers.GAME_NAMES[0]
    result = peers.benchmark(quick=True, games=[smallest], solvers=names, log=lambda *_: None)

    top = {"date", "device", "versions", "mode", "tolerances", "reference", "budget", "games"}
    assert top <= result.keys()
    assert {"platform", "machine", "cpu_count", "jax_device"} <= result["device"].keys()
    assert {"jax", "jaxlib", "numpy", "open_spiel", "pygambit", "egttools", "nashpy"} <= set(
        result["versions"]
    )
    assert list(result["games"]) == [smallest]
    game = result["games"][smallest]
    assert {"n", "k", "num_players", "ualign_call_floor_s", "solvers"} <= game.keys()
    assert list(game["solvers"]) == names
    for name in names:
        record = game["solvers"][name]
        assert record["status"] == "ok", record
        assert set(record["tolerances"]) == {f"{t:g}" for t in peers.TOLERANCES}
        entry = record["tolerances"]["0.001"]
        assert ENTRY_KEYS <= entry.keys()
        assert entry["reached"] and entry["exploitability"] <= 1e-3
        assert entry["time_s"] > 0 and entry["iterations"] >= 1
    reference = game["solvers"][peers.REFERENCE]["tolerances"]["0.001"]
    numpy_og = game["solvers"]["numpy optimistic_gradient"]["tolerances"]["0.001"]
    assert reference["ratio"] == 1.0
    assert numpy_og["ratio"] == pytest.approx(numpy_og["time_s"] / reference["time_s"])
    # The NumPy reference is the same dynamic: it stops at the same step (up to rounding).
    assert abs(numpy_og["iterations"] - reference["iterations"]) <= 1

    json.dumps(result)  # JSON-ready as is
    assert peers.REFERENCE in peers.markdown_table(result)
    peers.plot(result, tmp_path / "peers.png")
    assert (tmp_path / "peers.png").stat().st_size > 0


def test_missing_peer_is_recorded(peers, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygambit", None)  # `import pygambit` now fails
    monkeypatch.setattr(peers, "DISTRIBUTIONS", ("numpy", "no-such-peer-distribution"))
    assert peers.library_versions()["no-such-peer-distribution"] is None

    game = peers.make_games(names=[peers.GAME_NAMES[0]])[0]
    ctx = peers.Context(peers.QUICK, tmp_path, peers.GambitWorker(1.0))
    for solver in peers.SOLVERS:
        if solver.library == "pygambit":
            record = peers.run_solver(solver, game, ctx)
            assert record["status"] == "not installed", record
            assert "ImportError" in record["why"] or "ModuleNotFoundError" in record["why"]
