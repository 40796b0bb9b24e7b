"""PrefLib reader: bundled data sets, incomplete orders, and one error per malformed input."""

from __future__ import annotations

import numpy as np
import pytest

from ualign_jax.datasets import DATASETS, load_dataset
from ualign_jax.populations import RankingPopulation
from ualign_jax.preflib import load_preflib, parse_preflib


@pytest.mark.parametrize(
    ("name", "num_users", "num_responses", "first_name"),
    [
        ("sushi", 4926, 10, "anago (sea eel)"),
        ("netflix", 6, 3, "Shrek (Full-screen)"),
        ("agh", 123, 9, "Course 1"),
        ("debian", 31, 4, "Branden Robinson"),
    ],
)
def test_bundled_datasets_load(name, num_users, num_responses, first_name):
    pop = load_dataset(name)
    assert isinstance(pop, RankingPopulation)
    assert pop.utilities.shape == (num_users, num_responses)
    assert pop.names is not None and len(pop.names) == num_responses
    assert pop.names[0] == first_name
    np.testing.assert_allclose(float(np.sum(pop.weights)), 1.0, rtol=1e-5)
    u = np.asarray(pop.utilities)
    if name != "debian":  # strict complete orders: every row is a permutation of 1..n
        np.testing.assert_array_equal(
            np.sort(u, axis=1), np.tile(np.arange(1, num_responses + 1), (num_users, 1))
        )


def test_sushi_weights_proportional_to_counts():
    from importlib import resources

    text = resources.files("ualign_jax").joinpath("bundled").joinpath(DATASETS["sushi"]).read_text()
    data = parse_preflib(text, DATASETS["sushi"])
    assert data.counts.sum() == 5000 and data.counts.shape == (4926,)
    assert data.data_type == "soc" and data.title == "Sushi 10 Rank"
    pop = load_dataset("sushi")
    np.testing.assert_allclose(np.asarray(pop.weights) * 5000, data.counts, rtol=1e-5)


def test_debian_ties():
    pop = load_dataset("debian")
    u = np.asarray(pop.utilities)
    # data line 11 is "9: 3,{1,2,4}": alternative 3 strictly best, 1, 2, 4 exactly tied
    row = u[10]
    assert row[2] > row[0]
    assert row[0] == row[1] == row[3]
    # "5: 3,2,{1,4}": 3 > 2 > 1 == 4
    assert u[12][2] > u[12][1] > u[12][0] == u[12][3]
    assert any(len(set(r)) < 4 for r in u)


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match="agh, debian, netflix, sushi"):
        load_dataset("movielens")


@pytest.mark.parametrize("ext", ["soi", "toi"])
def test_incomplete_orders_tie_unranked_at_bottom(tmp_path, ext):
    body = "3: 2,{4,1}\n2: 5\n" if ext == "toi" else "3: 2,4,1\n2: 5\n"
    path = tmp_path / f"mini.{ext}"
    path.write_text(
        "# TITLE: mini\n# NUMBER ALTERNATIVES: 5\n# NUMBER VOTERS: 5\n"
        "# ALTERNATIVE NAME 1: a\n# ALTERNATIVE NAME 2: b\n" + body
    )
    pop = load_preflib(path)
    u = np.asarray(pop.utilities)
    assert u.shape == (2, 5)
    assert pop.names == ("a", "b", "3", "4", "5")
    np.testing.assert_allclose(np.asarray(pop.weights), [0.6, 0.4], rtol=1e-6)
    ranked, unranked = [1, 3, 0], [2, 4]
    assert u[0, ranked].min() > u[0, unranked].max()
    assert u[0, 2] == u[0, 4]  # unranked tie exactly
    assert u[0, 1] > u[0, 3] >= u[0, 0]
    assert (u[0, 3] == u[0, 0]) == (ext == "toi")
    assert u[1, 4] > 0 and np.all(u[1, :4] == u[1, 0])


def test_parse_fallbacks():
    # no NUMBER ALTERNATIVES: use the largest ALTERNATIVE NAME; no DATA TYPE: the extension
    data = parse_preflib("# ALTERNATIVE NAME 3: c\n1: 2\n", source="x.soi")
    assert data.data_type == "soi" and data.names == ("1", "2", "c")
    np.testing.assert_array_equal(data.utilities, [[0.0, 1.0, 0.0]])


