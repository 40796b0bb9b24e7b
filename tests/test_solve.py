"""The run driver (the solver/ package) and the baselines."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua
from ualign_jax.solver import DEFAULT_TRACE_SIZE

from ._inputs import SMALL


@pytest.mark.parametrize("method", ua.METHODS)
def test_every_method_runs_and_reports_a_consistent_trace(method):
    sol = ua.solve(SMALL, 2, method=method, steps=200)
    assert sol.outcome_name == "successful"
    assert sol.method.startswith(method.removesuffix("_entropy").replace("anytime_", ""))
    trace = sol.trace
    assert trace.regret.shape == (200,) and np.all(np.isfinite(trace.regret))
    np.testing.assert_array_equal(trace.step, np.arange(1, 201))
    # The mixture's exploitability is Reg_T / T in self-play (<π_t, g_t> = 1/(k+1)).
    np.testing.assert_allclose(
        np.asarray(trace.mixture_exploitability),
        np.asarray(trace.regret) / np.arange(1, 201),
        atol=1e-9,
    )
    np.testing.assert_allclose(
        trace.exploitability[-1], ua.exploitability(SMALL, sol.policy, 2), atol=1e-12
    )
    np.testing.assert_allclose(
        trace.mixture_exploitability[-1], ua.exploitability(SMALL, sol.mixture, 2), atol=1e-9
    )


def test_extragradient_reaches_tolerance_and_stops_early():
    sol = ua.solve(SMALL, 4, tol=1e-8, steps=3000)
    assert sol.outcome_name == "successful"
    assert int(sol.num_steps) < 3000
    assert float(ua.exploitability(SMALL, sol.policy, 4)) <= 1e-8
    # Trace entries past the stop repeat the last value; mixture weights cover the steps taken.
    assert float(sol.trace.exploitability[-1]) <= 1e-8
    assert int(np.sum(np.asarray(sol.mixture.weights) > 0)) == int(sol.num_steps)


def test_solve_takes_a_dynamics_and_matches_the_named_shortcut():
    by_object = ua.solve(SMALL, 2, method=ua.hedge(0.3), steps=40)
    by_name = ua.solve(SMALL, 2, method="hedge", eta=0.3, steps=40)
    np.testing.assert_allclose(by_object.policy, by_name.policy, rtol=0, atol=1e-14)
    assert by_object.method == by_name.method == "hedge(eta=0.3)"


@pytest.mark.parametrize(
    ("dynamics", "name"),
    [
        (ua.dynamics.optimistic(ua.regret_matching_plus()), "optimistic(regret_matching_plus())"),
        (ua.dynamics.averaged(ua.hedge(0.5)), "averaged(hedge(eta=0.5))"),
        (ua.kl_regularised(ua.hedge(0.5), 0.1), "kl_regularised(hedge(eta=0.5), tau=0.1)"),
        ((ua.hedge(0.5).init, ua.hedge(0.5).step), "custom"),  # a user's own (init, step) pair
    ],
)
def test_solve_runs_wrappers_and_user_dynamics(dynamics, name):
    sol = ua.solve(SMALL, 2, method=dynamics, steps=30)
    assert sol.method == name and sol.outcome_name == "successful"
    assert float(sol.trace.exploitability[-1]) < float(sol.trace.exploitability[0])


def test_a_dynamics_object_refuses_eta_and_checkpointing(tmp_path):
    with pytest.raises(ValueError, match="eta applies to a method given by name"):
        ua.solve(SMALL, 2, method=ua.hedge(0.3), eta=0.1)
    with pytest.raises(ValueError, match="checkpoint needs method given by name"):
        ua.solve(SMALL, 2, method=ua.hedge(0.3), checkpoint=tmp_path / "run.npz")
    with pytest.raises(ValueError, match="method must be one of"):
        ua.solve(SMALL, 2, method=3)
    assert not (tmp_path / "run.npz").exists()


def test_trace_memory_follows_the_budget_not_the_horizon():
    # 10^9 steps: the trace has trace_size slots, and a run stopped by tol keeps every step taken.
    sol = ua.solve(SMALL, 2, steps=10**9, tol=1e-4)
    assert sol.trace.step.shape == (DEFAULT_TRACE_SIZE,)
    taken = int(sol.num_steps)
    assert taken < 100
    recorded = sol.recorded_trace()
    np.testing.assert_array_equal(recorded["step"], np.arange(1, taken + 1))
    assert all(v.shape == (taken,) for v in recorded.values())
    assert float(recorded["exploitability"][-1]) <= 1e-4


def test_a_long_trace_is_strided_and_ends_at_the_last_step():
    sol = ua.solve(SMALL, 2, method="hedge", steps=1000, trace_size=100)
    steps = np.asarray(sol.trace.step)
    assert steps.shape == (100,) and steps[-1] == 1000
    np.testing.assert_array_equal(steps[:50], np.arange(1, 51))  # the first half, step by step
    assert np.all(np.diff(steps[50:]) == 19)  # then blocks of ceil(950 / 50) steps
    full = ua.solve(SMALL, 2, method="hedge", steps=1000)
    np.testing.assert_allclose(sol.trace.regret, full.trace.regret[steps - 1], atol=1e-12)
    np.testing.assert_allclose(sol.policy, full.policy, atol=1e-14)


def test_outcome_is_int32_and_outcome_name_is_one_type():
    single = ua.solve(SMALL, 2, steps=5)
    assert single.outcome.dtype == jnp.int32 and single.num_steps.dtype == jnp.int32
    assert isinstance(single.outcome_name, np.ndarray) and single.outcome_name.shape == ()
    batched = ua.solve(ua.RankingPopulation(jnp.stack([SMALL.utilities] * 2)), 2, steps=5)
    assert (
        batched.outcome_name.shape == (2,) and batched.outcome_name.tolist() == ["successful"] * 2
    )

    def inside(pop):
        return ua.solve(pop, 2, steps=5).outcome_name

    with pytest.raises(ValueError, match="inside jit use Solution.outcome"):
        jax.jit(inside)(SMALL)


def test_outcome_when_the_budget_runs_out():
    sol = ua.solve(SMALL, 4, method="hedge", tol=1e-12, steps=30)
    assert sol.outcome_name == "max_steps_reached" and int(sol.num_steps) == 30


def test_bounded_mixture_memory_by_striding():
    sol = ua.solve(SMALL, 2, method="hedge", steps=100, mixture_size=10)
    assert sol.mixture.policies.shape == (10, 4)
    np.testing.assert_allclose(np.sum(sol.mixture.weights), 1.0)


def test_batched_prompts_equal_separate_solves_and_do_not_recompile():
    rng = np.random.default_rng(0)
    utilities = jnp.asarray(rng.integers(0, 4, (3, 5, 4)).astype(np.float64))
    batched = ua.solve(ua.RankingPopulation(utilities), 2, steps=50)
    for i in range(3):
        single = ua.solve(ua.RankingPopulation(utilities[i]), 2, steps=50)
        np.testing.assert_allclose(batched.policy[i], single.policy, atol=1e-12)
    from ualign_jax.payoffs import _jit_over_prompts as jit_over_prompts

    before = jit_over_prompts._cached._cache_size()
    other = jnp.asarray(rng.integers(0, 4, (3, 5, 4)).astype(np.float64))
    ua.solve(ua.RankingPopulation(other), 2, steps=50)
    assert jit_over_prompts._cached._cache_size() == before


def test_float32_solve():
    pop = ua.RankingPopulation(
        SMALL.utilities.astype(jnp.float32), SMALL.weights.astype(jnp.float32)
    )
    sol = ua.solve(pop, 3, tol=1e-5, steps=2000)
    assert sol.policy.dtype == jnp.float32 and sol.outcome_name == "successful"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "nope"}, "method 'nope' is unknown"),
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"tol": -1.0}, "tol must be a positive number"),
        ({"eta": float("nan")}, "eta must be a positive number"),
        ({"tau": -0.1}, "tau must be a nonnegative number"),
        ({"mixture_size": 0}, "mixture_size must be"),
        ({"trace_size": 0}, "trace_size must be"),
    ],
)
def test_solve_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ua.solve(SMALL, 2, **kwargs)
    with pytest.raises(ValueError, match="k must be"):
        ua.solve(SMALL, 0)


# --------------------------------------------------------------------------- baselines


def test_nlhf_is_a_certified_maximal_lottery():
    pop = ua.load_dataset("debian", dtype=jnp.float64)
    p = ua.nlhf(pop)
    pairwise = ua.pairwise_matrix(pop)
    assert float(jnp.max(pairwise @ p)) - 0.5 <= 1e-9
    # A cyclic (rock-paper-scissors) population: the maximal lottery is uniform.
    cyclic = ua.RankingPopulation(jnp.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0]]))
    np.testing.assert_allclose(ua.nlhf(cyclic), np.full(3, 1 / 3), atol=1e-9)


def test_pairwise_matrix_is_constant_sum():
    pairwise = ua.pairwise_matrix(ua.load_dataset("agh", dtype=jnp.float64))
    np.testing.assert_allclose(pairwise + pairwise.T, 1.0, atol=1e-12)


def test_baselines_take_prompt_axes():
    rng = np.random.default_rng(4)
    utilities = jnp.asarray(rng.integers(0, 4, (2, 6, 4)).astype(np.float64))
    batched = ua.RankingPopulation(utilities)
    singles = [ua.RankingPopulation(utilities[i]) for i in range(2)]
    for fn in (ua.pairwise_matrix, ua.nlhf, ua.rlhf):
        got = fn(batched)
        for i, single in enumerate(singles):
            np.testing.assert_allclose(got[i], fn(single), atol=1e-9, err_msg=fn.__name__)


def test_bradley_terry_recovers_scores_and_rlhf_limits():
    r_true = np.array([1.0, 0.0, -0.5])
    pairwise = 1 / (1 + np.exp(-(r_true[:, None] - r_true[None, :])))
    np.testing.assert_allclose(ua.bradley_terry_scores(pairwise), r_true - r_true.mean(), atol=1e-5)
    pop = ua.load_dataset("netflix", dtype=jnp.float64)
    sharp = ua.rlhf(pop, beta=1e-3)
    favourite = int(np.argmax(ua.bradley_terry_scores(ua.pairwise_matrix(pop))))
    assert float(sharp[favourite]) > 0.99
    np.testing.assert_allclose(ua.rlhf(pop, beta=1e6), np.full(3, 1 / 3), atol=1e-5)
    with pytest.raises(ValueError, match="beta"):
        ua.rlhf(pop, beta=0.0)


def test_nash_md_interpolates_between_reference_and_nlhf():
    pop = ua.condorcet_instance(4, 0.2, dtype=jnp.float64)
    weak = ua.nash_md(pop, tau=100.0)
    strong = ua.nash_md(pop, tau=0.01)
    assert float(jnp.max(jnp.abs(weak - 0.25))) < 0.01
    assert float(strong[0]) > 0.9


def test_solution_is_a_pytree_that_jit_and_vmap_accept():
    sol = ua.solve(SMALL, 2, steps=20)
    # jit: a function of the whole Solution (policy and mixture) traces and agrees with eager.
    gaps = jax.jit(
        lambda s: (ua.exploitability(SMALL, s.policy, 2), ua.exploitability(SMALL, s.mixture, 2))
    )(sol)
    np.testing.assert_allclose(gaps[0], sol.trace.exploitability[-1], atol=1e-12)
    np.testing.assert_allclose(gaps[1], sol.trace.mixture_exploitability[-1], atol=1e-9)
    # vmap: a batch of solutions (stacked leaves) maps like one.
    both = jax.tree.map(lambda a, b: jnp.stack([a, b]), sol, ua.solve(SMALL, 3, steps=20))
    per_k = jax.vmap(lambda s: jnp.sum(s.policy))(both)
    np.testing.assert_allclose(per_k, [1.0, 1.0], atol=1e-12)


def test_solve_on_a_dense_game_matches_the_population():
    dense = ua.DenseGame(ua.win_tensor(SMALL, 3))
    np.testing.assert_allclose(
        ua.solve(dense, 2, steps=100).policy, ua.solve(SMALL, 2, steps=100).policy, atol=1e-10
    )
    np.testing.assert_allclose(
        ua.nlhf(ua.DenseGame(ua.win_tensor(SMALL, 2))), ua.nlhf(SMALL), atol=1e-9
    )


def test_solve_runs_inside_jit_as_one_program():
    inside = jax.jit(lambda pop: ua.solve(pop, 2, steps=30, tol=1e-9).policy)(SMALL)
    expected = ua.solve(SMALL, 2, steps=30, tol=1e-9).policy
    np.testing.assert_allclose(inside, expected, rtol=0, atol=1e-12)
