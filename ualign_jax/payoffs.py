"""Payoffs of the (k+1)-player alignment game: ``u_k(y, π)``, the win tensor, its count form.

``u_k(y, π) = WR(δ_y, π^{⊗k})`` is the payoff of naming ``y`` against ``k`` i.i.d. copies of
``π`` (docs/theory.md §3). Each population kind computes it for one prompt
(:meth:`~ualign_jax.population.Population.payoff_function`); this module validates arguments,
maps over prompt axes and mixtures, and builds the dense win tensor, its symmetric count form and
Monte Carlo estimates from the same interface:

* ranking users: the closed form ``(1/(k+1)) Σ_j x^j b^(k-j)`` (``ranking``: engines pairwise,
  scan, parallel);
* Plackett–Luce users: ``W_y ∫_0^∞ e^{-W_y t} M(t)^k dt`` by a trapezoid rule in ``log t``;
* dense games: contraction of the win tensor;
* anything with a choice rule: an unbiased Monte Carlo estimate with a standard error.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._combinatorics import all_multisets, log_multinomial, multiset_counts, num_multisets
from ._linalg import einsum, tensordot
from ._numerics import (  # noqa: F401  (re-exported: ua.payoffs.tie_share etc.)
    CHUNK_ENTRIES,
    HORNER_MAX_K,
    USER_BLOCK,
    USER_SLICE,
    chunked_user_sum,
    compensated_add,
    gauss_legendre_unit,
    share,
    tie_share,
    tie_share_horner,
    tree_sum,
    unfoldable_arrays,
    user_average,
    user_chunk_size,
)
from ._validation import as_float_array, check_count, check_simplex, float_dtype, static_count
from .dense import contract_opponents  # noqa: F401  (re-exported)
from .plackett_luce import PL_QUADRATURE_NODES  # noqa: F401  (re-exported)
from .policies import ProductMixture, as_mixture
from .population import PayoffFunction, Population, is_concrete_tree, trusting_preparation
from .ranking import (  # noqa: F401  (re-exported; RankingPopulation for the doctests)
    ENGINES,
    PAIRWISE_MAX_RESPONSES,
    PAIRWISE_MAX_USERS,
    RankingPopulation,
    pairwise_ranking_masses,
    ranking_engine,
)

__all__ = [
    "response_payoffs",
    "win_tensor",
    "CountForm",
    "count_form",
    "count_form_payoffs",
    "monte_carlo_payoffs",
    "payoff_function",
    "prepare",
]


# --------------------------------------------------------------------------- batching


def prompt_batch_shape(named_shapes) -> tuple[int, ...]:
    """The prompt axes shared by ``(name, batch_shape)`` pairs: each equals the longest or is
    empty; otherwise a ``ValueError`` naming the argument that differs."""
    batch = max((shape for _, shape in named_shapes), key=len)
    for name, shape in named_shapes:
        if shape and shape != batch:
            raise ValueError(
                f"{name} has prompt (batch) axes {shape}, but another argument has {batch}; "
                "batch axes must match or be absent"
            )
    return batch


def map_prompts(fn, pop, *mixtures, **options):
    """``fn(pop, *mixtures, **options)``, written for one prompt, over shared prompt axes, jitted.

    A population or mixture without batch axes is shared by every prompt (``in_axes=None``).
    ``fn`` should be a module-level function (the compiled program is cached on it); Python
    scalars in ``options`` are static, arrays are traced.
    """
    shapes = [pop.batch_shape] + [mx.batch_shape for mx in mixtures]
    names = ["population", *["policy"] * len(mixtures)]
    batch = prompt_batch_shape(list(zip(names, shapes, strict=True)))
    in_axes = tuple(0 if s else None for s in shapes)
    return jit_over_prompts(fn, in_axes, len(batch), pop, mixtures, options)


def jit_over_prompts(fn, in_axes, depth, pop, mixtures, options):
    """``fn(pop, *mixtures, **options)`` vmapped ``depth`` times, jitted.

    A population whose leaves are concrete here (an eager call, or one closed over by the
    caller's jitted function) is prepared now on the host (:func:`prepare`), or, if prepared
    already, checked now (a stale one is refused with a ``ValueError``); inside the program its
    derived leaves are then trusted. A traced prepared population is checked in the program.
    """
    fresh = is_concrete_tree(pop)
    if fresh:
        pop = pop.check_prepared() if pop.prepared else pop.prepare()
    return _jit_over_prompts(fn, in_axes, depth, pop, mixtures, options, fresh)


@eqx.filter_jit
def _jit_over_prompts(fn, in_axes, depth, pop, mixtures, options, fresh: bool):
    if fresh:  # concrete in the caller's program: keep XLA from constant-folding work on it
        pop = unfoldable_arrays(pop)
    f = lambda p, *mx: fn(p, *mx, **options)
    for _ in range(depth):
        f = jax.vmap(f, in_axes=in_axes)
    with trusting_preparation(fresh):
        return f(pop, *mixtures)


def check_population(pop, name: str = "pop", exact: bool = True):
    """Raise unless ``pop`` is a :class:`~ualign_jax.Population` (an exact one when ``exact``)."""
    if not isinstance(pop, Population):
        raise ValueError(
            f"{name} must be one of the population kinds (RankingPopulation, "
            "PlackettLucePopulation, DenseGame, SampledPopulation or another ua.Population), "
            f"got {type(pop).__name__}"
        )
    if exact and not pop.exact:
        raise ValueError(
            f"{name} is a {type(pop).__name__}: exact values are not available; use "
            "monte_carlo_payoffs for an estimate with a standard error"
        )
    return pop


def mixture_average(fn, mixture: ProductMixture):
    """``Σ_t α_t fn(π_t)``: a quantity linear in the law of the k-tuple, over a mixture."""
    if mixture.num_components == 1:  # a plain policy: skip the vmap (it costs layout changes)
        return fn(mixture.policies[0])
    values = jax.vmap(fn)(mixture.policies)
    return tensordot(mixture.weights.astype(values.dtype), values)


# --------------------------------------------------------------------------- public payoffs


def prepare(pop):
    """``pop`` with the work that depends on it alone done once and stored as leaves.

    Like ``lu_factor`` before many ``lu_solve``: a ranking population gets each user's sort
    order (``pop.order``), so payoffs, gradients and metrics on it skip the sort; other kinds
    have nothing worth storing and come back unchanged. The result is a population like any
    other (a pytree: pass it to jitted functions as an argument). Each call checks in O(m·n)
    that the stored order still sorts the utilities, and raises if a leaf was edited since:
    prepare the edited population again. ``Population.replace`` returns an unprepared copy.

    Example:
        >>> pop = prepare(RankingPopulation([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0]]))
        >>> pop.order.tolist()
        [[2, 1, 0], [0, 2, 1]]
        >>> [round(float(v), 4) for v in response_payoffs(pop, jnp.full(3, 1 / 3), 1)]
        [0.5, 0.6667, 0.3333]
    """
    check_population(pop, exact=False)
    return pop.prepare()


def payoff_function(pop, k) -> PayoffFunction:
    """``π -> u_k(·, π)`` for one prompt, with what depends only on ``pop`` computed now.

    Build it once outside a loop over policies (a ``lax.scan`` of learning steps), so that the
    sort a ranking population needs is done once per call, not at every step. The result is
    an ``equinox.Module`` (a pytree callable): pass it to jitted functions, ``jax.jit`` it, or
    close over it.

    Example:
        >>> pop = RankingPopulation([[2.0, 1.0, 0.0]])
        >>> u = payoff_function(pop, 2)
        >>> [round(float(v), 4) for v in u(jnp.array([0.0, 1.0, 0.0]))]
        [1.0, 0.3333, 0.0]
    """
    return pop.payoff_function(k)


def single_policy_payoffs(pop, policy, k):
    """``u_k(·, π)`` for one prompt and one single-output policy ``π`` (no validation)."""
    return pop.payoff_function(k)(policy)


def response_payoffs(pop, policy, k) -> Float[Array, "*batch n"]:
    """Payoff ``u_k(y, π) = WR(δ_y, π^{⊗k})`` of naming each response against k draws of π.

    Args:
        pop: a ranking, Plackett–Luce or dense population ``[..., m, n]``.
        policy: ``[..., n]`` on the simplex, or a ``ProductMixture`` (then the payoff against the
            mixture, ``Σ_t α_t u_k(y, π_t)``).
        k: number of opponent draws, an int >= 1 (may be traced for ranking / Plackett–Luce).

    Returns:
        ``[..., n]``; ``<π, u_k(·, π)> = 1/(k+1)`` for a single-output ``π``.

    Example:
        >>> pop = RankingPopulation([[2.0, 1.0, 0.0]])
        >>> u = response_payoffs(pop, jnp.array([0.0, 1.0, 0.0]), k=2)  # y=1 ties three ways
        >>> [round(float(v), 4) for v in u]
        [1.0, 0.3333, 0.0]
    """
    check_population(pop)
    k = check_count(k, "k")
    if pop.num_players is not None:  # a fixed-size game: k selects its shape
        k = static_count(k, "k")
        pop.check_players(k + 1)
    mixture = as_mixture(policy, pop.num_responses)
    return map_prompts(mixture_payoffs, pop, mixture, k=k)


def mixture_payoffs(pop, mixture: ProductMixture, k):
    """``u_k(·, A)`` for one prompt and a mixture ``A`` (no validation)."""
    return mixture_average(lambda pi: single_policy_payoffs(pop, pi, k), mixture)


# --------------------------------------------------------------------------- win tensor


#: Most axes :func:`win_tensor` builds (past 28 even n = 2 exceeds the entry limit).
MAX_TENSOR_PLAYERS = 28


def win_tensor(pop, num_players: int) -> Float[Array, "*batch ..."]:
    """The dense win tensor ``W[y_0..y_{N-1}] = E_user[pick prob of position 0]``, ``[n]*N``.

    Exact for ranking users (and for dense games); Plackett–Luce entries are accurate to ~1e-9.
    Built from a sum-of-products form with vmap and jit; ``n**num_players`` entries, so keep
    ``n`` and ``num_players`` small.

    Example:
        >>> win_tensor(RankingPopulation([[1.0, 0.0]]), 2).tolist()
        [[0.5, 1.0], [0.0, 0.5]]
    """
    check_population(pop)
    num_players = static_count(num_players, "num_players")
    n = pop.num_responses
    if num_players > MAX_TENSOR_PLAYERS or n**num_players > 2**28:
        raise ValueError(
            f"win_tensor would have n**num_players = {n}**{num_players} entries (limit 2**28, "
            f"and at most {MAX_TENSOR_PLAYERS} players); lower num_players, or use "
            "response_payoffs or count_form instead"
        )
    pop.check_players(num_players, "num_players")
    return map_prompts(_win_tensor_one, pop, num_players=num_players)


def _win_tensor_one(pop, num_players: int):
    return pop.win_tensor_one(num_players)


# --------------------------------------------------------------------------- symmetric count form


class CountForm(NamedTuple):
    """The win tensor folded over its symmetric opponent axes.

    ``table[y, r]`` is the payoff of ``y`` against the opponent multiset with counts
    ``counts[r]``; ``u_k(y, π) = Σ_r exp(log_multinomial[r]) Π_z π_z^{counts[r,z]} table[y, r]``.
    """

    counts: Int[Array, "R n"]
    log_multinomial: Float[Array, " R"]
    table: Float[Array, "*batch n R"]


def count_form(pop, k) -> CountForm:
    """The symmetric count form of the ``(k+1)``-player game: ``C(n+k-1, k)`` rows per response.

    Example:
        >>> form = count_form(RankingPopulation([[1.0, 0.0]]), 2)
        >>> form.counts.tolist()
        [[2, 0], [1, 1], [0, 2]]
        >>> [[round(float(v), 4) for v in row] for row in form.table]
        [[0.3333, 0.5, 1.0], [0.0, 0.0, 0.3333]]
    """
    check_population(pop)
    k = static_count(k, "k")
    n = pop.num_responses
    if num_multisets(n, k) > 10**6:
        raise ValueError(f"count_form: C(n+k-1, k) = {num_multisets(n, k):,} rows exceed 10**6")
    pop.check_players(k + 1)
    multisets = all_multisets(n, k)
    counts = multiset_counts(multisets, n)
    table = map_prompts(_count_table_one, pop, counts=counts, multisets=multisets, k=k)
    return CountForm(jnp.asarray(counts), jnp.asarray(log_multinomial(counts)), table)


def _count_table_one(pop, counts, multisets, k: int):
    return pop.count_table(counts, multisets, k)


def count_form_payoffs(form: CountForm, policy) -> Float[Array, "*batch n"]:
    """``u_k(·, π)`` from a :class:`CountForm` (multinomial law of the opponents' counts)."""
    n = form.counts.shape[-1]
    p = as_float_array(policy, "policy")
    if p.shape[-1] != n:
        raise ValueError(f"policy has {p.shape[-1]} responses, the count form has {n}")
    p = check_simplex(p, "policy")
    log_p = jnp.log(jnp.where(p > 0, p, 1.0))
    zero_hit = jnp.any((form.counts > 0) & (p[..., None, :] <= 0), axis=-1)
    log_prob = form.log_multinomial.astype(p.dtype) + einsum(
        "rz,...z->...r", form.counts.astype(p.dtype), log_p
    )
    prob = jnp.where(zero_hit, 0.0, jnp.exp(log_prob))
    return einsum("...yr,...r->...y", form.table.astype(p.dtype), prob)


# --------------------------------------------------------------------------- Monte Carlo


def monte_carlo_payoffs(key, pop, policy, k, num_samples: int = 4096):
    """Unbiased Monte Carlo estimate of ``u_k(·, π)`` and its standard error.

    Each sample draws a mixture component, ``k`` i.i.d. opponents and (for a
    ``SampledPopulation``) one user; every response ``y`` is scored on the same draws. For
    finite populations the expectation over users is taken exactly. With prompt axes, each prompt
    gets its own key (``key`` split over the prompts).

    Args:
        key: a JAX PRNG key (first, as everywhere in this library).
        pop: any population (``SampledPopulation`` included).
        policy: ``[..., n]`` or a ``ProductMixture``.
        k: number of opponent draws (static).
        num_samples: draws per prompt, at least 2.

    Returns:
        ``(estimate [..., n], standard_error [..., n])``.

    Example:
        >>> pop = RankingPopulation([[1.0, 0.0]])
        >>> mean, err = monte_carlo_payoffs(jax.random.key(0), pop, jnp.array([0.5, 0.5]), 1)
        >>> mean.shape, bool(jnp.all(jnp.abs(mean - jnp.array([0.75, 0.25])) < 5 * err))
        ((2,), True)
    """
    if isinstance(key, Population):
        raise ValueError(
            "monte_carlo_payoffs takes the PRNG key first: monte_carlo_payoffs(key, pop, policy, k)"
        )
    check_population(pop, exact=False)
    k = static_count(k, "k")
    pop.check_players(k + 1)
    num_samples = static_count(num_samples, "num_samples", 2)
    mixture = as_mixture(policy, pop.num_responses)
    shapes = (pop.batch_shape, mixture.batch_shape)
    batch = prompt_batch_shape(list(zip(("population", "policy"), shapes, strict=True)))
    keys = jax.random.split(key, batch) if batch else key
    in_axes = (*(0 if s else None for s in shapes), 0)
    options = {"k": k, "num_samples": num_samples}
    return jit_over_prompts(_monte_carlo_one, in_axes, len(batch), pop, (mixture, keys), options)


def _monte_carlo_one(pop, mixture: ProductMixture, key, *, k: int, num_samples: int):
    n = pop.num_responses
    dtype = float_dtype(mixture.policies)

    def one_sample(sample_key):
        k_comp, k_draw, k_user = jax.random.split(sample_key, 3)
        t = jax.random.categorical(k_comp, jnp.log(mixture.weights))
        draws = jax.random.categorical(k_draw, jnp.log(mixture.policies[t]), shape=(k,))
        pools = jnp.concatenate([jnp.arange(n)[:, None], jnp.broadcast_to(draws, (n, k))], 1)
        return pop.expected_picks(k_user, pools).astype(dtype)

    samples = jax.vmap(one_sample)(jax.random.split(key, num_samples))
    mean = samples.mean(axis=0)
    stderr = samples.std(axis=0, ddof=1) / math.sqrt(num_samples)
    return mean, stderr