def test_missing_file(tmp_path):
    path = tmp_path / "nope.soc"
    with pytest.raises(FileNotFoundError, match="nope.soc"):
        load_preflib(path)


HEAD = "# DATA TYPE: {dt}\n# NUMBER ALTERNATIVES: 4\n"  # lines 1-2


@pytest.mark.parametrize(
    ("ext", "content", "line", "what"),
    [
        ("soc", HEAD + "2: 1,2,3,4\n3 1,2,3,4\n", 4, "no ':'"),
        ("soc", HEAD + "x: 1,2,3,4\n", 3, "not an integer"),
        ("soc", HEAD + "1.5: 1,2,3,4\n", 3, "not an integer"),
        ("soc", HEAD + "0: 1,2,3,4\n", 3, "positive"),
        ("soc", HEAD + "-2: 1,2,3,4\n", 3, "positive"),
        ("toc", HEAD + "1: 1,{2,{3},4}\n", 3, "brace"),
        ("toc", HEAD + "1: 1,{2,3,4\n", 3, "brace"),
        ("toc", HEAD + "1: 1,2},3,4\n", 3, "brace"),
        ("toc", HEAD + "1: 1,{},2,3,4\n", 3, "empty"),
        ("soc", HEAD + "1: 1,2,3,4\n1: 1,2,3,5\n", 4, "out of range"),
        ("soc", HEAD + "1: 0,1,2,3\n", 3, "out of range"),
        ("soc", HEAD + "1: 1,2,2,4\n", 3, "more than once"),
        ("toi", HEAD + "1: 1,{2,1}\n", 3, "more than once"),
        ("soc", HEAD + "1: 1,2,a,4\n", 3, "not an integer"),
        ("soc", HEAD + "1: 1,2,,3,4\n", 3, "expected an alternative"),
        ("soc", HEAD + "\n1: 1,2,3\n", 4, "incomplete"),
        ("toc", HEAD + "1: {1,2},3\n", 3, "incomplete"),
        ("soc", HEAD + "1: 1,2,{3,4}\n", 3, "ties"),
        ("soi", HEAD + "1: {1,2}\n", 3, "ties"),
        ("soc", HEAD + "1:\n", 3, "empty ranking"),
        ("soc", "# NUMBER VOTERS: 3\n" + HEAD + "1: 1,2,3,4\n1: 4,3,2,1\n", 1, "NUMBER VOTERS"),
        ("soc", HEAD.replace(": 4", ": four") + "1: 1\n", 2, "NUMBER ALTERNATIVES"),
        ("soc", HEAD + "# ALTERNATIVE NAME 5: e\n1: 1,2,3,4\n", 3, "ALTERNATIVE NAME 5"),
        ("soc", HEAD.replace("{dt}", "toc") + "1: 1,2,3,4\n", 1, "disagrees"),
        ("soc", HEAD.replace("{dt}", "tog") + "1: 1,2,3,4\n", 1, "unsupported DATA TYPE"),
    ],
)
def test_malformed_line_reports_file_and_line(tmp_path, ext, content, line, what):
    path = tmp_path / f"bad.{ext}"
    path.write_text(content.replace("{dt}", ext))
    with pytest.raises(ValueError, match=what) as info:
        load_preflib(path)
    assert f"bad.{ext}:{line}:" in str(info.value)


def test_file_level_errors(tmp_path):
    empty = tmp_path / "empty.soc"
    empty.write_text("# DATA TYPE: soc\n# NUMBER ALTERNATIVES: 2\n")
    with pytest.raises(ValueError, match=r"empty\.soc: no data lines"):
        load_preflib(empty)
    unknown = tmp_path / "votes.txt"
    unknown.write_text("1: 1,2\n")
    with pytest.raises(ValueError, match=r"votes\.txt: unknown data type"):
        load_preflib(unknown)
    with pytest.raises(ValueError, match=r"votes\.toc:1: expected"):
        parse_preflib("1 2,1\n", source="votes.toc")


