"""Run under 4 forced host devices by tests/test_scale.py: sharded results vs unsharded ones.

Prints one JSON object: for each public function, the largest absolute difference between the
run with the prompt axis sharded over a 4-device mesh and the same call on one device (for a
prepared population: on the unprepared one), and how many devices hold the result.
"""

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import ualign_jax as ua  # noqa: E402

PROMPTS, USERS, N, K = 8, 6, 4, 3


def main() -> None:
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    ranking = ua.RankingPopulation(rng.integers(0, 4, (PROMPTS, USERS, N)).astype(np.float64))
    luce = ua.PlackettLucePopulation(rng.normal(size=(PROMPTS, USERS, N)))
    policy = jnp.asarray(rng.dirichlet(np.ones(N), PROMPTS))
    opponent = jnp.asarray(rng.dirichlet(np.ones(N), PROMPTS))
    mixture = ua.ProductMixture(jnp.asarray(rng.dirichlet(np.ones(N), (PROMPTS, 3))))

    calls = {
        "response_payoffs": lambda p, x, o, mx: ua.response_payoffs(p, x, K),
        "response_payoffs_mixture": lambda p, x, o, mx: ua.response_payoffs(p, mx, K),
        "win_rate": lambda p, x, o, mx: ua.win_rate(p, x, K, o, ell=2),
        "exploitability": lambda p, x, o, mx: ua.exploitability(p, x, K),
        "robust_win_rate": lambda p, x, o, mx: ua.robust_win_rate(p, x, K),
        "robust_win_rate_ell2": lambda p, x, o, mx: ua.robust_win_rate(p, x, K, ell=2),
        "robust_win_rate_bounds": lambda p, x, o, mx: ua.robust_win_rate_bounds(p, x, K, 2),
        "win_tensor": lambda p, x, o, mx: ua.win_tensor(p, 3),
        "count_form": lambda p, x, o, mx: ua.count_form(p, 2).table,
        "solve": lambda p, x, o, mx: ua.solve(p, K, steps=40),
        "solve_tol": lambda p, x, o, mx: ua.solve(p, K, steps=200, tol=1e-8),
        "pairwise_matrix": lambda p, x, o, mx: ua.pairwise_matrix(p),
        "monte_carlo_payoffs": lambda p, x, o, mx: ua.monte_carlo_payoffs(
            jax.random.key(0), p, x, K, num_samples=64
        ),
        "nlhf": lambda p, x, o, mx: ua.nlhf(p),
        "rlhf": lambda p, x, o, mx: ua.rlhf(p),
    }
    mesh = ua.prompt_mesh()
    report = {}
    luce_calls = ("response_payoffs", "exploitability", "robust_win_rate", "solve_tol")
    # One-device results, computed once: the prepared population is compared with the ranking's.
    plain_pops = {"ranking": ranking, "plackett_luce": luce}
    references = {}
    for pop_name, pop, names, plain_name in (
        ("ranking", ranking, list(calls), "ranking"),
        ("ranking_prepared", ua.prepare(ranking), list(calls), "ranking"),
        ("plackett_luce", luce, luce_calls, "plackett_luce"),
    ):
        args = (pop, policy, opponent, mixture)
        sharded_args = ua.shard_prompts(args, mesh)
        assert len(sharded_args[0].weights.sharding.device_set) == 4
        for name in names:
            call = calls[name]
            if (plain_name, name) not in references:
                references[plain_name, name] = jax.tree.leaves(
                    call(plain_pops[plain_name], *args[1:])
                )
            plain = references[plain_name, name]
            sharded = jax.tree.leaves(call(*sharded_args))
            difference = max(
                float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                for a, b in zip(plain, sharded, strict=True)
            )
            devices = min(len(leaf.sharding.device_set) for leaf in sharded)
            report[f"{pop_name}/{name}"] = {"difference": difference, "devices": devices}
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
