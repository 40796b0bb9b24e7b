"""The population interface every kind of user population implements (docs/theory.md §1).

A population is an ``equinox.Module`` (a pytree). Leading axes before a kind's core shape are
prompt (batch) axes; the methods below that compute something take one prompt (no batch axes)
and are mapped over prompts by the public functions in ``payoffs`` and ``metrics``.

Pytree rules (so that no pytree operation can give a silently wrong answer):

* every array leaf is independent data: nothing derived from another leaf is stored (the sort
  of a ranking population is recomputed from ``utilities`` inside each call), so
  ``jax.tree.map``, ``eqx.tree_at``, stacking, slicing and ``vmap`` give the population a fresh
  constructor would build from the same leaves;
* static fields depend only on shapes, dtypes and explicit settings, never on values, so
  same-shape populations share one tree structure (they stack) and jitted functions retrace
  for shapes only;
* :meth:`Population.replace` changes fields through the constructor (re-validated).

How to add a kind:

1. Write one module with an ``eqx.Module`` subclass of :class:`Population` (or of
   :class:`UserTable` for a finite ``users x responses`` table with weights: it brings
   ``weights``, ``names``, ``user_chunk``, the shape properties, ``user_slice``,
   ``with_user_chunk``, the win tensor and count form from :meth:`UserTable.win_factors`, and
   Monte Carlo picks from :meth:`UserTable.pick_probabilities`).
2. Implement :meth:`Population.payoff_function` (``u_k(·, π)`` for one prompt; compute anything
   derived from the leaves there, once, before returning the closure) and, when the kind has
   them, the metric kernels :meth:`Population.designated_values`, :meth:`Population.set_wins`
   and :meth:`Population.greedy_parts`. Set ``exact = False`` for estimate-only kinds.
3. Export it from ``populations`` and run ``ua.testing.check_population(pop)`` on a small
   instance in the tests: shapes, payoffs against the dense win tensor, ``<π, u_k> = 1/(k+1)``,
   jit / vmap / stacking, float32 and float64.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import inspect
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._combinatorics import rotations
from ._linalg import dot
from ._numerics import khatri_rao_power, unfoldable, user_average, user_contraction, user_sum
from ._pytrees import unchecked_replace
from ._validation import as_float_array, check_weights, is_concrete, static_count

__all__ = ["Population", "PayoffFunction", "UserTable", "unchecked_replace"]


class Population(eqx.Module):
    """A population of users choosing among ``n`` responses (abstract; see the module docstring).

    Kinds: :class:`~ualign_jax.RankingPopulation`, :class:`~ualign_jax.PlackettLucePopulation`,
    :class:`~ualign_jax.DenseGame`, :class:`~ualign_jax.SampledPopulation`.

    Example:
        >>> import ualign_jax as ua
        >>> isinstance(ua.RankingPopulation([[1.0, 0.0]]), ua.Population)
        True
    """

    #: ``n``, the number of responses (a field or a property of each kind).
    num_responses: eqx.AbstractVar[int]
    #: ``n`` response names, or ``None`` (a field or a property of each kind).
    names: eqx.AbstractVar[tuple[str, ...] | None]

    #: Whether exact payoffs are available (``False``: Monte Carlo estimates only).
    exact: ClassVar[bool] = True

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The prompt axes."""
        return ()

    @property
    def num_users(self) -> int:
        """The number of user types (1 for a game given by its win tensor)."""
        return 1

    @property
    def dtype(self):
        """The floating dtype of this population's arrays."""
        return jnp.result_type(float)

    @property
    def num_players(self) -> int | None:
        """The one number of players this kind's game has, or ``None`` when any ``k`` works."""
        return None

    def check_players(self, num_players: int, what: str = "k + 1") -> None:
        """Raise ``ValueError`` unless a ``num_players``-player game exists for this population
        (``what`` names the quantity that set ``num_players``, for the message)."""
        if self.num_players is not None and num_players != self.num_players:
            label = f"k={num_players - 1}" if what == "k + 1" else f"{what} = {num_players}"
            raise ValueError(
                f"{label} does not match this {type(self).__name__}: its win tensor is for "
                f"{self.num_players} players (k = {self.num_players - 1})"
            )

    def replace(self, **changes) -> Population:
        """A copy with constructor arguments changed, built (and validated) by the constructor.

        Example: ``pop.replace(utilities=2 * pop.utilities)``.
        """
        params = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        unknown = set(changes) - set(params)
        if unknown:
            raise ValueError(
                f"replace: {sorted(unknown)} are not arguments of {type(self).__name__}; "
                f"expected some of {params}"
            )
        return type(self)(**{name: changes.get(name, getattr(self, name)) for name in params})

    def prepare(self) -> Population:
        """The same population with the work that depends on it alone done and stored as leaves
        (``ua.prepare``; see each kind). Kinds with nothing worth storing return ``self``."""
        return self

    @property
    def prepared(self) -> bool:
        """Whether that work is stored (always, for kinds with nothing to store)."""
        return True

    def check_prepared(self) -> Population:
        """``self`` after checking (concrete leaves) that stored derived leaves still match the
        population's data; ``ValueError`` otherwise. Nothing to check for kinds that store
        nothing."""
        return self

    # ----------------------------------------------------------------- one prompt

    def payoff_function(self, k) -> PayoffFunction:
        """``π -> u_k(·, π)`` for one prompt (no validation); derived data computed once, here.

        Call it outside a loop over policies (as ``solve`` does) so that work that depends only
        on the population (a sort, say) is not repeated at every step.
        """
        raise self._unavailable("exact payoffs (response_payoffs)")

    def win_tensor_one(self, num_players: int) -> Float[Array, "..."]:
        """The dense win tensor ``[n] * num_players`` of one prompt."""
        raise self._unavailable("win_tensor")

    def count_table(self, counts, multisets, k: int) -> Float[Array, "n R"]:
        """``table[y, r]``: payoff of ``y`` against the opponent multiset ``multisets[r]``."""
        raise self._unavailable("count_form")

    def expected_picks(self, key, pools: Int[Array, "P N"]) -> Float[Array, " P"]:
        """Pick probability of position 0 of each pool: the expectation over users when they are
        finitely many, else for one user drawn with ``key`` (one prompt)."""
        raise self._unavailable("monte_carlo_payoffs")

    def designated_values(self, own, other, k: int, ell: int) -> Float[Array, " n"]:
        """Payoff of one position holding ``y`` against ``k-1`` draws of ``own`` and ``ell`` of
        ``other`` (the ``ell > 1`` win rate, docs/theory.md §2)."""
        raise self._unavailable("win_rate against several-output opponents (k > 1, ell > 1)")

    def set_wins(self, policy, k: int, sets) -> Float[Array, " S"]:
        """``WR(S, π^{⊗k})`` for each opponent multiset ``S`` (rows of ``sets``)."""
        raise self._unavailable("robust_win_rate against several-output opponents (ell > 1)")

    def pool_shares(self, sets, opponents) -> Float[Array, "S R"]:
        """``[s, r]``: the share of ``sets[s]``'s positions in the pool ``sets[s] ⊕ opponents[r]``
        (expected over users), for laws over k-tuples (docs/theory.md §1)."""
        raise self._unavailable("win rates of k-output laws (KOutputPolicy)")

    def greedy_parts(self, policies, k: int, ell: int):
        """``(init, add, value)`` for the greedy ``ell``-output opponent of
        ``metrics.robust_win_rate_bounds``: a per-user summary of a multiset, how adding a
        response updates it, and the ``[T]`` share of the users it wins against each policy
        row (averaged over users with their weights)."""
        raise self._unavailable("robust_win_rate_bounds (it needs ranking or Plackett–Luce users)")

    # ----------------------------------------------------------------- layout and judges

    @property
    def user_axes(self) -> dict[str, int]:
        """The array fields with a user axis, each with that axis counted from the end (what
        user chunks and ``shard_users`` split); empty for kinds without a user table."""
        return {}

    def judge_scores(self):
        """``(scores [..., m, n], choice)``: each user's score of each response and the judges'
        choice rule for ``sample_rewards`` (``"best"`` or ``"plackett_luce"``), for simulated
        training (``train_population``)."""
        raise self._unavailable("judges for simulated training (train_population)")

    def sharded_chunk_cap(self, num_users: int, devices: int) -> int | None:
        """The most users per chunk when the users are sharded over ``devices`` (``None``: no
        limit beyond memory)."""
        return None

    def _unavailable(self, what: str) -> ValueError:
        if not self.exact:
            return ValueError(
                f"{type(self).__name__}: {what} is not available, exact values are not available; "
                "use monte_carlo_payoffs for an estimate with a standard error"
            )
        return ValueError(f"{what} is not available for a {type(self).__name__}")


