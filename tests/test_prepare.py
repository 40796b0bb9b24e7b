"""Prepared populations (``ua.prepare``): the work on the population alone done once, stored as
leaves, checked at every use; closed-over populations compile without constant folding."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ualign_jax as ua
from ualign_jax import ranking

M, N, K = 40, 7, 3
#: What a stale prepared population raises inside a program: equinox's runtime error, which
#: reaches a caller of ``jax.jit`` (not ``eqx.filter_jit``) as a JaxRuntimeError.
RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)
RNG = np.random.default_rng(17)
STRICT = np.argsort(RNG.random((M, N)), axis=1).astype(np.float64)
TIES = RNG.integers(0, 3, (M, N)).astype(np.float64)
WEIGHTS = RNG.random(M) + 0.1
POLICY = RNG.dirichlet(np.ones(N))


def population(values, dtype=jnp.float32, engine="auto"):
    return ua.RankingPopulation(values.astype(dtype), WEIGHTS.astype(dtype), engine=engine)


ENGINES = ("pairwise", "scan", "parallel")
TABLES = {"strict": STRICT, "ties": TIES}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("table", TABLES)
def test_prepared_equals_unprepared(engine, table):
    pop = population(TABLES[table], engine=engine)
    prepared = ua.prepare(pop)
    assert prepared.prepared and not pop.prepared
    assert prepared.order.dtype == prepared.rank.dtype == jnp.int32
    pi = jnp.asarray(POLICY, jnp.float32)
    expected = ua.response_payoffs(pop, pi, K)
    jitted = jax.jit(lambda p, x: ua.response_payoffs(p, x, K))
    np.testing.assert_allclose(ua.response_payoffs(prepared, pi, K), expected, atol=1e-6)
    np.testing.assert_allclose(jitted(prepared, pi), expected, atol=1e-6)  # traced, checked
    np.testing.assert_allclose(jitted(pop, pi), expected, atol=1e-6)  # traced, sorted per call
    for metric in (ua.exploitability, ua.robust_win_rate):
        np.testing.assert_allclose(metric(prepared, pi, K), metric(pop, pi, K), atol=1e-6)
    np.testing.assert_allclose(
        ua.robust_win_rate(prepared, pi, K, ell=2), ua.robust_win_rate(pop, pi, K, ell=2), atol=1e-6
    )


def test_other_kinds_prepare_to_themselves():
    pl = ua.PlackettLucePopulation(jnp.asarray(TIES - STRICT, jnp.float32))
    dense = ua.DenseGame(ua.win_tensor(population(TIES), 3))
    for pop in (pl, dense):
        assert ua.prepare(pop) is pop and pop.prepared
    with pytest.raises(ValueError, match="population kinds"):
        ua.prepare(np.zeros((2, 3)))


def test_batched_and_vmapped():
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), population(STRICT), population(TIES))
    prepared = ua.prepare(stacked)
    assert prepared.order.shape == (2, M, N)
    pis = jnp.asarray(np.stack([POLICY, POLICY[::-1]]), jnp.float32)
    expected = ua.response_payoffs(stacked, pis, K)
    np.testing.assert_allclose(ua.response_payoffs(prepared, pis, K), expected, atol=1e-6)
    for i, values in enumerate((STRICT, TIES)):
        np.testing.assert_allclose(
            expected[i], ua.response_payoffs(population(values), pis[i], K), atol=1e-6
        )
    # vmap over traced populations: the host sort (a callback on CPU) maps over the prompts
    mapped = jax.jit(jax.vmap(lambda p, x: ua.payoff_function(p, K)(x)))(stacked, pis)
    np.testing.assert_allclose(mapped, expected, atol=1e-6)
    mapped = jax.jit(jax.vmap(lambda p, x: ua.payoff_function(p, K)(x)))(prepared, pis)
    np.testing.assert_allclose(mapped, expected, atol=1e-6)


def test_sort_orders_every_way():
    values = jnp.asarray(TIES, jnp.float32)
    host = ranking.sort_orders(values)
    device = jax.jit(ranking.device_sort_orders)(values)
    callback = jax.jit(ranking.callback_sort_orders)(values)
    many = ranking.host_sort_orders(np.tile(TIES, (3000, 1)))  # split over threads
    for order, rank in (host, device, callback, tuple(a[:M] for a in many)):
        sorted_values = np.take_along_axis(TIES, np.asarray(order), axis=1)
        assert np.all(np.diff(sorted_values, axis=1) >= 0)
        np.testing.assert_array_equal(
            np.take_along_axis(np.asarray(rank), np.asarray(order), axis=1),
            np.broadcast_to(np.arange(N), (M, N)),
        )


def test_grad_through_prepared_population():
    pi = jnp.asarray(POLICY)

    def value(weights, pop):
        return ua.response_payoffs(eqx.tree_at(lambda p: p.weights, pop, weights), pi, K)[0]

    pop = population(TIES, jnp.float64, engine="scan")
    prepared = ua.prepare(pop)
    weights = jnp.asarray(WEIGHTS)
    expected = jax.grad(value)(weights, pop)
    np.testing.assert_allclose(jax.grad(value)(weights, prepared), expected, rtol=1e-12)
    np.testing.assert_allclose(jax.jit(jax.grad(value))(weights, prepared), expected, rtol=1e-12)
    logits = jnp.log(pi)
    np.testing.assert_allclose(
        ua.game_gradient(prepared, logits, K), ua.game_gradient(pop, logits, K), atol=1e-12
    )


def test_stale_leaves_refused_never_silently_wrong():
    prepared = ua.prepare(population(STRICT, engine="scan"))
    pi = jnp.asarray(POLICY, jnp.float32)
    jitted = jax.jit(lambda p, x: ua.response_payoffs(p, x, K))
    reversed_ = eqx.tree_at(lambda p: p.utilities, prepared, -prepared.utilities)
    with pytest.raises(ValueError, match="call ua.prepare"):
        ua.response_payoffs(reversed_, pi, K)  # concrete: checked on the host
    with pytest.raises(RUNTIME_ERRORS, match="call ua.prepare"):
        jitted(reversed_, pi)  # traced: checked in the program
    with pytest.raises(ValueError, match="call ua.prepare"):
        ua.payoff_function(reversed_, K)
    doubled = jax.tree.map(lambda x: 2 * x, prepared)  # the order leaves doubled as well
    with pytest.raises(RUNTIME_ERRORS, match="call ua.prepare"):
        jitted(doubled, pi)
    permuted = jax.tree.map(lambda x: x[..., ::-1], prepared)  # responses reordered everywhere
    with pytest.raises(ValueError, match="call ua.prepare"):
        ua.exploitability(permuted, pi, K)
    cast = jax.tree.map(lambda x: x.astype(jnp.float32), prepared)
    with pytest.raises(ValueError, match="order has dtype float32"):
        ua.response_payoffs(cast, pi, K)
    # edits that keep the order valid give the fresh population's numbers
    scaled = eqx.tree_at(lambda p: p.utilities, prepared, 3 * prepared.utilities + 1)
    fresh = ua.response_payoffs(population(3 * STRICT + 1), pi, K)
    np.testing.assert_allclose(jitted(scaled, pi), fresh, atol=1e-6)
    reweighted = eqx.tree_at(lambda p: p.weights, prepared, 2 * prepared.weights)
    np.testing.assert_allclose(jitted(reweighted, pi), jitted(prepared, pi), atol=1e-6)
    # replace() builds through the constructor: an unprepared population
    assert not prepared.replace(utilities=-prepared.utilities).prepared
    with pytest.raises(ValueError, match="no longer sorts"):
        ua.testing.check_population(reversed_, k=2)


def test_tie_flag_follows_the_values_in_pairwise_engine():
    # all-equal utilities are still sorted by the stored order: the edit is valid, and the tie
    # flag (found in the same check, not stored) must follow it
    prepared = ua.prepare(population(STRICT, engine="pairwise"))
    tied = eqx.tree_at(lambda p: p.utilities, prepared, jnp.zeros_like(prepared.utilities))
    pi = jnp.asarray(POLICY, jnp.float32)
    got = jax.jit(lambda p: ua.response_payoffs(p, pi, K))(tied)
    np.testing.assert_allclose(got, jnp.full(N, 1 / (K + 1)), atol=1e-6)


def _program(fn, *args) -> str:
    return jax.jit(fn).lower(*args).as_text()


def test_no_sort_in_programs_of_known_populations(monkeypatch):
    # large known populations are hidden from constant folding; small ones are left to it (so
    # that XLA may hoist their work out of loops)
    from ualign_jax import _numerics

    pop = population(STRICT, engine="scan")
    pi = jnp.asarray(POLICY, jnp.float32)
    small = _program(lambda x: ua.response_payoffs(pop, x, K), pi)
    assert "optimization_barrier" not in small and "stablehlo.sort" not in small
    monkeypatch.setattr(_numerics, "FOLD_ENTRIES", (M - 1) * N)
    pop = ua.RankingPopulation(STRICT[1:].astype(np.float32), engine="scan")  # traced afresh
    sort_callback = f"-> (tensor<{M - 1}x{N}xi32>, tensor<{M - 1}x{N}xi32>)"  # host_sort_orders
    closure = _program(lambda x: ua.response_payoffs(pop, x, K), pi)
    prepared_arg = _program(lambda p, x: ua.response_payoffs(p, x, K), ua.prepare(pop), pi)
    traced_arg = _program(lambda p, x: ua.response_payoffs(p, x, K), pop, pi)
    # sorted at trace time, trusted: no sort and no staleness check; the one check left is the
    # traced policy's (on the simplex), which the prepared argument has too
    policy_checks = closure.count("callback")
    assert policy_checks > 0 and sort_callback not in closure
    assert "optimization_barrier" in closure  # nothing left for XLA to constant-fold
    assert "stablehlo.sort" not in prepared_arg and sort_callback not in prepared_arg
    assert prepared_arg.count("callback") > policy_checks  # the staleness check (eqx.error_if)
    assert sort_callback in traced_arg and "stablehlo.sort" not in traced_arg  # NumPy, on CPU


def test_payoff_function_is_a_pytree_callable():
    pop = population(TIES, engine="scan")
    fn = ua.payoff_function(pop, K)
    assert isinstance(fn, ua.PayoffFunction) and isinstance(fn, eqx.Module)
    pi = jnp.asarray(POLICY, jnp.float32)
    expected = ua.response_payoffs(pop, pi, K)
    np.testing.assert_allclose(jax.jit(fn)(pi), expected, atol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda f, x: f(x))(fn, pi), expected, atol=1e-6)
    pl = ua.PlackettLucePopulation(jnp.asarray(TIES - STRICT, jnp.float32))
    np.testing.assert_allclose(
        jax.jit(lambda f, x: f(x))(ua.payoff_function(pl, K), pi),
        ua.response_payoffs(pl, pi, K),
        atol=1e-6,
    )


def test_solve_and_train_use_prepared_populations():
    pop = population(STRICT, engine="scan")
    plain = ua.solve(pop, K, steps=50)
    prepared = ua.solve(ua.prepare(pop), K, steps=50)
    np.testing.assert_allclose(prepared.policy, plain.policy, atol=1e-6)
    stale = eqx.tree_at(lambda p: p.utilities, ua.prepare(pop), -pop.utilities)
    with pytest.raises(ValueError, match="call ua.prepare"):
        ua.solve(stale, K, steps=5)