@pytest.mark.parametrize(
    ("header", "line", "what"),
    [
        ("# ALTERNATIVE NAME 1: A\n# ALTERNATIVE NAME 2: A\n", 4, "alternative 1 .line 3."),
        ("# ALTERNATIVE NAME 1: A\n# ALTERNATIVE NAME 2:\n", 4, "alternative 2 has an empty name"),
        ("# ALTERNATIVE NAME 1: 2\n", 3, "default name of unnamed alternative 2"),
    ],
)
def test_repeated_or_empty_names_are_refused_with_their_line(tmp_path, header, line, what):
    path = tmp_path / "names.soc"
    path.write_text(HEAD.replace("{dt}", "soc") + header + "1: 1,2,3,4\n")
    with pytest.raises(ValueError, match=what) as info:
        load_preflib(path)
    assert f"names.soc:{line}:" in str(info.value)


def test_an_alternative_may_carry_its_own_default_name():
    data = parse_preflib("# ALTERNATIVE NAME 2: 2\n# ALTERNATIVE NAME 1: b\n1: 1,2\n", "x.soc")
    assert data.names == ("b", "2")


@pytest.mark.parametrize(
    ("names", "what"),
    [
        (["A", "B", "A"], r"'names'\[0\] and 'names'\[2\] are both 'A'"),
        (["A", " ", "C"], r"'names'\[1\] is empty"),
        (np.array([b"A", b"\xff", b"C"]), r"'names'\[1\] is not UTF-8"),
    ],
)
def test_npz_names_must_be_unique_and_non_empty(tmp_path, names, what):
    from ualign_jax.files import load_population

    path = tmp_path / "users.npz"
    np.savez(path, utilities=np.eye(3), names=np.asarray(names))
    with pytest.raises(ValueError, match=what) as info:
        load_population(path)
    assert "users.npz" in str(info.value)


def test_npz_byte_names_are_decoded(tmp_path):
    from ualign_jax.files import load_population

    path = tmp_path / "users.npz"
    np.savez(path, utilities=np.eye(2), names=np.array([b"caf\xc3\xa9", b"tea"]))
    assert load_population(path).names == ("café", "tea")


def test_a_cast_that_would_merge_distinct_utilities_is_refused(tmp_path):
    """float32 rounds 1 + 1e-9 to 1: the robust win rate of (0, 1, 0) would read 0.75, not 0.5."""
    import jax
    import jax.numpy as jnp

    from ualign_jax.files import load_population

    path = tmp_path / "close.npz"
    utilities = np.array([[1.0, 1.0 + 1e-9, 0.0], [0.0, 1.0, 1.0 + 1e-9]])
    np.savez(path, utilities=utilities)
    with pytest.raises(ValueError, match=r"close\.npz.*responses 0 and 1.*float32.*--x64"):
        load_population(path, dtype=jnp.float32)
    if jax.config.jax_enable_x64:  # float64 keeps them apart; the true value is 1/2
        import ualign_jax as ua

        pop = load_population(path, dtype=jnp.float64)
        rate = ua.robust_win_rate(pop, jnp.asarray([0.0, 1.0, 0.0], jnp.float64), 1)
        np.testing.assert_allclose(float(rate), 0.5)
    np.savez(path, utilities=np.array([[1e39, 0.0]]))
    with pytest.raises(ValueError, match="beyond the range of float32"):
        load_population(path, dtype=jnp.float32)
    np.savez(path, utilities=np.array([[1e-40, 0.0]]))  # subnormal in float32: flushed to 0
    with pytest.raises(ValueError, match="responses 0 and 1"):
        load_population(path, dtype=jnp.float32)
    # ties already in the file, and mere rounding, are fine
    np.savez(path, utilities=np.array([[0.1, 0.1, 0.3], [1.0 + 1e-9, 2.0, 0.0]]))
    pop = load_population(path, dtype=jnp.float32)
    assert pop.dtype == jnp.float32


def test_preflib_data_refuses_a_merging_cast():
    import jax.numpy as jnp

    text = "# DATA TYPE: soc\n1: " + ",".join(str(i) for i in range(1, 2050)) + "\n"
    data = parse_preflib(text, "wide.soc")
    with pytest.raises(ValueError, match=r"wide\.soc: user 0 .* float16"):
        data.to_population(jnp.float16)
    assert data.to_population(jnp.float32).num_responses == 2049


