"""The benchmark sweep (ualign_jax.sweep): rows against direct library calls, resuming, errors."""

import csv
import json

import numpy as np
import pytest

import ualign_jax as ua
from ualign_jax import sweep

KS, ELLS = (1, 3), (1, 2)

# Two files share n = 3 (their programs are shared after padding), one has n = 4; one is broken.
CYCLE = "# NUMBER ALTERNATIVES: 3\n4: 1,2,3\n3: 2,3,1\n2: 3,1,2\n"
CONDORCET = "# NUMBER ALTERNATIVES: 3\n5: 1,2,3\n4: 2,1,3\n3: 3,1,2\n"
TIES = "# NUMBER ALTERNATIVES: 4\n3: 1,{2,3},4\n2: 4,3\n2: 2,1\n"
MANIFEST = (
    "path,family,title,voters\n"
    "a/cycle.soc,00001,Cycle,9\n"
    "a/condorcet.soc,00001,Condorcet,12\n"
    "b/ties.toi,00002,Ties,7\n"
)


@pytest.fixture
def corpus(tmp_path):
    source = tmp_path / "corpus"
    (source / "a").mkdir(parents=True)
    (source / "b").mkdir()
    (source / "a" / "cycle.soc").write_text(CYCLE)
    (source / "a" / "condorcet.soc").write_text(CONDORCET)
    (source / "b" / "ties.toi").write_text(TIES)
    (source / "b" / "broken.soc").write_text("# NUMBER ALTERNATIVES: 3\n2: 1,2,9\n")
    (source / "notes.txt").write_text("not data")
    (source / "MANIFEST.csv").write_text(MANIFEST)
    return source


def key(row):
    return (row["file"], row["k"], row["ell"], row["method"])


