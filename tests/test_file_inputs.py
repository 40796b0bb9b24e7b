"""Bad and random PrefLib text and data files (preflib.py, files.py, datasets.py).

The catalogues: ``BAD_PREFLIB``, ``BAD_STRICT_PREFLIB`` and random lines, bytes and mutations of
the bundled netflix file for ``parse_preflib`` (a consistent PreflibData, or a one-line
ValueError starting ``source:line``); ``_inputs.BAD_FILES``, random .npz archives,
``BAD_LOADER_ARGUMENTS`` and missing paths for the loaders (a ValueError or FileNotFoundError
naming the file or argument).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ualign_jax as ua

from ._inputs import (
    BAD_FILES,
    NETFLIX,
    REAL_KINDS,
    REJECTED,
    arrays,
    assert_probabilities,
    fuzz,
    outcome,
    rejects,
    valid_matrix,
)

pytestmark = pytest.mark.fuzz  # deselect with -m 'not fuzz'

# --------------------------------------------------------------------------- PrefLib text

#: Malformed PrefLib content; each parses with ``source="votes.toi"`` to a ValueError.
BAD_PREFLIB = {
    "empty text": "",
    "header only": "# NUMBER ALTERNATIVES: 3\n",
    "no colon": "1,2,3\n",
    "count not an integer": "x: 1,2,3\n",
    "count zero": "0: 1,2,3\n",
    "count negative": "-2: 1,2,3\n",
    "count a float": "1.5: 1,2,3\n",
    "count above int64": f"{10**30}: 1,2\n",
    "counts summing past int64": f"{2**62}: 1\n{2**62}: 1\n{2**62}: 1\n",
    "count of 5000 digits": "9" * 5000 + ": 1\n",
    "empty count": ": 1\n",
    "duplicated alternative": "1: 1,1,2\n",
    "duplicated alternative in a tie": "1: 1,{2,1}\n",
    "alternative 0": "1: 0,1\n",
    "negative alternative": "1: -1,1\n",
    "alternative out of declared range": "# NUMBER ALTERNATIVES: 2\n1: 1,2,3\n",
    "alternative id 10**12 (no header)": f"1: 1,{10**12}\n",
    "alternative id of 5000 digits": "1: " + "7" * 5000 + "\n",
    "trailing comma (truncated line)": "1: 1,2,\n",
    "unclosed brace (truncated line)": "1: {1,2\n",
    "stray closing brace": "1: }1,2{\n",
    "nested braces": "1: {1,{2}}\n",
    "empty braces": "1: {},1\n",
    "empty ranking": "1:\n",
    "NUL byte in a line": "1: 1\x00,2\n",
    "two colons": "1: 1:2\n",
    "NUMBER ALTERNATIVES 0": "# NUMBER ALTERNATIVES: 0\n1: 1\n",
    "NUMBER ALTERNATIVES not a number": "# NUMBER ALTERNATIVES: three\n1: 1\n",
    "NUMBER ALTERNATIVES 10**12": f"# NUMBER ALTERNATIVES: {10**12}\n1: 1\n",
    "NUMBER VOTERS disagrees": "# NUMBER VOTERS: 5\n1: 1,2\n1: 2,1\n",
    "NUMBER VOTERS not a number": "# NUMBER VOTERS: many\n1: 1\n",
    "unknown DATA TYPE": "# DATA TYPE: xyz\n1: 1,2\n",
    "DATA TYPE disagrees with the extension": "# DATA TYPE: soc\n1: 1,2\n",
    "alternative named twice": "# ALTERNATIVE NAME 1: a\n# ALTERNATIVE NAME 1: b\n1: 1\n",
    "alternative name beyond the count": (
        "# NUMBER ALTERNATIVES: 1\n# ALTERNATIVE NAME 2: b\n1: 1\n"
    ),
    "alternative name 0": "# ALTERNATIVE NAME 0: a\n1: 1\n",
    # (a file of 300 lines over 10**6 alternatives loads, the never-ranked ones merged: test_data)
    "declared alternatives over the limit": "# NUMBER ALTERNATIVES: 1000001\n1: 1\n",
}
#: Structural errors that only strict or complete data types have.
BAD_STRICT_PREFLIB = {
    "ties in strict (soc) data": ("x.soc", "1: {1,2}\n"),
    "incomplete order in complete (toc) data": ("x.toc", "# NUMBER ALTERNATIVES: 3\n1: 1,2\n"),
}
#: Arguments of parse_preflib that are not text / a source name.
BAD_PARSE_ARGUMENTS = {
    "text as bytes": ("text", lambda: ua.parse_preflib(b"1: 1,2\n", "x.soi")),
    "text None": ("text", lambda: ua.parse_preflib(None, "x.soi")),
    "source None": ("source", lambda: ua.parse_preflib("1: 1\n", None)),
    "source int": ("source", lambda: ua.parse_preflib("1: 1\n", 3)),
}
LINE_ERROR = re.compile(r"^(?P<source>[^:]+):(?P<line>\d+): \S")


def check_parse(text, source="votes.toi"):
    """parse_preflib's answer is a consistent PreflibData or a ValueError naming source[:line]."""
    try:
        data = ua.parse_preflib(text, source=source)
    except ValueError as err:
        message = str(err)
        assert message.startswith(source + ":"), message
        assert "\n" not in message and len(message) < 300, message
        match = LINE_ERROR.match(message)
        if match:
            assert 1 <= int(match["line"]) <= max(1, len(text.splitlines())), message
        return None
    m, n = data.utilities.shape
    assert m == len(data.counts) >= 1 and n == len(data.names) >= 1
    assert data.counts.dtype == np.int64 and np.all(data.counts > 0)
    assert np.all(np.isfinite(data.utilities)) and np.all(data.utilities >= 0)
    for row in data.utilities:  # groups G, G-1, ..., 1 and 0 for the unranked
        levels = np.unique(row[row > 0])
        np.testing.assert_array_equal(levels, np.arange(1, len(levels) + 1))
    return data


