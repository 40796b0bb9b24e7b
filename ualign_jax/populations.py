"""Who the users are: every population kind and the interface they share (docs/theory.md §1).

Each kind lives in its own module and implements :class:`~ualign_jax.population.Population`
(see that module for the pytree rules and how to add a kind):

* :class:`RankingPopulation` (``ranking``): utilities; each user picks among its top positions;
* :class:`PlackettLucePopulation` (``plackett_luce``): softmax choice over the pool;
* :class:`DenseGame` (``dense``): a game given by its win tensor;
* :class:`SampledPopulation` (``sampled``): a sampler and a choice rule, Monte Carlo only.
"""

from __future__ import annotations

from .dense import DenseGame
from .plackett_luce import PL_QUADRATURE_NODES, PlackettLucePopulation, pl_quadrature_nodes
from .population import PayoffFunction, Population, UserTable
from .ranking import RankingPopulation
from .sampled import SampledPopulation

__all__ = [
    "PayoffFunction",
    "Population",
    "UserTable",
    "RankingPopulation",
    "PlackettLucePopulation",
    "DenseGame",
    "SampledPopulation",
    "PL_QUADRATURE_NODES",
    "pl_quadrature_nodes",
]
