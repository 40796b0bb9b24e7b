"""Bad and extreme arguments of the baselines (baselines.py): RLHF, NLHF, Nash-MD, maximal
lotteries and Bradley-Terry scores.

The catalogue ``BAD_BASELINE_CALLS`` must be refused with a ValueError naming the argument;
edge values of ``beta`` (np.float32, 1e-320, inf) must give policies on the simplex.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import ualign_jax as ua

from ._inputs import POP, assert_simplex, rejects

pytestmark = pytest.mark.fuzz  # deselect with -m 'not fuzz'

#: Bad baseline arguments: ``name -> (argument the message names, call)``.
BAD_BASELINE_CALLS = {
    "rlhf beta 0": ("beta", lambda: ua.rlhf(POP, beta=0)),
    "rlhf beta negative": ("beta", lambda: ua.rlhf(POP, beta=-1.0)),
    "rlhf beta NaN": ("beta", lambda: ua.rlhf(POP, beta=math.nan)),
    "rlhf beta string": ("beta", lambda: ua.rlhf(POP, beta="1")),
    "rlhf beta None": ("beta", lambda: ua.rlhf(POP, beta=None)),
    "rlhf beta complex": ("beta", lambda: ua.rlhf(POP, beta=1j)),
    "rlhf reference unnormalised": ("reference", lambda: ua.rlhf(POP, reference=np.ones(3))),
    "rlhf reference wrong length": ("reference", lambda: ua.rlhf(POP, reference=np.ones(2) / 2)),
    "rlhf reference negative": (
        "reference",
        lambda: ua.rlhf(POP, reference=np.array([-0.5, 1.0, 0.5])),
    ),
    "rlhf reference NaN": ("reference", lambda: ua.rlhf(POP, reference=np.array([math.nan] * 3))),
    "rlhf reference 2-D": ("reference", lambda: ua.rlhf(POP, reference=np.full((2, 3), 1 / 3))),
    "rlhf reference string": ("reference", lambda: ua.rlhf(POP, reference="uniform")),
    "nash_md tau 0": ("tau", lambda: ua.nash_md(POP, tau=0)),
    "nash_md tau NaN": ("tau", lambda: ua.nash_md(POP, tau=math.nan)),
    "nash_md tau string": ("tau", lambda: ua.nash_md(POP, tau="0.1")),
    "maximal_lottery 1-D": ("pairwise", lambda: ua.maximal_lottery(np.ones(3))),
    "maximal_lottery not square": ("pairwise", lambda: ua.maximal_lottery(np.ones((2, 3)))),
    "maximal_lottery NaN": ("pairwise", lambda: ua.maximal_lottery(np.full((2, 2), math.nan))),
    "maximal_lottery strings": ("pairwise", lambda: ua.maximal_lottery(np.array([["a"]]))),
    "maximal_lottery approximate wrong length": (
        "approximate",
        lambda: ua.maximal_lottery(np.full((2, 2), 0.5), np.ones(3) / 3),
    ),
    "bradley_terry_scores NaN": (
        "pairwise",
        lambda: ua.bradley_terry_scores(np.full((2, 2), math.nan)),
    ),
    "bradley_terry_scores not square": (
        "pairwise",
        lambda: ua.bradley_terry_scores(np.ones((3, 2))),
    ),
}


@pytest.mark.parametrize("name", list(BAD_BASELINE_CALLS))
def test_bad_baseline_arguments_are_rejected(name):
    argument, call = BAD_BASELINE_CALLS[name]
    rejects(call, argument)


@pytest.mark.parametrize(
    "utilities",
    [np.zeros((2, 3)), np.array([[2.0, 1.0, 0.0], [2.0, 0.0, 1.0]])],
    ids=["all tied", "condorcet winner"],
)
def test_nlhf_and_rlhf_return_certified_policies(utilities):
    pop = ua.RankingPopulation(utilities)
    lottery = ua.nlhf(pop)
    assert_simplex(lottery)
    assert float(ua.exploitability(pop, lottery, 1)) <= 1e-9  # the k = 1 equilibrium
    for beta in (1.0, np.float32(2.0), 1e-320, math.inf):
        assert_simplex(ua.rlhf(pop, beta=beta))