@pytest.mark.parametrize("name", list(BAD_PREFLIB))
def test_malformed_preflib_text_is_rejected_with_file_and_line(name):
    assert check_parse(BAD_PREFLIB[name]) is None


@pytest.mark.parametrize("name", list(BAD_STRICT_PREFLIB))
def test_structural_errors_of_strict_data_types(name):
    source, text = BAD_STRICT_PREFLIB[name]
    assert check_parse(text, source) is None


@pytest.mark.parametrize("name", list(BAD_PARSE_ARGUMENTS))
def test_parse_preflib_arguments(name):
    argument, call = BAD_PARSE_ARGUMENTS[name]
    rejects(call, argument)


TOKENS = ["1", "2", "3", "4", "0", "-1", "99", "x", "{", "}", ",", ",", ":", " ", "1.5", ""]


@fuzz(300)
@given(
    lines=st.lists(
        st.one_of(
            st.tuples(
                st.sampled_from(["1", "2", "10", "0", "-3", "x", "", "1.5", str(2**63)]),
                st.lists(st.sampled_from(TOKENS), max_size=8).map("".join),
            ).map(lambda t: f"{t[0]}:{t[1]}"),
            st.sampled_from(
                [
                    "# NUMBER ALTERNATIVES: 3",
                    "# NUMBER ALTERNATIVES: 0",
                    "# NUMBER VOTERS: 4",
                    "# DATA TYPE: soi",
                    "# DATA TYPE: toc",
                    "# ALTERNATIVE NAME 2: two",
                    "# just a comment",
                ]
            ),
            st.text(max_size=10),
        ),
        max_size=6,
    ),
    source=st.sampled_from(["votes.soc", "votes.soi", "votes.toc", "votes.toi", "votes.txt"]),
)
def test_random_preflib_lines(lines, source):
    check_parse("\n".join(lines), source)


@fuzz(150)
@given(raw=st.binary(max_size=80))
def test_random_bytes_as_preflib(raw):
    check_parse(raw.decode("latin-1"))


NETFLIX_TEXT = NETFLIX.read_text(encoding="utf-8")


@fuzz(150)
@given(
    cut=st.integers(0, len(NETFLIX_TEXT)),
    insert=st.sampled_from(["", ",", "{", "}", "1", "3", "9", ":", "-", "\n", "x", "1,"]),
    where=st.integers(0, len(NETFLIX_TEXT)),
)
def test_mutated_netflix_file(cut, insert, where):
    text = NETFLIX_TEXT[:where] + insert + NETFLIX_TEXT[where:]
    check_parse(text[:cut] if cut < len(text) else text, "netflix.soc")


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_data_files_are_rejected_naming_the_file(name, scratch):
    path = BAD_FILES[name](scratch)
    rejects(lambda: ua.load_population(path), path.name)


#: Bad path / dtype arguments of the loaders.
BAD_LOADER_ARGUMENTS = {
    "path None": ("path", lambda: ua.load_population(None)),
    "path int": ("path", lambda: ua.load_preflib(3)),
    "dtype int": ("dtype", lambda: ua.load_preflib(NETFLIX, dtype=int)),
    "dtype complex": ("dtype", lambda: ua.load_population(NETFLIX, dtype=np.complex64)),
    "dtype nonsense": ("dtype", lambda: ua.load_dataset("netflix", dtype="abc")),
    "unknown data set": ("data set", lambda: ua.load_dataset("nope")),
    "data set name not a string": ("data set", lambda: ua.load_dataset(["sushi"])),
}


@pytest.mark.parametrize("name", list(BAD_LOADER_ARGUMENTS))
def test_bad_loader_arguments(name):
    argument, call = BAD_LOADER_ARGUMENTS[name]
    rejects(call, argument)


def test_missing_files_raise_file_not_found_naming_them(scratch):
    for path in (scratch / "nope.soc", scratch / "nope.npz", scratch):
        with pytest.raises((FileNotFoundError, ValueError), match=re.escape(path.name)):
            ua.load_population(path)


@fuzz(60)
@given(
    key=st.sampled_from(["utilities", "log_weights"]),
    values=arrays(max_rank=3),
    weights=st.one_of(st.none(), arrays(max_rank=2)),
)
def test_random_npz_archives(key, values, weights, scratch):
    path = scratch / "random.npz"
    extra = {} if weights is None else {"weights": weights}
    try:
        np.savez(path, **{key: values}, **extra)
    except ValueError:  # NumPy itself refuses some dtypes
        return
    pop = outcome(lambda: ua.load_population(path), path.name)
    if pop is not REJECTED:
        assert valid_matrix(values) and values.ndim == 2
        if weights is not None:
            assert weights.dtype.kind in REAL_KINDS and weights.shape == values.shape[:1]
            w = weights.astype(np.float64)
            assert np.all(np.isfinite(w)) and w.min() >= 0 and 0 < w.sum() < np.inf
        assert_probabilities(pop.weights)
        np.testing.assert_allclose(np.sum(pop.weights), 1.0, rtol=1e-6)
