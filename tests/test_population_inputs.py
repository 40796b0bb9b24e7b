"""Bad and extreme input to the population constructors, DenseGame, and what counts as a
population (ranking.py, plackett_luce.py, populations.py, dense.py, population.py).

The catalogues: random arrays (``_inputs.arrays``: every dtype in ``DTYPES``, every value in
``SPECIALS``, ranks 0-3 and empty sides) for utilities, log-weights and weights; ``BAD_WEIGHTS``,
``BAD_NAMES``, ``BAD_DENSE``, ``DENSE_MISUSE`` and ``BAD_POPULATIONS`` (each tried on every call
in ``POPULATION_CALLS``). Each must be refused with a ValueError naming the argument; every valid
array must build a population with normalised weights.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ualign_jax as ua

from ._inputs import (
    DTYPES,
    PI,
    POP,
    REJECTED,
    SPECIALS,
    U3,
    arrays,
    assert_probabilities,
    cast,
    check_payoffs,
    fuzz,
    outcome,
    rejects,
    valid_matrix,
    valid_weights,
)

pytestmark = pytest.mark.fuzz  # deselect with -m 'not fuzz'

SAMPLED = ua.SampledPopulation(lambda key, num: jnp.zeros((num, 3)), lambda u, pool: pool, 3)

#: Bad weights for ``RankingPopulation(U3, weights)`` and ``ProductMixture(policies, weights)``.
BAD_WEIGHTS = {
    "negative": np.array([1.0, -1.0]),
    "all zero": np.zeros(2),
    "NaN": np.array([math.nan, 1.0]),
    "inf": np.array([math.inf, 1.0]),
    "sum overflows float64": np.array([1e308, 1e308]),
    "sum overflows float32": np.array([3e38, 3e38], dtype=np.float32),
    "wrong length": np.ones(3),
    "2-D": np.ones((2, 1)),
    "0-d": np.array(1.0),
    "bool": np.array([True, True]),
    "complex": np.array([1 + 0j, 1]),
    "strings": np.array(["a", "b"]),
}


@fuzz(100)
@given(
    kind=st.sampled_from(["ranking", "plackett_luce"]),
    params=arrays(),
    weights=st.one_of(st.none(), arrays(max_rank=2)),
    right_shape=st.one_of(
        st.none(), st.sampled_from(DTYPES), st.sampled_from(list(SPECIALS.values()))
    ),
)
def test_population_constructors_accept_exactly_the_valid_arrays(
    kind, params, weights, right_shape
):
    if right_shape is not None and params.ndim >= 2:  # weights of the right shape
        weights = np.ones(params.shape[:-1])
        if isinstance(right_shape, str):
            weights = cast(weights, right_shape)
        elif weights.size:
            weights.flat[0] = right_shape
    make = ua.RankingPopulation if kind == "ranking" else ua.PlackettLucePopulation
    name = "utilities" if kind == "ranking" else "log_weights"
    pop = outcome(lambda: make(params, weights), name, "weights")
    valid = valid_matrix(params) and valid_weights(weights, params.shape[:-1])
    assert (pop is not REJECTED) == valid, (params, weights)
    if pop is not REJECTED:
        assert pop.dtype in (jnp.float32, jnp.float64)
        assert (pop.num_users, pop.num_responses) == params.shape[-2:]
        assert_probabilities(pop.weights)
        np.testing.assert_allclose(np.sum(pop.weights, axis=-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("name", list(BAD_WEIGHTS))
def test_bad_weights_are_rejected(name):
    weights = BAD_WEIGHTS[name]
    rejects(lambda: ua.RankingPopulation(U3, weights), "weights")
    rejects(lambda: ua.PlackettLucePopulation(U3, weights), "weights")
    rejects(lambda: ua.ProductMixture(np.eye(2, dtype=np.float32), weights), "weights")


BAD_NAMES = {"wrong length": ["a"], "too many": ["a", "b", "c", "d"]}


@pytest.mark.parametrize("name", list(BAD_NAMES))
def test_bad_names_are_rejected(name):
    rejects(lambda: ua.RankingPopulation(U3, names=BAD_NAMES[name]), "names")


#: DenseGame misuse: (win_tensor, num_players) pairs that must be rejected.
BAD_DENSE = {
    "1-D": (np.array([0.5]), None),
    "not constant-sum": (np.ones((2, 2)), None),
    "entries outside [0, 1]": (np.array([[0.5, 2.0], [-1.0, 0.5]]), None),
    "NaN entry": (np.array([[math.nan, 1.0], [0.0, 0.5]]), None),
    "bool": (np.array([[True, False], [False, True]]), None),
    "strings": (np.array([["a", "b"], ["c", "d"]]), None),
    "empty": (np.zeros((0, 0)), None),
    "player axes of different lengths": (np.full((2, 3), 0.5), None),
    "not symmetric in the opponents' axes": (
        np.array(ua.win_tensor(POP, 3)).transpose(1, 0, 2),
        None,
    ),
    "num_players above its rank": (np.full((2, 2), 0.5), 3),
}


@pytest.mark.parametrize("name", list(BAD_DENSE))
def test_dense_game_rejects_bad_tensors(name):
    tensor, players = BAD_DENSE[name]
    rejects(lambda: ua.DenseGame(tensor, players), "win_tensor", "num_players")


GAME = ua.DenseGame(ua.win_tensor(POP, 3))  # the 3-player game of POP
#: Calls that do not fit a 3-player DenseGame: (fragment of the message, call).
DENSE_MISUSE = {
    "response_payoffs with k=1": ("k=1", lambda: ua.response_payoffs(GAME, PI, 1)),
    "win_rate with k = ell = 1": ("k=1", lambda: ua.win_rate(GAME, PI, 1, PI, 1)),
    "win_tensor with 2 players": ("num_players", lambda: ua.win_tensor(GAME, 2)),
    "count_form with k=1": ("k=1", lambda: ua.count_form(GAME, 1)),
    "robust_win_rate with k + ell = 4": ("k + ell", lambda: ua.robust_win_rate(GAME, PI, 1, 3)),
    "robust_win_rate_bounds on a dense game": (
        "robust_win_rate_bounds",
        lambda: ua.robust_win_rate_bounds(GAME, PI, 2, 1),
    ),
    "nlhf (k = 1) on a 3-player game": ("k=1", lambda: ua.nlhf(GAME)),
    "solve with k=1": ("k=1", lambda: ua.solve(GAME, 1, steps=5)),
}


@pytest.mark.parametrize("name", list(DENSE_MISUSE))
def test_dense_game_misuse(name):
    fragment, call = DENSE_MISUSE[name]
    rejects(call, fragment)


def test_dense_game_values():
    game = GAME
    np.testing.assert_allclose(
        ua.response_payoffs(game, PI, 2), ua.response_payoffs(POP, PI, 2), atol=1e-12
    )
    one = ua.DenseGame(np.array([[0.5]]))  # one response: always a tie
    np.testing.assert_allclose(ua.response_payoffs(one, np.array([1.0]), 1), [0.5])


#: Things that are not populations.
BAD_POPULATIONS = {
    "string": "pop",
    "None": None,
    "numpy array": U3,
    "ProductMixture": ua.ProductMixture(np.eye(3)),
    "SampledPopulation (no exact values)": SAMPLED,
}
POPULATION_CALLS = {
    "response_payoffs": lambda pop: ua.response_payoffs(pop, PI, 2),
    "win_rate": lambda pop: ua.win_rate(pop, PI, 2, PI, 2),
    "exploitability": lambda pop: ua.exploitability(pop, PI, 2),
    "robust_win_rate": lambda pop: ua.robust_win_rate(pop, PI, 2, 2),
    "robust_win_rate_bounds": lambda pop: ua.robust_win_rate_bounds(pop, PI, 2, 2),
    "win_tensor": lambda pop: ua.win_tensor(pop, 2),
    "count_form": lambda pop: ua.count_form(pop, 2),
    "solve": lambda pop: ua.solve(pop, 2, steps=5),
    "nlhf": lambda pop: ua.nlhf(pop),
    "rlhf": lambda pop: ua.rlhf(pop),
    "reference_policy": lambda pop: ua.reference_policy(pop),
}


@fuzz(60)
@given(pop=st.sampled_from(list(BAD_POPULATIONS)), call=st.sampled_from(list(POPULATION_CALLS)))
def test_non_populations_are_rejected(pop, call):
    rejects(lambda: POPULATION_CALLS[call](BAD_POPULATIONS[pop]), "pop")


# --------------------------------------------------------------------------- regressions


def test_plackett_luce_with_a_wide_log_weight_range():
    """Spreads the dtype can hold give correct payoffs (with ``max_spread``, more quadrature
    nodes); wider ones (from ~745 nats in float64, ~100 in float32, where exp underflows) are
    refused by name, and so are spreads past the default ``max_spread`` without it."""
    for spread, dtype in ((300.0, np.float64), (690.0, np.float64), (70.0, np.float32)):
        wide = np.array([[0.0, spread, spread / 2]], dtype)
        pop = ua.PlackettLucePopulation(wide, max_spread=max(spread, 60.0))
        u = ua.response_payoffs(pop, PI.astype(dtype), 2)
        check_payoffs(None, None, PI, 2, np.asarray(u, np.float64), atol=1e-5)
    for spread, dtype in ((800.0, np.float64), (120.0, np.float32), (300.0, np.float64)):
        rejects(
            lambda s=spread, d=dtype: ua.PlackettLucePopulation(np.array([[0.0, s, s / 2]], d)),
            "log_weights spread",
        )


def test_names_that_are_not_a_sequence_are_rejected():
    """populations.py (check_names): ``RankingPopulation(U, names=3)`` is a ValueError naming
    ``names``, not a TypeError from ``len``."""
    rejects(lambda: ua.RankingPopulation(U3, names=3), "names")


def test_subnormal_utilities_give_one_answer_in_every_engine():
    """ranking.py: utilities [[5e-324, 0.0]] are one tie group for the sorted engines and for
    win_tensor alike.

    A sort in NumPy keeps 5e-324 > 0 (payoffs [0.75, 0.25] against [0.5, 0.5]), while win_tensor
    and count_form compare in XLA, which flushes subnormals to zero on CPU and calls it a tie
    ([0.5, 0.5]); the constructor flushes subnormals, so response_payoffs agrees with win_tensor.
    """
    pop = ua.RankingPopulation(np.array([[5e-324, 0.0]]))
    half = np.array([0.5, 0.5])
    tensor = np.asarray(ua.win_tensor(pop, 2))
    np.testing.assert_allclose(ua.response_payoffs(pop, half, 1), tensor @ half, atol=1e-12)
