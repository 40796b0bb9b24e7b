"""Ranking populations (ranking.py): the engines agree with each other and follow ``auto``'s
rule, the engine is a static setting, the sort runs once per solve, and the constructor keeps
ties exactly as the data has them."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua

#: Three users over four responses, with ties.
UTILITIES = np.array([[2.0, 1.0, 0.0, 1.0], [0.0, 2.0, 2.0, 1.0], [3.0, 3.0, 1.0, 0.0]])


# --------------------------------------------------------------------------- engines


@pytest.mark.parametrize("ties", [True, False])
def test_the_ranking_engines_agree(ties):
    """Pairwise comparisons and cumulative sums (used on accelerators) against the scan."""
    rng = np.random.default_rng(11)
    utilities = rng.integers(0, 4, (70, 6)) if ties else np.argsort(rng.random((70, 6)), axis=1)
    pop = ua.RankingPopulation(utilities.astype(np.float64), rng.random(70))
    policy = jnp.asarray(rng.dirichlet(np.ones(6)))
    policy = policy.at[2].set(0.0) / (1.0 - policy[2])
    results = {}
    for engine in ("scan", "parallel", "pairwise"):
        assert ua.payoffs.ranking_engine(6, 70, engine) == engine
        forced = pop.with_engine(engine)
        results[engine] = [ua.response_payoffs(forced, policy, k) for k in (1, 4, 30)] + [
            ua.robust_win_rate(forced, policy, 3, ell=2),
            ua.robust_win_rate(forced, policy, 3, ell=1),
            ua.win_rate(forced, policy, 2, ua.ProductMixture(jnp.eye(6)[:2]), ell=3),
            ua.robust_win_rate_bounds(forced, policy, 2, 3).upper,
        ]
    for engine in ("parallel", "pairwise"):
        for a, b in zip(results["scan"], results[engine], strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)


def test_auto_engine_compares_pairwise_only_in_small_games():
    most_n, most_m = ua.payoffs.PAIRWISE_MAX_RESPONSES, ua.payoffs.PAIRWISE_MAX_USERS
    assert ua.payoffs.ranking_engine(most_n, most_m) == "pairwise"
    assert ua.payoffs.ranking_engine(most_n + 1, 10) == "scan"  # the tests run on CPU
    assert ua.payoffs.ranking_engine(3, most_m + 1) == "scan"


def test_pairwise_masses_follow_the_docstring_example():
    below, tied = ua.payoffs.pairwise_ranking_masses(
        jnp.array([[0.0, 1.0, 1.0]]), jnp.array([0.5, 0.25, 0.25])
    )
    np.testing.assert_array_equal(below[:, 0], [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(tied[:, 0], [0.5, 0.5, 0.5])


def test_the_engine_is_a_static_setting():
    pop = ua.RankingPopulation(UTILITIES)
    assert pop.engine == "auto" and pop.with_engine("scan").engine == "scan"
    assert jax.tree.structure(pop) != jax.tree.structure(pop.with_engine("scan"))
    with pytest.raises(ValueError, match="engine must be one of"):
        ua.RankingPopulation(UTILITIES, engine="fast")
    assert not hasattr(ua.payoffs, "RANKING_ENGINE")


def test_the_solver_sorts_once_per_run_not_once_per_step():
    """The sorted engines' sort sits outside the scan over learning steps."""
    loop = importlib.import_module("ualign_jax.solver.loop")
    pop = ua.RankingPopulation(np.arange(2 * 20.0).reshape(2, 20) % 7)  # n > 16: sorted engine
    assert ua.payoffs.ranking_engine(20, 2) == "scan"
    fields = {
        "k": 2,
        "method": "hedge",
        "steps": 4,
        "tol": None,
        "eta": None,
        "tau": 0.0,
        "stride": 1,
        "trace_dense": 4,
        "trace_stride": 1,
    }
    config = loop.RunConfig(**{f: fields[f] for f in loop.RunConfig._fields})
    jaxpr = jax.make_jaxpr(lambda p: loop.solve_one(p, config=config))(pop)

    def sub_jaxprs(params):
        for value in params.values():
            for item in value if isinstance(value, tuple | list) else [value]:
                if hasattr(item, "eqns"):
                    yield item
                elif hasattr(item, "jaxpr") and hasattr(item.jaxpr, "eqns"):
                    yield item.jaxpr

    def sorts(jaxpr, inside_loop):
        found = []
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "sort":
                found.append(inside_loop)
            loop = inside_loop or eqn.primitive.name in ("scan", "while")
            for sub in sub_jaxprs(eqn.params):
                found += sorts(sub, loop)
        return found

    found = sorts(jaxpr.jaxpr, False)
    assert found and not any(found), found


# --------------------------------------------------------------------------- constructor


def test_the_constructor_refuses_ties_made_by_the_cast_to_float32():
    """Distinct float64 (or int) utilities that float32 rounds together would tie silently."""
    with jax.enable_x64(False):  # float32 arrays, as by default outside these tests
        with pytest.raises(ValueError, match="utilities: user 0 gives responses 0 and 1"):
            ua.RankingPopulation(np.array([[1.0, 1.0 + 1e-9, 0.0], [0.0, 1.0, 1.0 + 1e-9]]))
        with pytest.raises(ValueError, match="rounds to the same value"):
            ua.RankingPopulation(np.array([[2**24 + 1, 2**24, 0]]))  # ints past float32's 2**24
        kept = ua.RankingPopulation(np.array([[1.0, 1.0, 0.5]]))  # ties in the data are fine
        assert kept.dtype == jnp.float32
        u = ua.response_payoffs(kept, jnp.full(3, 1 / 3, jnp.float32), 1)
        np.testing.assert_allclose(u, [2 / 3, 2 / 3, 1 / 6], atol=1e-6)