@pytest.mark.slow
def test_rows_match_the_library_and_a_rerun_recomputes_nothing(corpus, tmp_path, monkeypatch):
    out = tmp_path / "out"
    events = []
    result = sweep.run_sweep(corpus, out, ks=KS, ells=ELLS, progress=events.append)

    good = [r for r in result.rows if not r["error"]]
    assert len(good) == 3 * len(KS) * len(ELLS) * len(sweep.SWEEP_METHODS)
    assert {key(r) for r in good} == {
        (f, k, ell, m)
        for f in ("a/condorcet.soc", "a/cycle.soc", "b/ties.toi")
        for k in KS
        for ell in ELLS
        for m in sweep.SWEEP_METHODS
    }
    errors = [r for r in result.rows if r["error"]]
    assert [r["file"] for r in errors] == ["b/broken.soc"] and "9" in errors[0]["error"]
    assert result.errors == 1 and result.computed == len(good)
    assert [e.done for e in events] == list(range(1, 4 * len(KS) + 1))
    assert {e.status for e in events if e.file == "b/broken.soc"} == {"error"}

    # every number against direct calls on the unpadded population
    for name in ("a/cycle.soc", "b/ties.toi"):
        pop = ua.prepare(ua.load_population(corpus / name))
        mine = {(r["k"], r["ell"], r["method"]): r for r in good if r["file"] == name}
        family, voters = ("00001", 9) if name == "a/cycle.soc" else ("00002", 7)
        assert all(r["family"] == family and r["num_voters"] == voters for r in mine.values())
        policies = {
            "nlhf": ua.nlhf(pop),
            "rlhf": ua.rlhf(pop),
            "uniform": ua.uniform_policy(pop.num_responses, pop.dtype),
        }
        for k in KS:
            sol = ua.solve(pop, k, tol=1e-6)
            policies["equilibrium"] = sol.policy
            for method, policy in policies.items():
                for ell in ELLS:
                    row = mine[(k, ell, method)]
                    exact = float(ua.robust_win_rate(pop, policy, k, ell))
                    assert row["evaluation"] == "exact"
                    assert row["robust_win_rate"] == pytest.approx(exact, abs=1e-9)
                    assert row["robust_lower"] == row["robust_upper"] == row["robust_win_rate"]
                    assert row["exploitability"] == pytest.approx(
                        float(ua.exploitability(pop, policy, k)), abs=1e-9
                    )
                    support = int(np.sum(np.asarray(policy) > row["support_threshold"]))
                    assert row["support_size"] == support
            eq = mine[(k, 1, "equilibrium")]
            assert eq["steps_taken"] == int(sol.num_steps) and eq["outcome"] == "successful"
            assert eq["robust_win_rate"] >= k / (k + 1) - 1e-6  # T1 at tol 1e-6

    # both row files hold the same rows; the summary and plots are there
    with open(out / "rows.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(result.rows)
    jsonl = (out / "rows.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in jsonl] == result.rows
    for name in ("summary.md", "summary.json"):
        assert "a/cycle.soc" in (out / name).read_text()
    for name in (sweep.WIN_RATE_PNG, sweep.SHORTFALL_PNG):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    cycle = next(f for f in summary["files"] if f["file"] == "a/cycle.soc")
    nlhf_row = next(r for r in good if key(r) == ("a/cycle.soc", 3, 1, "nlhf"))
    assert cycle["nlhf_shortfall"]["3"] == nlhf_row["exploitability"]
    assert "| a/cycle.soc | 00001 | 3 |" in (out / "summary.md").read_text()

    # a rerun reads no file, solves nothing and adds no row
    calls = []
    for name in ("_load", "_solve", "_evaluate_rows"):
        original = getattr(sweep, name)
        monkeypatch.setattr(
            sweep, name, lambda *a, _f=original, **kw: calls.append(a) or _f(*a, **kw)
        )
    again = sweep.run_sweep(corpus, out, ks=KS, ells=ELLS)
    assert calls == [] and again.computed == 0 and again.errors == 0
    assert again.skipped == 4 * len(KS)
    assert (out / "rows.jsonl").read_text().splitlines() == jsonl


def test_a_killed_run_resumes_with_the_missing_rows_only(corpus, tmp_path, monkeypatch):
    out = tmp_path / "out"
    sweep.run_sweep(corpus / "a" / "cycle.soc", out, ks=(1,), ells=(1,), plots=False)
    first = (out / "rows.jsonl").read_text().splitlines()
    assert len(first) == len(sweep.SWEEP_METHODS)
    # a run killed while writing a row leaves a torn last line
    with open(out / "rows.jsonl", "a") as handle:
        handle.write(first[0][:20])
    evaluated = []
    original = sweep._evaluate_rows

    def counting(pop, todo, *rest):
        evaluated.append({k: sorted(methods) for k, methods in todo.items()})
        return original(pop, todo, *rest)

    monkeypatch.setattr(sweep, "_evaluate_rows", counting)
    result = sweep.run_sweep([corpus / "a" / "cycle.soc"], out, ks=KS, ells=(1,), plots=False)
    assert evaluated == [{KS[1]: sorted(sweep.SWEEP_METHODS)}]
    lines = (out / "rows.jsonl").read_text().splitlines()
    assert lines[: len(first)] == first and len(lines) == 2 * len(first)
    assert result.computed == len(first) and result.skipped == 1
    with open(out / "rows.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(lines)


def test_bounds_where_enumeration_is_too_large_and_settings_must_match(corpus, tmp_path):
    out = tmp_path / "out"
    path = corpus / "b" / "ties.toi"
    k = KS[1]
    result = sweep.run_sweep(path, out, ks=(k,), ells=(2,), max_exact_opponents=5, plots=False)
    pop = ua.prepare(ua.load_population(path))
    policies = {
        "nlhf": ua.nlhf(pop),
        "rlhf": ua.rlhf(pop),
        "uniform": ua.uniform_policy(4, pop.dtype),
        "equilibrium": ua.solve(pop, k, tol=1e-6).policy,
    }
    for row in result.rows:  # C(4 + 1, 2) = 10 multisets > 5: certified bounds
        assert row["evaluation"] == "bounds" and row["robust_win_rate"] is None
        policy = policies[row["method"]]
        bounds = ua.robust_win_rate_bounds(pop, policy, k, 2)
        exact = float(ua.robust_win_rate(pop, policy, k, 2))
        assert row["robust_lower"] == pytest.approx(float(bounds.lower), abs=1e-9)
        assert row["robust_upper"] == pytest.approx(float(bounds.upper), abs=1e-9)
        assert row["robust_lower"] - 1e-9 <= exact <= row["robust_upper"] + 1e-9
    with pytest.raises(ValueError, match="out: .* other settings"):
        sweep.run_sweep(path, out, ks=(k,), ells=(2,), tol=1e-4, plots=False)


def test_too_large_files_become_error_rows_and_bad_arguments_are_refused(corpus, tmp_path):
    result = sweep.run_sweep(
        corpus / "a" / "cycle.soc", tmp_path / "out", ks=(1,), max_responses=2, plots=False
    )
    (row,) = result.rows
    assert "above max_responses=2" in row["error"] and row["k"] is None
    for bad, match in (
        ({"ks": []}, "ks"),
        ({"ks": [0]}, "ks"),
        ({"ells": [True]}, "ells"),
        ({"tol": 0.0}, "tol"),
        ({"method": "nope"}, "method"),
    ):
        with pytest.raises(ValueError, match=match):
            sweep.run_sweep(corpus, tmp_path / "other", **bad)
    with pytest.raises(ValueError, match="sources"):
        sweep.run_sweep(tmp_path / "missing", tmp_path / "other")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="out"):
        sweep.run_sweep(corpus, tmp_path / "file")


def test_a_failing_baseline_costs_its_own_rows_only(corpus, tmp_path, monkeypatch):
    def broken(pop):
        raise RuntimeError("no certificate")

    monkeypatch.setitem(sweep._BASELINES, "nlhf", broken)
    out = tmp_path / "out"
    path = corpus / "a" / "cycle.soc"
    result = sweep.run_sweep(path, out, ks=KS, ells=(1,), plots=False)
    errors = [r for r in result.rows if r["error"]]
    assert [(r["k"], r["method"], r["error"]) for r in errors] == [
        (None, "nlhf", "RuntimeError: no certificate")
    ]
    good = {(r["k"], r["method"]) for r in result.rows if not r["error"]}
    assert good == {(k, m) for k in KS for m in ("equilibrium", "rlhf", "uniform")}
    assert "nlhf" in (out / "summary.md").read_text()
    again = sweep.run_sweep(path, out, ks=KS, ells=(1,), plots=False)  # not retried
    assert again.computed == 0 and len(again.rows) == len(result.rows)
    monkeypatch.undo()
    retried = sweep.run_sweep(path, out, ks=KS, ells=(1,), plots=False, retry_errors=True)
    assert retried.computed == len(KS) and not any(r["error"] for r in retried.rows)
    assert len((out / "rows.jsonl").read_text().splitlines()) == len(retried.rows)


def test_padding_users_keeps_every_payoff():
    pop = ua.RankingPopulation(
        np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0]]), [3.0, 1.0], ["a", "b", "c"]
    )
    padded = sweep._pad_users(pop)
    assert padded.num_users == sweep.MIN_USER_BUCKET and padded.names is None
    policy = np.array([0.2, 0.3, 0.5])
    for k in (1, 2, 5):
        np.testing.assert_allclose(
            ua.response_payoffs(padded, policy, k), ua.response_payoffs(pop, policy, k), atol=1e-15
        )


def test_files_given_on_their_own_find_their_manifest_row_or_their_preflib_family(corpus):
    found = sweep.find_data_files([corpus / "a" / "cycle.soc", corpus / "b" / "ties.toi"])
    assert [(f.file, f.family, f.title, f.num_voters) for f in found] == [
        ("cycle.soc", "00001", "Cycle", 9),
        ("ties.toi", "00002", "Ties", 7),
    ]
    named = corpus / "c" / "00042-00000016.soi"
    named.parent.mkdir()
    named.write_text(CYCLE)
    (plain,) = sweep.find_data_files(named)
    assert (plain.family, plain.title, plain.num_voters) == ("00042", "", None)
    (listed,) = sweep.find_data_files(corpus / "a" / "condorcet.soc")
    assert listed.family == "00001"
    (unlisted,) = sweep.find_data_files(corpus / "b" / "broken.soc")
    assert unlisted.family == ""
    # a subfolder of the corpus named as the source: its files keep the corpus manifest's rows
    assert [(f.file, f.family, f.num_voters) for f in sweep.find_data_files(corpus / "a")] == [
        ("condorcet.soc", "00001", 12),
        ("cycle.soc", "00001", 9),
    ]