_TRUSTED = contextvars.ContextVar("ualign_trusted_preparation", default=False)


@contextlib.contextmanager
def trusting_preparation(trusted: bool = True):
    """While tracing inside this block, prepared leaves are known fresh (the library prepared
    them itself, from concrete leaves, just before): the per-call staleness check is skipped."""
    token = _TRUSTED.set(trusted)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def preparation_trusted() -> bool:
    """Whether the enclosing trace runs under :func:`trusting_preparation`."""
    return _TRUSTED.get()


def is_concrete_tree(tree) -> bool:
    """Whether every array leaf of ``tree`` is concrete (see ``_validation.is_concrete``)."""
    return all(is_concrete(x) for x in jax.tree.leaves(tree) if eqx.is_array(x))


class PayoffFunction(eqx.Module):
    """``π -> u_k(·, π)`` for one prompt: a pytree callable holding what the payoffs need, made
    by :meth:`Population.payoff_function`; pass it to jitted functions as an argument or close
    over it (nothing left in it for XLA to constant-fold)."""

    @abc.abstractmethod
    def __call__(self, policy: Float[Array, " n"]) -> Float[Array, " n"]:
        """``u_k(·, π)``."""

    # Hashed by identity, so that ``jax.jit(payoff_fn)`` works as for a plain function (jit
    # keys its cache on the callable; a module's field-wise hash fails on arrays).
    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other


