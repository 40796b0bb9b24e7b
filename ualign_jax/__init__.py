"""ualign_jax: alignment games in JAX.

A model answers a prompt with k responses and the user keeps the one they like. The policy whose
k i.i.d. samples win against any opponent with probability at least k/(k+1) is a symmetric Nash
equilibrium of a (k+1)-player game (Cai & Zheng, arXiv 2601.08777). This package builds the game
for populations of users, solves it, and evaluates policies exactly.

Example:
    >>> import jax.numpy as jnp, ualign_jax as ua
    >>> pop = ua.RankingPopulation(jnp.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]))
    >>> ua.response_payoffs(pop, jnp.full(3, 1 / 3), k=2).shape
    (3,)
"""

import importlib

__version__ = "0.1.0"

#: The public names, by the module that defines them (imported on first use, so that
#: ``import ualign_jax`` and ``ualign --help`` do not load JAX).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "baselines": (
        "bradley_terry_scores",
        "float64_pairwise_matrix",
        "maximal_lottery",
        "nash_md",
        "nlhf",
        "pairwise_matrix",
        "reference_policy",
        "rlhf",
    ),
    "datasets": (
        "DATASETS",
        "load_dataset",
    ),
    "dynamics": (
        "averaged",
        "Dynamics",
        "extragradient",
        "hedge",
        "kl_regularised",
        "logit_gradient",
        "optimistic",
        "optimistic_gradient",
        "optimistic_hedge",
        "regret_matching_plus",
    ),
    "files": (
        "load_policy_file",
        "load_population",
    ),
    "generators": (
        "condorcet_instance",
        "ell_tight_instance",
        "impartial_culture",
        "mallows_mixture",
        "plackett_luce_mixture",
        "sampled_impartial_culture",
    ),
    "metrics": (
        "exploitability",
        "robust_win_rate",
        "robust_win_rate_bounds",
        "RobustBounds",
        "win_rate",
    ),
    "payoffs": (
        "count_form",
        "count_form_payoffs",
        "CountForm",
        "monte_carlo_payoffs",
        "payoff_function",
        "prepare",
        "response_payoffs",
        "win_tensor",
    ),
    "policies": (
        "KOutputPolicy",
        "product_law",
        "ProductMixture",
        "uniform_k_sets",
        "uniform_policy",
    ),
    "populations": (
        "DenseGame",
        "PayoffFunction",
        "PlackettLucePopulation",
        "Population",
        "RankingPopulation",
        "SampledPopulation",
    ),
    "preflib": (
        "load_preflib",
        "parse_preflib",
        "PreflibData",
    ),
    "sharding": (
        "initialize_distributed",
        "prompt_mesh",
        "shard_prompts",
        "shard_users",
        "user_mesh",
    ),
    "solver": (
        "AbstractAdjoint",
        "ImplicitAdjoint",
        "METHODS",
        "Outcome",
        "OUTCOMES",
        "Solution",
        "solve",
        "Trace",
        "UnrolledAdjoint",
    ),
    "sweep": ("run_sweep",),
    "trainer": (
        "self_play_trainer",
        "table_logprobs",
        "train_population",
        "Trainer",
        "TrainerState",
        "TrainingRun",
    ),
    "training": (
        "game_gradient",
        "group_rewards",
        "sample_rewards",
        "self_play_loss",
    ),
}

#: Submodules that are public namespaces (``ua.dynamics.hedge``, ``ua.payoffs.RANKING_ENGINE``,
#: ``ua.sharding.gather``, ``ua.testing.check_population``, ``ua.plotting.plot_policy``). Every
#: other module is an implementation detail: import what it defines from ``ualign_jax``.
_PUBLIC_MODULES = ("dynamics", "payoffs", "plotting", "sharding", "testing")

_ORIGIN = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_ORIGIN, *_PUBLIC_MODULES], key=str.lower)


def __getattr__(name: str):
    if name in _PUBLIC_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _ORIGIN:
        value = getattr(importlib.import_module(f".{_ORIGIN[name]}", __name__), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
