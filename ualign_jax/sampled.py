"""Users given by a sampler and a choice rule: Monte Carlo estimates only (docs/theory.md §7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax

from ._validation import static_count
from .population import Population

__all__ = ["SampledPopulation"]


class SampledPopulation(Population):
    """Users given by a sampler and a choice function: Monte Carlo estimates only.

    Args:
        sample_users: ``sample_users(key, num) -> users`` (a pytree with leading axis ``num``).
        choose: ``choose(user, pool) -> [N]`` pick probabilities of the pooled positions.
        num_responses: ``n``.

    Example:
        >>> sample = lambda key, num: jax.random.normal(key, (num, 3))
        >>> choose = lambda v, pool: jax.nn.one_hot(jnp.argmax(v[pool]), pool.shape[0])
        >>> SampledPopulation(sample, choose, 3).num_responses
        3
    """

    exact: ClassVar[bool] = False
    sample_users: Callable[[Any, int], Any] = eqx.field(static=True)
    choose: Callable[[Any, Any], Any] = eqx.field(static=True)
    num_responses: int = eqx.field(static=True)

    def __init__(self, sample_users, choose, num_responses):
        if not callable(sample_users):
            raise ValueError("sample_users must be callable: sample_users(key, num) -> users")
        if not callable(choose):
            raise ValueError("choose must be callable: choose(user, pool) -> pick probabilities")
        self.sample_users = sample_users
        self.choose = choose
        self.num_responses = static_count(num_responses, "num_responses")

    @property
    def names(self) -> None:
        return None

    def expected_picks(self, key, pools):
        """Pick probability of position 0 of each pool for one user drawn with ``key``."""
        user = jax.tree.map(lambda a: a[0], self.sample_users(key, 1))
        return jax.vmap(lambda pool: self.choose(user, pool)[0])(pools)