class BoundPayoffs(PayoffFunction):
    """A population's one-prompt payoffs ``payoffs(population, π, k)`` with the population and
    ``k`` bound (for kinds with nothing to precompute per call)."""

    population: Population
    k: int | Int[Array, ""]
    payoffs: Callable = eqx.field(static=True)

    def __call__(self, policy):
        return self.payoffs(unfoldable(self.population), policy, self.k)


# --------------------------------------------------------------------------- shared helpers


def normalised_weights(weights, batch_shape, num_users, dtype, name="weights"):
    """``weights`` validated and normalised over users; uniform when ``None``."""
    if weights is None:
        return jnp.full((*batch_shape, num_users), 1.0 / num_users, dtype=dtype)
    w = as_float_array(weights, name)
    if w.shape != (*batch_shape, num_users):
        raise ValueError(
            f"{name} must have shape {(*batch_shape, num_users)} (one per user), got {w.shape}"
        )
    check_weights(w, name)
    return (w / jnp.sum(w, axis=-1, keepdims=True)).astype(dtype)


def check_names(names, num_responses):
    """``names`` as a tuple of ``num_responses`` strings (or ``None``), else ``ValueError``."""
    if names is None:
        return None
    if isinstance(names, str | bytes) or not hasattr(names, "__iter__"):
        raise ValueError(f"names must be a sequence of {num_responses} strings, got {names!r}")
    names = tuple(str(s) for s in names)
    if len(names) != num_responses:
        raise ValueError(f"names must have {num_responses} entries, got {len(names)}")
    return names


def check_user_chunk(user_chunk):
    """``user_chunk`` as a positive int or ``None``."""
    if user_chunk is None:
        return None
    return static_count(user_chunk, "user_chunk")


def slice_users(module, leaves: dict[str, int], start, size: int):
    """``module`` with ``size`` users from ``start`` kept; ``leaves`` maps field -> user axis."""
    sliced = [
        jax.lax.dynamic_slice_in_dim(getattr(module, name), start, size, axis)
        for name, axis in leaves.items()
    ]
    return eqx.tree_at(lambda p: [getattr(p, name) for name in leaves], module, sliced)


