"""Bad and extreme options of ``solve`` (the solver/ package and dynamics.py).

The catalogues: ``BAD_SOLVER_OPTIONS`` and random method names (hypothesis text), each refused
with a ValueError naming the option; short runs, a one-response population, a huge KL weight
and a NumPy float32 ``tol`` must give a valid solution (or, for the KL weight, a refusal or the
``nonfinite`` outcome). Counts (k, steps, mixture_size) are in test_payoff_inputs.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ualign_jax as ua

from ._inputs import POP, REJECTED, assert_simplex, fuzz, outcome, rejects

pytestmark = pytest.mark.fuzz  # deselect with -m 'not fuzz'

#: Bad options of ``solve``: ``name -> (argument the message names, keyword arguments)``.
BAD_SOLVER_OPTIONS = {
    "method None": ("method", {"method": None}),
    "method int": ("method", {"method": 3}),
    "method wrong case": ("method", {"method": "Hedge"}),
    "method with a space": ("method", {"method": " hedge"}),
    "tol 0": ("tol", {"tol": 0}),
    "tol negative": ("tol", {"tol": -1e-3}),
    "tol NaN": ("tol", {"tol": math.nan}),
    "tol inf": ("tol", {"tol": math.inf}),
    "tol string": ("tol", {"tol": "1e-3"}),
    "tol list": ("tol", {"tol": [1e-3]}),
    "tol complex": ("tol", {"tol": 1e-3j}),
    "eta 0": ("eta", {"eta": 0}),
    "eta negative": ("eta", {"eta": -1.0}),
    "eta NaN": ("eta", {"eta": math.nan}),
    "eta inf": ("eta", {"eta": math.inf}),
    "eta string": ("eta", {"eta": "big"}),
    "tau negative": ("tau", {"tau": -0.1}),
    "tau NaN": ("tau", {"tau": math.nan}),
    "tau inf": ("tau", {"tau": math.inf}),
    "tau None": ("tau", {"tau": None}),
}


@pytest.mark.parametrize("name", list(BAD_SOLVER_OPTIONS))
def test_bad_solver_options_are_rejected(name):
    argument, options = BAD_SOLVER_OPTIONS[name]
    rejects(lambda: ua.solve(POP, 2, steps=5, **options), argument)


@fuzz(30)
@given(method=st.text(max_size=12))
def test_unknown_method_names_are_rejected(method):
    if method in ua.METHODS:
        return
    rejects(lambda: ua.solve(POP, 2, steps=5, method=method), "method")


@pytest.mark.parametrize(
    ("method", "steps", "tol"),
    [("hedge", 20, None), ("optimistic_gradient", 5, 0.5)],
)
def test_short_solves_return_valid_solutions(method, steps, tol):
    sol = ua.solve(POP, 2, method=method, steps=steps, tol=tol)
    assert_simplex(sol.policy)
    assert_simplex(sol.mixture.policies[: int(sol.num_steps)])
    assert sol.outcome_name in ("successful", "max_steps_reached")
    for field in sol.trace:
        assert np.all(np.isfinite(np.asarray(field)))
    np.testing.assert_allclose(
        sol.trace.exploitability[int(sol.num_steps) - 1],
        ua.exploitability(POP, sol.policy, 2),
        atol=1e-12,
    )


def test_solve_on_one_response():
    one = ua.RankingPopulation(np.zeros((1, 1)))
    sol = ua.solve(one, 2, steps=5)
    np.testing.assert_array_equal(sol.policy, [1.0])
    np.testing.assert_allclose(ua.response_payoffs(one, sol.policy, 2), [1 / 3])


# --------------------------------------------------------------------------- regressions


def test_solve_with_a_huge_kl_weight():
    """solver/ and dynamics.py (kl_regularised): ``solve(pop, 2, steps=5, tau=1e308, tol=1e-3)``
    refuses ``tau``, ends ``nonfinite``, or returns a finite policy on the simplex -- never an
    all-zero iterate reported 'successful' (its payoffs are 0 and its "exploitability" -1/3
    passes any tol)."""
    sol = outcome(lambda: ua.solve(POP, 2, steps=5, tau=1e308, tol=1e-3), "tau")
    if sol is not REJECTED:
        assert sol.outcome_name == "nonfinite" or (
            np.all(np.isfinite(np.asarray(sol.policy)))
            and abs(float(np.sum(sol.policy)) - 1) < 1e-9
        ), (sol.outcome_name, sol.policy)


def test_solve_accepts_a_numpy_float32_tol():
    """solver/: ``tol`` may be a NumPy float32 scalar as well as a float or np.float64."""
    sol = ua.solve(POP, 2, method="optimistic_gradient", steps=5, tol=np.float32(0.5))
    assert_simplex(sol.policy)