def test_memory_follows_the_data_not_the_declared_size():
    """A 1.8 KB .soi declaring 10**6 alternatives reached 24 GB: now the never-ranked ones
    become one response, and parsing allocates a few MB."""
    import tracemalloc

    rng = np.random.default_rng(0)
    lines = [f"1: {','.join(str(a) for a in rng.choice(10**6, 5, replace=False) + 1)}"]
    lines += [f"1: {rng.integers(1, 10**6)}" for _ in range(60)]
    text = "# DATA TYPE: soi\n# NUMBER ALTERNATIVES: 1000000\n" + "\n".join(lines) + "\n"
    assert len(text) < 1800
    tracemalloc.start()
    try:
        data = parse_preflib(text, "wide.soi")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20, peak  # was 61 lines x 10**6 float64 = 488 MB before any solve
    ranked = sorted({int(a) for line in lines for a in line[3:].split(",")})
    assert data.utilities.shape == (61, len(ranked) + 1)
    assert data.names[:-1] == tuple(str(a) for a in ranked)
    assert data.names[-1] == f"[{10**6 - len(ranked):,} alternatives no one ranked]"
    assert data.alternatives.tolist() == [*ranked, 0]
    assert len(data.merged) == 10**6 - len(ranked) and ranked[0] not in set(data.merged[:10])
    np.testing.assert_array_equal(data.utilities[:, -1], 0.0)


def test_merged_never_ranked_alternatives_give_the_same_game(tmp_path):
    """Win rates depend only on the total probability of interchangeable alternatives."""
    import jax.numpy as jnp

    import ualign_jax as ua

    path = tmp_path / "few.toi"
    path.write_text(
        "# NUMBER ALTERNATIVES: 8\n# ALTERNATIVE NAME 5: e\n3: 2,{4,1}\n2: 4\n1: 1,{2,4}\n"
    )
    full = load_preflib(path, merge_unranked=False)
    merged = load_preflib(path)
    assert full.names == ("1", "2", "3", "4", "e", "6", "7", "8")
    assert merged.names == ("1", "2", "4", "e", "[4 alternatives no one ranked]")
    policy = jnp.asarray(np.random.default_rng(1).dirichlet(np.ones(8)))
    kept, never = [0, 1, 3, 4], [2, 5, 6, 7]
    folded = jnp.concatenate([policy[jnp.asarray(kept)], jnp.sum(policy[jnp.asarray(never)])[None]])
    for k in (1, 3):
        u_full = np.asarray(ua.response_payoffs(full, policy, k))
        u_merged = np.asarray(ua.response_payoffs(merged, folded, k))
        np.testing.assert_allclose(u_merged, u_full[[*kept, 2]], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(u_full[never], u_full[2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (
            "# NUMBER ALTERNATIVES: 1000001\n1: 1\n",
            r"w\.soi:1: NUMBER ALTERNATIVES = 1000001 exceeds",
        ),
        ("# ALTERNATIVE NAME 1000001: x\n1: 1\n", r"w\.soi:1: bad alternative number"),
        ("1: 1,1000001\n", r"w\.soi:1: alternative '1000001' exceeds the limit 1,000,000"),
    ],
)
def test_a_declared_size_over_the_limit_is_refused_up_front(text, what):
    with pytest.raises(ValueError, match=what):
        parse_preflib(text, "w.soi")


def test_npz_sizes_are_checked_from_the_header_before_reading(tmp_path):
    import zipfile

    from ualign_jax.files import load_population

    path = tmp_path / "big.npz"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("utilities.npy", "w") as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f8", "fortran_order": False, "shape": (2**15, 2**14)}
            )
            member.write(bytes(64))
    with pytest.raises(ValueError, match=r"big\.npz: 'utilities' has shape \(32768, 16384\)"):
        load_population(path)


def test_too_many_utilities_are_refused_before_allocating():
    text = "# NUMBER ALTERNATIVES: 1000000\n" + "1: 1\n" * 300
    assert parse_preflib(text, "w.soi").utilities.shape == (300, 2)  # merged: 2 columns
    with pytest.raises(ValueError, match=r"w\.soi: 300 data lines x 1,000,000 alternatives"):
        parse_preflib(text, "w.soi", merge_unranked=False)