class UserTable(Population):
    """A finite population: ``m`` user types, each a row of a ``[..., m, n]`` table, weighted.

    Each user picks from a pool the response of highest (possibly random) utility, a random
    utility model, so the chance that a set of responses holds the pick is monotone and
    submodular in the set (docs/theory.md §2): ``robust_win_rate``'s branch and bound relies
    on it.

    Subclasses name their table field in ``table_field`` and implement
    :meth:`pick_probabilities`, :meth:`win_factors` and :meth:`Population.payoff_function`.
    """

    table_field: ClassVar[str]
    weights: Float[Array, "*batch m"]
    names: tuple[str, ...] | None = eqx.field(static=True)
    user_chunk: int | None = eqx.field(static=True)
    #: Whether user chunks are strided over the users (set by ``shard_users``: each device then
    #: reads its own users of every chunk) rather than contiguous.
    strided_users: bool = eqx.field(static=True)

    @property
    def table(self) -> Float[Array, "*batch m n"]:
        """The ``[..., m, n]`` table of the users' parameters."""
        return getattr(self, self.table_field)

    @property
    def dtype(self):
        """The floating dtype of this population's arrays."""
        return self.table.dtype

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.table.shape[:-2]

    @property
    def num_users(self) -> int:
        return self.table.shape[-2]

    @property
    def num_responses(self) -> int:
        return self.table.shape[-1]

    @property
    def user_weights(self) -> Float[Array, "*batch m"]:
        """``weights`` normalised to sum 1 (again, here: a pytree operation may have rescaled
        them). Computations use these, so ``jax.tree.map(lambda x: 2 * x, pop)`` is the
        population ``type(pop)(2 * table, 2 * weights)`` builds."""
        return self.weights / jnp.sum(self.weights, axis=-1, keepdims=True)

    def normalised(self):
        """The same population with :attr:`user_weights` as its weights."""
        return eqx.tree_at(lambda p: p.weights, self, self.user_weights)

    def with_user_chunk(self, user_chunk: int | None):
        """The same population, its payoffs computed ``user_chunk`` users at a time."""
        return unchecked_replace(self, user_chunk=check_user_chunk(user_chunk))

    @property
    def user_axes(self) -> dict[str, int]:
        return {self.table_field: -2, "weights": -1}

    def user_slice(self, start, size: int):
        """Users ``start .. start + size - 1`` of an unbatched population (``start`` may be traced;
        weights are not renormalised)."""
        arrays = {name: getattr(self, name) for name in self.user_axes}
        leaves = {
            name: array.ndim + self.user_axes[name]
            for name, array in arrays.items()
            if array is not None
        }
        return slice_users(self, leaves, start, size)

    @abc.abstractmethod
    def pick_probabilities(self, pool: Int[Array, " N"]) -> Float[Array, "m N"]:
        """Each user type's pick probability of each pooled position (unbatched population)."""

    @abc.abstractmethod
    def win_factors(self, num_players: int):
        """``(coef [R, n], base [R, n, n])`` with ``W[y_0, y_1..y_K] = Σ_r coef[r, y_0]
        Π_j base[r, y_0, y_j]`` (one prompt; ``K = num_players - 1``)."""

    def expected_picks(self, key, pools):
        picks = jax.vmap(self.pick_probabilities)(pools)[..., 0]  # [P, m]
        return dot(picks, self.user_weights.astype(picks.dtype))

    def pool_shares(self, sets, opponents):
        """Each user's pick probabilities of the pool ``sets[s] ⊕ opponents[r]``, the first
        ``k`` summed, averaged over users; pairs in batches of about ``2**22 / (m · N)``
        (ranking: ``sets[s]``'s fraction of the top tie group's positions; Plackett–Luce:
        ``W_S / (W_S + W_T)``)."""
        return pairwise_pool_shares(self, sets, opponents, self.num_users)

    def win_tensor_one(self, num_players: int):
        coef, base = self.win_factors(num_players)
        n, opponents = self.num_responses, num_players - 1
        half = opponents // 2

        def slice_for(y0):
            b = base[:, y0, :]
            left = khatri_rao_power(b, half) * coef[:, y0, None]
            right = khatri_rao_power(b, opponents - half)
            return user_contraction(left, right).reshape((n,) * opponents)

        return jax.lax.map(slice_for, jnp.arange(n))

    def count_table(self, counts, multisets, k: int):
        coef, base = self.win_factors(k + 1)
        safe_base = jnp.where(base > 0, base, 1.0)
        log_base = jnp.where(base > 0, jnp.log(safe_base), -jnp.inf)  # [Rf, y0, z]

        def column(c):
            log_prod = jnp.sum(jnp.where(c > 0, c.astype(log_base.dtype) * log_base, 0.0), -1)
            return user_sum(coef * jnp.exp(log_prod))

        return jax.lax.map(column, jnp.asarray(counts), batch_size=64).T


def pairwise_pool_shares(pop: Population, sets, opponents, num_users: int):
    """``[S, R]`` shares of ``sets[s]`` in ``sets[s] ⊕ opponents[r]``, from ``pick_probabilities``
    (one prompt; ``num_users`` rows of picks per pool, for the batch size)."""
    sets, opponents = (jnp.asarray(x).astype(jnp.int32) for x in (sets, opponents))
    k, num_opponents = sets.shape[-1], opponents.shape[0]
    weights = pop.user_weights if isinstance(pop, UserTable) else None

    def share(pair):
        pool = jnp.concatenate([sets[pair // num_opponents], opponents[pair % num_opponents]])
        own = jnp.sum(pop.pick_probabilities(pool)[:, :k], axis=-1)  # [users]
        return own[0] if weights is None else user_average(weights.astype(own.dtype), own)

    pool_size = k + opponents.shape[-1]
    batch = max(1, min(4096, 2**22 // (num_users * pool_size)))
    pairs = jnp.arange(sets.shape[0] * num_opponents)
    return jax.lax.map(share, pairs, batch_size=batch).reshape(sets.shape[0], num_opponents)


def rotated_pools(pool: Int[Array, " N"]) -> Int[Array, "N N"]:
    """Each position of ``pool`` moved to the front in turn (position ``j`` first in row ``j``)."""
    return pool[rotations(pool.shape[-1])]
