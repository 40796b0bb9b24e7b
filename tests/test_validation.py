"""Bad input at the public boundary raises a ValueError that names the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua

POP = ua.RankingPopulation(jnp.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]))
PI = jnp.array([0.2, 0.3, 0.5])
ONES = jnp.ones((2, 3))
NAN_ROW = jnp.array([[np.nan, 0.5, 0.5]])
Ranking = ua.RankingPopulation


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ua.RankingPopulation(jnp.array([1.0, 2.0])), "utilities must have at least 2"),
        (lambda: ua.RankingPopulation(jnp.array([[1.0, np.nan]])), "utilities must be finite"),
        (lambda: ua.RankingPopulation(jnp.array([[1.0, np.inf]])), "utilities must be finite"),
        (lambda: ua.RankingPopulation(jnp.zeros((2, 0))), "utilities must not be empty"),
        (lambda: ua.RankingPopulation("abc"), "utilities"),
        (
            lambda: Ranking(ONES, jnp.array([1.0, -1.0])),
            "weights must be nonneg",
        ),
        (
            lambda: Ranking(ONES, jnp.zeros(2)),
            "weights must not be all zero",
        ),
        (lambda: Ranking(ONES, jnp.ones(3)), "weights must have shape"),
        (lambda: Ranking(ONES, names=["a"]), "names must have 3"),
        (
            lambda: ua.PlackettLucePopulation(NAN_ROW),
            "log_weights must be finite",
        ),
        (lambda: ua.ProductMixture(jnp.array([[0.5, 0.6]])), "policies must sum to 1"),
        (lambda: ua.ProductMixture(jnp.eye(2), jnp.array([1.0])), "weights must have shape"),
        (lambda: ua.DenseGame(jnp.ones((2, 3))), "player axes"),
    ],
)
def test_constructors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ua.response_payoffs(POP, PI, 0), "k must be an integer >= 1"),
        (lambda: ua.response_payoffs(POP, PI, 2.5), "k must be an integer"),
        (lambda: ua.response_payoffs(POP, PI, True), "k must be an integer"),
        (lambda: ua.response_payoffs(POP, jnp.array([0.5, 0.6, -0.1]), 2), "policy has negative"),
        (lambda: ua.response_payoffs(POP, jnp.array([0.5, 0.6, 0.1]), 2), "policy must sum to 1"),
        (
            lambda: ua.response_payoffs(POP, NAN_ROW[0, :3], 2),
            "policy must be finite",
        ),
        (lambda: ua.response_payoffs(POP, jnp.array([0.5, 0.5]), 2), "policy has 2 responses"),
        (lambda: ua.response_payoffs("pop", PI, 2), "pop must be one of"),
        (lambda: ua.win_rate(POP, PI, 2, PI, 0), "ell must be an integer >= 1"),
        (lambda: ua.win_rate(POP, PI, 2, jnp.array([1.0, 1.0, 1.0]), 2), "opponent must sum"),
        (lambda: ua.robust_win_rate(POP, PI, 2, -1), "ell must be an integer >= 1"),
        (lambda: ua.exploitability(POP, PI, 0), "k must be an integer >= 1"),
        (lambda: ua.win_tensor(POP, 0), "num_players must be an integer >= 1"),
        (lambda: ua.win_tensor(ua.RankingPopulation(jnp.ones((1, 20))), 9), "2\\*\\*28"),
        (lambda: ua.count_form(POP, 0), "k must be an integer >= 1"),
    ],
)
def test_functions(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_no_silent_nan_for_degenerate_policies():
    for policy in (jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 0.0, 1.0])):
        for k in (1, 3, 1000):
            u = ua.response_payoffs(POP, policy, k)
            assert np.all(np.isfinite(u))
            np.testing.assert_allclose(policy @ u, 1 / (k + 1), rtol=1e-6)


# ---------------------------------------------------------------- one layer, traced values too


def test_traced_non_finite_values_raise_at_run_time_instead_of_vanishing():
    logprobs = jnp.array([[-1.0, -2.0, -0.5]])
    rewards = jnp.array([[0.5, 0.2, 0.3]])
    loss = jax.jit(lambda lp, r: ua.self_play_loss(lp, r, k=2))
    assert jnp.isfinite(loss(logprobs, rewards))
    with pytest.raises(Exception, match="logprobs must be finite"):
        loss(logprobs.at[0, 1].set(jnp.nan), rewards)
    with pytest.raises(Exception, match="rewards must be finite"):
        loss(logprobs, rewards.at[0, 0].set(jnp.inf))
    gradient = jax.jit(lambda z: ua.game_gradient(POP, z, 2))
    with pytest.raises(Exception, match="logits must be finite"):
        gradient(jnp.array([0.0, jnp.nan, 1.0]))
    rewards_of = jax.jit(lambda s: ua.sample_rewards(s, 1))
    with pytest.raises(Exception, match="scores must be finite"):
        rewards_of(jnp.array([[0.0, jnp.nan, 1.0]]))


def test_traced_weights_are_checked_at_run_time():
    rewards_of = jax.jit(
        lambda w: ua.sample_rewards(jnp.array([[0.0, 1.0], [1.0, 0.0]]), 1, weights=w)
    )
    assert rewards_of(jnp.array([1.0, 1.0])).shape == (2,)
    with pytest.raises(Exception, match="weights must be finite, nonnegative"):
        rewards_of(jnp.array([1.0, -1.0]))


def test_one_tolerance_table_per_dtype():
    from ualign_jax._validation import SIMPLEX_TOLERANCE, simplex_tolerance

    assert simplex_tolerance(jnp.float32) == SIMPLEX_TOLERANCE[32]
    assert simplex_tolerance(np.float64) == SIMPLEX_TOLERANCE[64]
    assert simplex_tolerance(jnp.bfloat16) == SIMPLEX_TOLERANCE[32]
    # a dense game off constant-sum by more than its dtype's tolerance is refused
    game = np.array([[0.5, 1.0], [0.0, 0.5]], np.float32)
    ua.DenseGame(game + 0.5 * SIMPLEX_TOLERANCE[32])
    with pytest.raises(ValueError, match="win_tensor"):
        ua.DenseGame(game + 3 * SIMPLEX_TOLERANCE[32])


@pytest.mark.parametrize("tol", [0, -1.0, float("nan"), float("inf"), "1e-3", True, None, [1.0]])
def test_check_real_names_the_argument(tol):
    from ualign_jax._validation import check_real

    with pytest.raises(ValueError, match="^tol must be a positive number"):
        check_real(tol, "tol", 0, low_open=True)
    if tol == 0:
        assert check_real(tol, "tol", 0) == 0.0
    if tol is None:
        assert check_real(tol, "tol", 0, low_open=True, none_ok=True) is None
    assert check_real(np.float32(0.5), "tol", 0, low_open=True) == 0.5
    with pytest.raises(ValueError, match=r"eps must be a number in \(0, 0.5\), got 0.5"):
        check_real(0.5, "eps", 0, 0.5, low_open=True, high_open=True)


def test_check_choice_lists_the_choices():
    with pytest.raises(ValueError, match=r"choice must be one of \['best', 'plackett_luce'\]"):
        ua.sample_rewards(jnp.ones((1, 3)), 1, choice="worst")
