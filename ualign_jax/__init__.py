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
import sys
import types


def _load_everything() -> None:
    """Import the submodules and bind the public names (on the first use of any of them).

    The package itself imports nothing heavy, so ``ualign --help`` answers before JAX loads.
    """
    dynamics = importlib.import_module(".dynamics", __name__)
    plotting = importlib.import_module(".plotting", __name__)
    testing = importlib.import_module(".testing", __name__)
    from .baselines import (
        bradley_terry_scores,
        maximal_lottery,
        nash_md,
        nlhf,
        pairwise_matrix,
        reference_policy,
        rlhf,
    )
    from .data import (
        DATASETS,
        PreflibData,
        load_dataset,
        load_policy_file,
        load_population,
        load_preflib,
        parse_preflib,
    )
    from .dynamics import (
        Dynamics,
        averaged,
        extragradient,
        hedge,
        kl_regularised,
        logit_gradient,
        optimistic,
        optimistic_gradient,
        optimistic_hedge,
        regret_matching_plus,
    )
    from .generators import (
        condorcet_instance,
        ell_tight_instance,
        impartial_culture,
        mallows_mixture,
        plackett_luce_mixture,
        sampled_impartial_culture,
    )
    from .metrics import (
        RobustBounds,
        exploitability,
        robust_win_rate,
        robust_win_rate_bounds,
        win_rate,
    )
    from .payoffs import (
        CountForm,
        count_form,
        count_form_payoffs,
        monte_carlo_payoffs,
        payoff_function,
        prepare,
        response_payoffs,
        win_tensor,
    )
    from .policies import ProductMixture, uniform_policy
    from .populations import (
        DenseGame,
        PayoffFunction,
        PlackettLucePopulation,
        Population,
        RankingPopulation,
        SampledPopulation,
    )
    from .sharding import initialize_distributed, prompt_mesh, shard_prompts, shard_users, user_mesh
    from .solve import METHODS, OUTCOMES, Solution, Trace, solve
    from .trainer import (
        Trainer,
        TrainerState,
        TrainingRun,
        self_play_trainer,
        table_logprobs,
        train_population,
    )
    from .training import game_gradient, group_rewards, sample_rewards, self_play_loss

    globals().update(locals())  # the names imported above become the package's attributes


def __getattr__(name: str):
    if name in __all__:
        _load_everything()
        return globals()[name]
    try:  # a submodule (ua.payoffs, ua.sharding, ...): import it on first use
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Keeps ``ualign_jax.solve`` the function when the submodule of that name is imported."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and name in _FUNCTIONS_NAMED_LIKE_MODULES:
            return
        super().__setattr__(name, value)


_FUNCTIONS_NAMED_LIKE_MODULES = frozenset({"solve"})
sys.modules[__name__].__class__ = _Package

__version__ = "0.1.0"

__all__ = [
    "payoff_function",
    "PayoffFunction",
    "prepare",
    "initialize_distributed",
    "shard_users",
    "user_mesh",
    "averaged",
    "optimistic",
    "sampled_impartial_culture",
    "Trainer",
    "TrainerState",
    "TrainingRun",
    "self_play_trainer",
    "table_logprobs",
    "train_population",
    "game_gradient",
    "group_rewards",
    "sample_rewards",
    "self_play_loss",
    "METHODS",
    "OUTCOMES",
    "Dynamics",
    "Solution",
    "Trace",
    "bradley_terry_scores",
    "dynamics",
    "extragradient",
    "hedge",
    "kl_regularised",
    "load_policy_file",
    "load_population",
    "logit_gradient",
    "maximal_lottery",
    "nash_md",
    "nlhf",
    "optimistic_gradient",
    "optimistic_hedge",
    "pairwise_matrix",
    "plotting",
    "reference_policy",
    "regret_matching_plus",
    "rlhf",
    "solve",
    "prompt_mesh",
    "shard_prompts",
    "testing",
    "DATASETS",
    "PreflibData",
    "condorcet_instance",
    "ell_tight_instance",
    "impartial_culture",
    "load_dataset",
    "load_preflib",
    "mallows_mixture",
    "parse_preflib",
    "plackett_luce_mixture",
    "CountForm",
    "DenseGame",
    "PlackettLucePopulation",
    "Population",
    "ProductMixture",
    "RankingPopulation",
    "RobustBounds",
    "SampledPopulation",
    "count_form",
    "count_form_payoffs",
    "exploitability",
    "monte_carlo_payoffs",
    "response_payoffs",
    "robust_win_rate",
    "robust_win_rate_bounds",
    "uniform_policy",
    "win_rate",
    "win_tensor",
]
