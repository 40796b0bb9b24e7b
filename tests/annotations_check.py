"""Run by tests/test_annotations.py: import ualign_jax with jaxtyping's import hook (beartype)
so every annotated function and module field is checked, then run a workload over the API."""

import jax

jax.config.update("jax_enable_x64", True)

from jaxtyping import install_import_hook  # noqa: E402

with install_import_hook("ualign_jax", "beartype.beartype"):
    import ualign_jax as ua

    for name in ua.__all__:  # the package loads its modules lazily: load them under the hook
        getattr(ua, name)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def main() -> None:
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        batch = ua.RankingPopulation(rng.integers(0, 4, (2, 6, 4)).astype(dtype))  # ties
        strict = ua.RankingPopulation(np.argsort(rng.random((6, 4)), axis=1).astype(dtype))
        luce = ua.PlackettLucePopulation(rng.normal(size=(5, 4)).astype(dtype))
        pis = jnp.asarray(rng.dirichlet(np.ones(4), 2).astype(dtype))
        mixture = ua.ProductMixture(jnp.asarray(rng.dirichlet(np.ones(4), 3).astype(dtype)))
        ua.response_payoffs(batch, pis, 3)
        ua.exploitability(batch, pis, 3)
        ua.robust_win_rate(batch, pis, 3, ell=2)
        ua.robust_win_rate_bounds(batch, pis, 3, 2)
        ua.robust_win_rate_bounds(batch, pis, 3, 2, tol=0.0)  # the branch and bound
        law = ua.uniform_k_sets(4, 2)
        ua.robust_win_rate(strict, law, 2, ell=2)
        ua.win_rate(strict, law, 2, pis[0], ell=1)
        ua.solve(batch, 2, steps=20, tol=1e-9)
        if dtype == np.float32:  # the float32 pass: the core calls only
            continue
        for pop in (strict, luce):
            ua.response_payoffs(pop, mixture, 2)
            ua.win_rate(pop, pis[0], 2, mixture, ell=2)
            ua.count_form_payoffs(ua.count_form(pop, 2), pis[0])
            ua.win_tensor(pop, 3)
            ua.solve(pop, 3, steps=10)
            ua.monte_carlo_payoffs(jax.random.key(0), pop, pis[0], 2, num_samples=8)
        ua.nlhf(strict)
        ua.rlhf(strict)
        ua.response_payoffs(ua.DenseGame(ua.win_tensor(strict, 2)), pis[1], 1)
    print("ok")


if __name__ == "__main__":
    main()
