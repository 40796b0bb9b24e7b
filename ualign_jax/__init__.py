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

from . import dynamics, plotting, testing
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
    load_population,
    load_preflib,
    parse_preflib,
)
from .dynamics import (
    Dynamics,
    extragradient,
    hedge,
    kl_regularised,
    logit_gradient,
    optimistic_gradient,
    optimistic_hedge,
    regret_matching_plus,
)
from .generators import (
    condorcet_instance,
    impartial_culture,
    mallows_mixture,
    plackett_luce_mixture,
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
    response_payoffs,
    win_tensor,
)
from .policies import ProductMixture, uniform_policy
from .populations import (
    DenseGame,
    PlackettLucePopulation,
    Population,
    RankingPopulation,
    SampledPopulation,
)
from .sharding import prompt_mesh, shard_prompts
from .solve import METHODS, OUTCOMES, Solution, Trace, solve

__version__ = "0.1.0"

__all__ = [
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
    "payoff_function",
    "response_payoffs",
    "robust_win_rate",
    "robust_win_rate_bounds",
    "uniform_policy",
    "win_rate",
    "win_tensor",
]
