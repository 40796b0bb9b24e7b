"""Bundled sushi data: the raw file is unchanged, the names are corrected (datasets/README.md)."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np

from ualign_jax.datasets import DATASETS, load_dataset
from ualign_jax.preflib import load_preflib

SUSHI_SHA256 = "b7d03b3bbe444e7bde94bfea7ee6f27426a51a02c77892c4c02e7aa32499f689"

# First choices per item among the 5000 respondents, counted on BayesMallows' ``sushi_rankings``
# (columns labelled by Kamishima's item ids; ocbe-uio/BayesMallows, data/sushi_rankings.rda).
FIRST_CHOICES = {
    "toro (fatty tuna)": 1713,
    "uni (sea urchin)": 747,
    "anago (sea eel)": 550,
    "sake (salmon roe)": 545,
    "ebi (shrimp)": 458,
    "maguro (tuna)": 404,
    "ika (squid)": 228,
    "tamago (egg)": 206,
    "tekka-maki (tuna roll)": 113,
    "kappa-maki (cucumber roll)": 36,
}


def _sushi_path():
    return resources.files("ualign_jax").joinpath("bundled").joinpath(DATASETS["sushi"])


def test_raw_sushi_file_is_byte_for_byte_unchanged():
    assert hashlib.sha256(_sushi_path().read_bytes()).hexdigest() == SUSHI_SHA256


def test_corrected_names_rotate_the_header_by_one():
    header = load_preflib(_sushi_path()).names
    assert header[0] == "ebi (shrimp)" and header[7] == "toro (fatty tuna)"  # the file as shipped
    names = load_dataset("sushi").names
    assert names == header[1:] + header[:1]  # alternative i is Kamishima's item i mod 10


def test_first_choices_match_the_independent_copy():
    pop = load_dataset("sushi")
    u, w = np.asarray(pop.utilities), np.asarray(pop.weights, dtype=np.float64)
    firsts = np.zeros(pop.num_responses)
    np.add.at(firsts, np.argmax(u, axis=1), w / w.sum() * 5000)
    counts = dict(zip(pop.names, np.rint(firsts).astype(int).tolist(), strict=True))
    assert counts == FIRST_CHOICES
    assert max(counts, key=counts.get) == "toro (fatty tuna)"  # the published favourite


def test_toro_is_the_condorcet_winner():
    pop = load_dataset("sushi")
    u, w = np.asarray(pop.utilities), np.asarray(pop.weights, dtype=np.float64)
    toro = pop.names.index("toro (fatty tuna)")
    beats = ((u[:, toro : toro + 1] > u) * (w / w.sum())[:, None]).sum(axis=0)
    others = np.arange(pop.num_responses) != toro
    assert np.all(beats[others] > 0.5)
