"""Bad and extreme policies, counts and prompt axes for the exact values (payoffs.py,
metrics.py, policies.py), and exact values on random small games.

The catalogues: ``BAD_POLICIES`` (each tried on every call in ``POLICY_CALLS``) and
``EDGE_POLICIES``; ``BAD_COUNTS`` (each tried on every count argument in ``COUNT_ARGUMENTS``) and
``EDGE_COUNTS``; ``TOO_BIG`` (valid counts whose answer is too big to compute); ``BAD_BATCHES``
(mismatched prompt axes). Bad input must be refused with a ValueError naming the argument; edge
input must give values that pass the identities (``_inputs.check_payoffs``) and brute force.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ualign_jax as ua

from . import brute_force as bf
from ._inputs import (
    PI,
    POP,
    REJECTED,
    U3,
    assert_probabilities,
    assert_simplex,
    check_payoffs,
    fuzz,
    outcome,
    policies,
    rejects,
)

pytestmark = pytest.mark.fuzz  # deselect with -m 'not fuzz'

# --------------------------------------------------------------------------- counts

#: Bad values for every count argument (k, ell, num_players, steps, max_opponents, ...).
BAD_COUNTS = {
    "zero": 0,
    "negative": -1,
    "huge negative": -(2**40),
    "fractional float": 2.5,
    "integral float": 2.0,
    "NaN": math.nan,
    "inf": math.inf,
    "bool True": True,
    "numpy bool": np.bool_(True),
    "numpy float": np.float64(2.0),
    "string": "3",
    "None": None,
    "list": [3],
    "1-element array": np.array([3]),
    "0-d float array": np.array(2.5),
    "2**31, past int32": 2**31,
    "2**40": 2**40,
    "2**64": 2**64,
    "numpy uint64 max": np.uint64(2**64 - 1),
    "complex": complex(2, 0),
    "arbitrary object": object(),
}
HUGE_COUNTS = ("2**31, past int32", "2**40", "2**64", "numpy uint64 max")
#: Unusual but valid counts: each must give a correct value.
EDGE_COUNTS = {
    "10**6": 10**6,
    "2**31 - 1": 2**31 - 1,
    "numpy int8 127 (k + 1 overflows int8)": np.int8(127),
    "numpy uint64 3": np.uint64(3),
    "0-d int array": np.array(2),
}

#: Every public count argument, as ``name -> call(value)``.
COUNT_ARGUMENTS = {
    "response_payoffs k": ("k", lambda v: ua.response_payoffs(POP, PI, v)),
    "exploitability k": ("k", lambda v: ua.exploitability(POP, PI, v)),
    "win_rate k": ("k", lambda v: ua.win_rate(POP, PI, v, PI, 2)),
    "win_rate ell": ("ell", lambda v: ua.win_rate(POP, PI, 2, PI, v)),
    "robust_win_rate k": ("k", lambda v: ua.robust_win_rate(POP, PI, v, 2)),
    "robust_win_rate ell": ("ell", lambda v: ua.robust_win_rate(POP, PI, 2, v)),
    "robust_win_rate max_opponents": (
        "max_opponents",
        lambda v: ua.robust_win_rate(POP, PI, 2, 2, max_opponents=v),
    ),
    "robust_win_rate_bounds k": ("k", lambda v: ua.robust_win_rate_bounds(POP, PI, v, 2)),
    "robust_win_rate_bounds ell": ("ell", lambda v: ua.robust_win_rate_bounds(POP, PI, 2, v)),
    "win_tensor num_players": ("num_players", lambda v: ua.win_tensor(POP, v)),
    "count_form k": ("k", lambda v: ua.count_form(POP, v)),
    "solve k": ("k", lambda v: ua.solve(POP, v, steps=5)),
    "solve steps": ("steps", lambda v: ua.solve(POP, 2, steps=v)),
    "solve mixture_size": ("mixture_size", lambda v: ua.solve(POP, 2, steps=5, mixture_size=v)),
    "nlhf steps": ("steps", lambda v: ua.nlhf(POP, steps=v)),
    "DenseGame num_players": ("num_players", lambda v: ua.DenseGame(np.full((2, 2), 0.5), v)),
    "uniform_policy num_responses": ("num_responses", lambda v: ua.uniform_policy(v)),
}


@fuzz(200)
@given(argument=st.sampled_from(list(COUNT_ARGUMENTS)), bad=st.sampled_from(list(BAD_COUNTS)))
def test_bad_counts_are_rejected_naming_the_argument(argument, bad):
    name, call = COUNT_ARGUMENTS[argument]
    if name == "max_opponents" and bad in HUGE_COUNTS:  # a limit: any size is fine
        exact = ua.robust_win_rate(POP, PI, 2, 2)
        np.testing.assert_allclose(call(BAD_COUNTS[bad]), exact, atol=1e-15)
        return
    if argument == "DenseGame num_players" and bad == "None":  # None: all axes (the default)
        assert call(None).num_players == 2
        return
    rejects(lambda: call(BAD_COUNTS[bad]), name)


@pytest.mark.parametrize("edge", list(EDGE_COUNTS))
def test_edge_counts_give_correct_values(edge):
    k = EDGE_COUNTS[edge]
    kk = int(k)
    u = ua.response_payoffs(POP, PI, k)
    check_payoffs(None, None, PI, kk, u, atol=1e-9)
    np.testing.assert_allclose(ua.exploitability(POP, PI, k), np.max(u) - 1 / (kk + 1), atol=1e-12)
    if kk < 2**31 - 1:
        return
    # Constant sum with a multi-output opponent, both ways round (the quadrature must resolve
    # integrands concentrated within 1/k of t = 1).
    forward = ua.win_rate(POP, PI, k, PI[::-1], 2)
    backward = ua.win_rate(POP, PI[::-1], 2, PI, k)
    assert_probabilities([forward, backward])
    np.testing.assert_allclose(forward + backward, 1.0, atol=1e-9)


def test_huge_ell_and_one_response():
    one = ua.RankingPopulation(np.zeros((1, 1)))  # n = 1: every pool is one big tie
    for ell in (10**6, 2**31 - 1):
        # k positions tied with ell positions: share k / (k + ell).
        np.testing.assert_allclose(
            ua.win_rate(one, np.array([1.0]), 3, np.array([1.0]), ell), 3 / (3 + ell), rtol=1e-9
        )
    np.testing.assert_allclose(
        ua.robust_win_rate(one, np.array([1.0]), 3, 10**6), 3 / (3 + 10**6), rtol=1e-9
    )


ONE = ua.RankingPopulation(np.zeros((1, 1)))
#: Valid counts whose exact answer is too big to compute: (fragment of the message, call).
TOO_BIG = {
    "robust_win_rate, n = 1, ell = 2**31 - 1 (one multiset of 2**31 - 1 entries)": (
        "ell",
        lambda: ua.robust_win_rate(ONE, np.array([1.0]), 3, 2**31 - 1),
    ),
    "robust_win_rate, n = 3, ell = 10**6 (5e11 multisets)": (
        "max_opponents",
        lambda: ua.robust_win_rate(POP, PI, 2, 10**6),
    ),
    "robust_win_rate_bounds with ell = 10**6 (greedy steps)": (
        "ell",
        lambda: ua.robust_win_rate_bounds(POP, PI, 2, 10**6),
    ),
    "win_tensor with 40 players (3**40 entries)": ("num_players", lambda: ua.win_tensor(POP, 40)),
    "count_form with k = 10**6 (5e11 rows)": ("C(n+k-1, k)", lambda: ua.count_form(POP, 10**6)),
}


@pytest.mark.parametrize("name", list(TOO_BIG))
def test_too_big_requests_are_rejected(name):
    fragment, call = TOO_BIG[name]
    rejects(call, fragment)


# --------------------------------------------------------------------------- policies


def _replace_first(value):
    def corrupt(p):
        p = np.array(p, dtype=np.float64)
        p.flat[0] = value
        return p

    return corrupt


#: Ways to spoil a valid policy ``p`` ([n] float64 on the simplex).
BAD_POLICIES = {
    "unnormalised (x2)": lambda p: 2 * p,
    "negative entry": lambda p: np.concatenate([[-0.5], p[1:] + 0.5 / max(len(p) - 1, 1)]),
    "NaN entry": _replace_first(math.nan),
    "+inf entry": _replace_first(math.inf),
    "-inf entry": _replace_first(-math.inf),
    "all zero": lambda p: np.zeros_like(p),
    "one response too many": lambda p: np.append(p, 0.0),
    "one response too few": lambda p: p[:-1] / p[:-1].sum() if p[:-1].sum() > 0 else p[:-1],
    "empty": lambda p: np.zeros(0),
    "empty batch": lambda p: np.zeros((0, len(p))),
    "0-d scalar": lambda p: np.float64(1.0),
    "bool dtype": lambda p: p > 0,
    "complex dtype": lambda p: p.astype(np.complex128),
    "object dtype": lambda p: p.astype(object),
    "string dtype": lambda p: p.astype(str),
    "None": lambda p: None,
    "dict": lambda p: {"policy": p},
    "ragged nested list": lambda p: [list(p), [1.0]],
    "python int too large for int64": lambda p: [2**70] + [0] * (len(p) - 1),
}
#: Valid spellings of a policy that must be accepted.
EDGE_POLICIES = {
    "python list": lambda p: list(p),
    "float32": lambda p: p.astype(np.float32),
    "float16 (promoted to float32)": lambda p: p.astype(np.float16),
    "int one-hot": lambda p: (np.arange(len(p)) == 0).astype(np.int64),
    "batch of two prompts": lambda p: np.stack([p, p[::-1]]),
}
FLOAT16_ROUNDING = 1e-3  # float16 policies sum to 1 only to ~1e-3

POLICY_CALLS = {
    "response_payoffs": lambda p, k: ua.response_payoffs(POP, p, k),
    "exploitability": lambda p, k: ua.exploitability(POP, p, k),
    "win_rate policy": lambda p, k: ua.win_rate(POP, p, k, PI, 1),
    "win_rate opponent": lambda p, k: ua.win_rate(POP, PI, k, p, 1),
    "robust_win_rate": lambda p, k: ua.robust_win_rate(POP, p, k),
    "ProductMixture": lambda p, k: ua.ProductMixture(np.asarray(p)[None] if p is not None else p),
}


@fuzz(120)
@given(
    policy=policies(3),
    corruption=st.sampled_from(list(BAD_POLICIES)),
    call=st.sampled_from(list(POLICY_CALLS)),
    k=st.sampled_from([1, 2]),
)
def test_bad_policies_are_rejected_naming_the_argument(policy, corruption, call, k):
    bad = BAD_POLICIES[corruption](policy)
    rejects(lambda: POLICY_CALLS[call](bad, k), "policy", "policies", "opponent")


@fuzz(40)
@given(policy=policies(3), spelling=st.sampled_from(list(EDGE_POLICIES)), k=st.just(2))
def test_valid_policy_spellings_give_exact_payoffs(policy, spelling, k):
    p = EDGE_POLICIES[spelling](policy)
    u = outcome(lambda: ua.response_payoffs(POP, p, k), "policy")
    if u is REJECTED:  # float16 rounding can leave the simplex by more than float32's 1e-4
        assert "float16" in spelling
        return
    u = np.asarray(u, dtype=np.float64)
    rows = np.atleast_2d(np.asarray(p, dtype=np.float64))
    atol = FLOAT16_ROUNDING if "float16" in spelling else 1e-6
    rows = rows / rows.sum(axis=-1, keepdims=True)
    for row, got in zip(rows, np.atleast_2d(u), strict=True):
        check_payoffs(bf.rules("ranking", U3), [0.5, 0.5], row, k, got, atol=atol)


@fuzz(40)
@given(
    components=st.lists(policies(3), min_size=1, max_size=2),
    alphas=st.lists(st.floats(0, 5), min_size=2, max_size=2),
    k=st.just(2),
)
def test_product_mixtures_average_their_components(components, alphas, k):
    alphas = np.asarray(alphas[: len(components)])
    stacked = np.stack(components)
    mixture = outcome(lambda: ua.ProductMixture(stacked, alphas), "weights")
    if alphas.sum() < np.finfo(np.float64).tiny:  # zero, or subnormal (XLA flushes those to 0)
        assert mixture is REJECTED
        return
    alphas = alphas / alphas.sum()
    got = ua.response_payoffs(POP, mixture, k)
    expected = sum(a * ua.response_payoffs(POP, c, k) for a, c in zip(alphas, stacked, strict=True))
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert_simplex(mixture.marginal())
    # T1: the robust win rate of a mixture is 1 - max_y u_k(y, A).
    np.testing.assert_allclose(ua.robust_win_rate(POP, mixture, k), 1 - np.max(got), atol=1e-12)


# --------------------------------------------------------------------------- prompt axes

BATCHED = ua.RankingPopulation(np.stack([U3, U3[::-1]]))  # two prompts
P2 = np.full((2, 3), 1 / 3)
P3 = np.full((3, 3), 1 / 3)
#: Mismatched prompt (batch) axes between population, policy and opponent.
BAD_BATCHES = {
    "policy (3,) vs population (2,)": lambda: ua.response_payoffs(BATCHED, P3, 2),
    "policy (1,) vs population (2,)": lambda: ua.response_payoffs(BATCHED, P3[:1], 2),
    "policy (2, 2) vs population (2,)": lambda: ua.response_payoffs(BATCHED, np.stack([P2] * 2), 2),
    "exploitability, policy (3,)": lambda: ua.exploitability(BATCHED, P3, 2),
    "win_rate ell=1, opponent (3,)": lambda: ua.win_rate(BATCHED, P2, 2, P3, 1),
    "win_rate k=1, opponent (3,)": lambda: ua.win_rate(BATCHED, P2, 1, P3, 2),
    "win_rate, unbatched population, policy (2,) vs opponent (3,)": lambda: ua.win_rate(
        POP, P2, 2, P3, 1
    ),
    "win_rate, policy (2,) vs opponent (2, 1)": lambda: ua.win_rate(POP, P2, 2, P2[:, None], 1),
    "robust_win_rate ell=2, policy (3,)": lambda: ua.robust_win_rate(BATCHED, P3, 2, 2),
    "robust_win_rate_bounds, policy (3,)": lambda: ua.robust_win_rate_bounds(BATCHED, P3, 2, 2),
    "mixture with prompt axes (3,)": lambda: ua.response_payoffs(
        BATCHED, ua.ProductMixture(np.stack([np.eye(3)] * 3)), 2
    ),
    "weights without the prompt axis": lambda: ua.RankingPopulation(np.stack([U3, U3]), np.ones(2)),
}


@pytest.mark.parametrize("name", list(BAD_BATCHES))
def test_mismatched_prompt_axes_are_rejected(name):
    rejects(BAD_BATCHES[name], "batch", "weights must have shape")


def test_shared_and_matching_prompt_axes_give_per_prompt_values():
    for policy in (PI, np.stack([PI, PI[::-1]])):
        got = ua.win_rate(BATCHED, policy, 2, PI, 1)
        rows = np.broadcast_to(policy, (2, 3))
        for i in range(2):
            pop = ua.RankingPopulation(np.asarray(BATCHED.utilities[i]))
            np.testing.assert_allclose(got[i], ua.win_rate(pop, rows[i], 2, PI, 1), atol=1e-12)


# --------------------------------------------------------------------------- exact values


@st.composite
def small_games(draw):
    """A ranking or Plackett-Luce population of 1 or 2 users over 3 responses, weights, policy.

    Ranking utilities take 3 levels, so ties, all-tied rows and duplicated users are common;
    shapes come from a short list to bound the number of XLA compiles.
    """
    kind = draw(st.sampled_from(["ranking", "plackett_luce"]))
    m, n = draw(st.sampled_from([(2, 3), (1, 3)]))
    if kind == "ranking":
        params = np.asarray(draw(st.lists(st.integers(0, 2), min_size=m * n, max_size=m * n)))
        params = params.reshape(m, n).astype(np.float64)
        if draw(st.booleans()):
            params[-1] = params[0]  # a duplicated user
    else:
        cells = st.lists(st.floats(-20, 20), min_size=m * n, max_size=m * n)
        params = np.asarray(draw(cells)).reshape(m, n)
    weights = np.asarray(draw(st.lists(st.floats(0, 10), min_size=m, max_size=m)))
    if weights.sum() <= 1e-6:
        weights = None
    make = ua.RankingPopulation if kind == "ranking" else ua.PlackettLucePopulation
    pop = make(params, weights)
    normalised = np.full(m, 1 / m) if weights is None else weights / weights.sum()
    return pop, bf.rules(kind, params), normalised, draw(policies(n))


@fuzz(15)
@given(game=small_games(), k=st.sampled_from([1, 3]), opponent_seed=st.integers(0, 3))
def test_payoff_identities_on_random_small_games(game, k, opponent_seed):
    pop, rules, weights, policy = game
    n = len(policy)
    u = ua.response_payoffs(pop, policy, k)
    check_payoffs(rules, weights, policy, k, u)
    eps = float(ua.exploitability(pop, policy, k))
    assert eps >= -1e-9 and math.isfinite(eps)  # Plackett-Luce quadrature: ~1e-12
    robust = float(ua.robust_win_rate(pop, policy, k))
    np.testing.assert_allclose(robust, 1 - np.max(u), atol=1e-12)
    np.testing.assert_allclose(robust, k / (k + 1) - eps, atol=1e-12)  # T1 with equality
    opponent = np.roll(policy, opponent_seed % n)
    forward = float(ua.win_rate(pop, policy, k, opponent, 1))
    backward = float(ua.win_rate(pop, opponent, 1, policy, k))
    assert_probabilities([forward, backward])
    np.testing.assert_allclose(forward + backward, 1.0, atol=1e-12)
    assert robust <= forward + 1e-12


@fuzz(6)
@given(
    kind=st.sampled_from(["ranking", "plackett_luce"]),
    order=st.permutations([0.0, 1.0, 2.0]),
    policy=policies(3),
    opponent=policies(3),
)
def test_multi_output_opponents_against_brute_force(kind, order, policy, opponent):
    params = np.stack([np.asarray(order), np.asarray(order)[::-1] * 1.5])  # no ties
    make = ua.RankingPopulation if kind == "ranking" else ua.PlackettLucePopulation
    pop, rules = make(params), bf.rules(kind, params)
    k = ell = 2
    forward = float(ua.win_rate(pop, policy, k, opponent, ell))
    np.testing.assert_allclose(
        forward, bf.win_rate(rules, [0.5, 0.5], policy, k, opponent, ell), atol=1e-9
    )
    backward = float(ua.win_rate(pop, opponent, ell, policy, k))
    np.testing.assert_allclose(forward + backward, 1.0, atol=1e-9)
    exact = float(ua.robust_win_rate(pop, policy, k, ell))
    np.testing.assert_allclose(
        exact, bf.robust_win_rate(rules, [0.5, 0.5], policy, k, ell), atol=1e-9
    )
    bounds = ua.robust_win_rate_bounds(pop, policy, k, ell)
    assert_probabilities([bounds.lower, bounds.upper])
    assert float(bounds.lower) <= exact + 1e-9 <= float(bounds.upper) + 2e-9
    assert exact <= forward + 1e-9


@fuzz(8)
@given(policy=policies(3), players=st.sampled_from([2, 3]))
def test_win_tensor_and_count_form_agree_with_payoffs(policy, players):
    tensor = np.asarray(ua.win_tensor(POP, players))
    assert tensor.shape == (3,) * players
    assert_probabilities(tensor)
    u = tensor
    for _ in range(players - 1):
        u = u @ policy
    np.testing.assert_allclose(u, ua.response_payoffs(POP, policy, players - 1), atol=1e-12)
    if players == 3:
        form = ua.count_form(POP, players - 1)
        np.testing.assert_allclose(
            ua.count_form_payoffs(form, policy), ua.response_payoffs(POP, policy, players - 1)
        )


@fuzz(10)
@given(policy=policies(3), kind=st.sampled_from(["ranking", "plackett_luce"]))
def test_float32_stays_finite_and_accurate(policy, kind):
    make = ua.RankingPopulation if kind == "ranking" else ua.PlackettLucePopulation
    pop = make(U3.astype(np.float32))
    p32 = (policy / policy.sum()).astype(np.float32)
    u = ua.response_payoffs(pop, p32, 2)
    assert u.dtype == jnp.float32
    check_payoffs(bf.rules(kind, U3), [0.5, 0.5], p32.astype(np.float64), 2, u, atol=2e-6)


# --------------------------------------------------------------------------- regressions


def test_win_tensor_with_a_huge_number_of_players_is_rejected():
    """payoffs.py (win_tensor): ``win_tensor(pop, 10**6)`` is a ValueError naming num_players,
    found without formatting n**10**6 (Python's 4300-digit limit for int-to-str) or computing
    n**(2**31 - 1), which would hang."""
    rejects(lambda: ua.win_tensor(POP, 10**6), "num_players")


def test_count_form_payoffs_checks_the_policy():
    """payoffs.py (count_form_payoffs): an unnormalised policy (whose payoffs would exceed 1) and
    a policy of the wrong length are ValueErrors naming ``policy``."""
    form = ua.count_form(POP, 2)
    rejects(lambda: ua.count_form_payoffs(form, np.ones(3)), "policy")
    rejects(lambda: ua.count_form_payoffs(form, np.ones(2) / 2), "policy")
