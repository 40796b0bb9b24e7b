"""Exact robust win rates against ℓ-output opponents by branch and bound (docs/theory.md §4).

``R_{k,ℓ}(A) = 1 − max_T f(T)`` over deterministic ℓ-multisets ``T`` of responses, where
``f(T) = WR(T, A)`` is the share of the users the multiset wins against ``A``'s ``k`` outputs.
For ranking and Plackett–Luce users ``f`` is monotone (``f(∅) = 0``) and DR-submodular on
multisets: ``Δ(y | S) = f(S + y) − f(S)`` does not grow when ``S`` grows, also when the added
element is another copy of ``y`` (a tied copy gains share, by ever smaller amounts). Per user
and ``k`` draws ``X`` of ours tied with the multiset's top group of ``c`` members, the share is
``E[c/(c + X)]`` on the event that no draw is above that group, and ``c/(c+X)`` is increasing
and concave in ``c``; a Plackett–Luce share ``S/(S + W_ours)`` is increasing and concave in the
multiset's total weight ``S``, which is additive. ``tests/test_branch_bound.py`` checks both
properties against brute force (ties, mixtures, repeated responses).

The search (host-side control, batched evaluations of ``f``):

* responses are relabelled by their singleton value ``f({y})``, best first; a node is a sorted
  prefix ``P`` of positions, its children add a position ``q >= max P``;
* every node carries upper bounds ``g[q] >= Δ(q | P)``: the exact gains of its parent's
  children (DR-submodularity: gains only shrink down the tree), for ``ℓ >= 3`` also
  ``min_{x ∈ P} f({x, q}) − f({x})`` (all pairs are tabulated once, ``n <= MAX_PAIR_TABLE``),
  and for another copy of ``q`` also ``f({q, q}) − f({q})``;
* a node's bound is ``f(P) +`` the sum of the ``r`` largest such gains among the positions it
  may still add (``r = ℓ − |P|``; repeated copies use the copy gain), which caps every
  completion by submodularity; nodes whose bound is at most the incumbent (plus ``tol``) are
  dropped, children are evaluated only where their own bound passes that test;
* the incumbent starts at the greedy opponent's value; nodes are expanded depth first, the
  most promising first, in chunks whose children are evaluated together in padded batches of
  a few fixed sizes (so compiled programs are reused).

Ranking users are evaluated densely: a node's per-user summary (top tie group on offer, its
size, a member) and a table of shares per (group size, user, response) give all ``n`` children
``f(P + z)`` in ``O(m·n)`` elementwise work, accumulated one user at a time over a cache-sized
block of nodes (``jnp.where`` over ``[m, nodes, n]`` followed by a reduction ran ~35x slower
on this CPU). Plackett–Luce users go through ``Population.greedy_parts``, for the wanted
children only.
"""

from __future__ import annotations

import functools
import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._linalg import dot, einsum
from ._numerics import USER_BLOCK, power_from_top, unit_nodes, user_average
from ._validation import check_real, is_concrete, static_count
from .payoffs import check_population, map_prompts, mixture_average, prompt_batch_shape
from .policies import ProductMixture, as_mixture
from .population import UserTable
from .ranking import RankingPopulation

__all__ = ["certified_robust_win_rate", "CertifiedRobust", "searchable"]

#: Most ``prefixes × responses`` children one dense block accumulates (a cache-sized block).
MAX_BLOCK_ENTRIES = 2**17
#: Largest ``n`` for which the pairwise gains ``f({x, p}) − f({x})`` are tabulated (ℓ >= 3).
MAX_PAIR_TABLE = 4096
#: Most ``nodes × responses`` gain entries held by one expanded chunk of nodes.
CHUNK_ENTRIES = 2**20


class CertifiedRobust(NamedTuple):
    """``lower <= R_{k,ℓ}(A) <= upper``; ``opponent`` (ℓ response indices, sorted) wins
    ``1 − upper``; ``exact`` when ``lower == upper`` (the opponent is a worst case);
    ``nodes``: win rates of multisets computed (ranking users: all ``n`` children of each
    expanded node, ordered, so it may exceed ``C(n+ℓ−1, ℓ)``)."""

    lower: Float[Array, "*batch"]
    upper: Float[Array, "*batch"]
    opponent: Int[Array, "*batch ell"]
    exact: Bool[Array, "*batch"]
    nodes: Int[Array, "*batch"]


def certified_robust_win_rate(pop, policy, k, ell, tol=0.0, max_seconds=None) -> CertifiedRobust:
    """Certified ``[lower, upper]`` of ``R_{k,ℓ}(A) = min_T WR(A, T)``, exact with ``tol = 0``.

    ``A = policy^{⊗k}`` (or a ``ProductMixture``); ``T`` ranges over deterministic ℓ-multisets
    of responses (the worst case among ℓ-output opponents, docs/theory.md §4). Branch and bound
    over multisets with bounds from monotone DR-submodularity of ``T ↦ WR(T, A)`` (module
    docstring), and for ranking users dense ``O(m·n)`` evaluation of all children of a node, so
    it scales far past :func:`robust_win_rate`'s enumeration of all ``C(n+ℓ−1, ℓ)`` multisets
    (ℓ = 2 at n = 2000 and ℓ = 3 at n = 300 with 300 users: about a second on a 2-core CPU,
    benchmarks/branch_bound.py). Where no bound prunes it still evaluates every multiset.

    The search stops once ``upper − lower <= tol`` is certain, or at the first check after
    ``max_seconds`` (then ``lower`` is the best bound still open). ``upper`` is always the value
    of the returned ``opponent``; with ``tol = 0`` and no time limit reached,
    ``lower == upper`` (certified up to the rounding of the evaluations, a few units of the
    dtype's epsilon). Ranking and Plackett–Luce users; runs on the host (not jit-able), one
    prompt after another for batched prompts.

    Args:
        pop: ``RankingPopulation`` or ``PlackettLucePopulation``, optional prompt axes.
        policy: ``[..., n]`` policy or ``ProductMixture``.
        k: our outputs (static int >= 1).
        ell: the opponent's outputs (static int >= 1).
        tol: stop once the certified gap is at most this (``>= 0``).
        max_seconds: wall-clock budget per prompt, or ``None``.

    Returns:
        :class:`CertifiedRobust` ``(lower, upper, opponent, exact, nodes)``.

    Example:
        >>> pop = RankingPopulation([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
        >>> policy = jnp.array([0.5, 0.0, 0.5])
        >>> out = certified_robust_win_rate(pop, policy, 2, 2)
        >>> round(float(out.lower), 4), round(float(out.upper), 4), out.opponent.tolist()
        (0.4167, 0.4167, [0, 2])
        >>> from ualign_jax import robust_win_rate  # scores all 6 multisets
        >>> round(float(robust_win_rate(pop, policy, 2, 2)), 4)
        0.4167
    """
    check_population(pop)
    if not isinstance(pop, UserTable):
        raise ValueError(
            "certified_robust_win_rate: pop must be a table of users choosing by random "
            "utilities (a UserTable: RankingPopulation, PlackettLucePopulation), since its "
            f"bounds rely on their submodularity; got {type(pop).__name__}"
        )
    k = static_count(k, "k")
    ell = static_count(ell, "ell")
    tol = check_real(tol, "tol", 0.0)
    max_seconds = check_real(max_seconds, "max_seconds", 0.0, low_open=True, none_ok=True)
    if not (_concrete_tree(pop) and _concrete_tree(policy)):
        raise ValueError(
            "certified_robust_win_rate searches on the host: call it outside jit/vmap with "
            "concrete pop and policy"
        )
    mixture = as_mixture(policy, pop.num_responses)
    batch = prompt_batch_shape([("pop", pop.batch_shape), ("policy", mixture.batch_shape)])
    evaluators = _evaluators(pop, mixture, k, ell, batch)
    results = [_search(evaluator, ell, tol, max_seconds) for evaluator in evaluators]
    column = lambda i: np.array([r[i] for r in results])
    return CertifiedRobust(
        lower=jnp.asarray(column(0).reshape(batch), mixture.policies.dtype),
        upper=jnp.asarray(column(1).reshape(batch), mixture.policies.dtype),
        opponent=jnp.asarray(column(2).reshape(batch + (ell,)), jnp.int32),
        exact=jnp.asarray(column(3).reshape(batch)),
        nodes=jnp.asarray(column(4).reshape(batch), jnp.int32),
    )


def searchable(pop, policy) -> bool:
    """Whether :func:`certified_robust_win_rate` can search ``pop`` against ``policy``: a
    ranking or Plackett–Luce population (a ``UserTable``) and concrete values (it runs on the
    host)."""
    return isinstance(pop, UserTable) and _concrete_tree(pop) and _concrete_tree(policy)


def _concrete_tree(tree) -> bool:
    return all(is_concrete(leaf) for leaf in jax.tree.leaves(tree))


# --------------------------------------------------------------------------- evaluating f


def _evaluators(pop, mixture: ProductMixture, k: int, ell: int, batch: tuple[int, ...]):
    """One child evaluator (:class:`_RankingChildren` or :class:`_GenericChildren`) per
    prompt."""
    count = math.prod(batch)
    if isinstance(pop, RankingPopulation):  # deterministic choices: the dense fast path
        table, group, weights = map_prompts(_ranking_tables, pop, mixture, k=k, ell=ell)
        flat = lambda x, tail: jnp.broadcast_to(x, batch + x.shape[x.ndim - tail :]).reshape(
            count, *x.shape[x.ndim - tail :]
        )
        table, group, weights = flat(table, 3), flat(group, 2), flat(weights, 1)
        return [_RankingChildren(table[i], group[i], weights[i]) for i in range(count)]
    return [
        _GenericChildren(_prompt(pop, i, batch), _prompt(mixture, i, batch), k, ell)
        for i in range(count)
    ]


def _prompt(tree, index: int, batch: tuple[int, ...]):
    """Prompt ``index`` (flat) of a pytree whose array leaves carry ``batch`` leading axes, or
    the tree itself when it has none."""
    if not batch or not tree.batch_shape:
        return tree
    where = np.unravel_index(index, batch)
    return jax.tree.map(lambda leaf: leaf[where], tree)


def _padded(rows: np.ndarray, sizes) -> tuple[np.ndarray, int]:
    """``rows`` padded (repeating its first row) to the smallest of ``sizes`` that holds it."""
    size = next(s for s in sizes if s >= len(rows))
    return np.concatenate([rows, np.repeat(rows[:1], size - len(rows), 0)]), len(rows)


class _RankingChildren:
    """``f(P + z)`` for every response ``z`` and a batch of prefixes ``P``, dense (ranking
    users): per user the prefix's top tie group ``t``, its count ``c`` and a member ``b``;
    ``z`` above ``t`` gives ``table[0, i, z]``, tied with it ``table[c, i, b]``, below it
    ``table[c−1, i, b]``. ``O(m·n)`` per prefix, elementwise, in blocks of prefixes padded to a
    few fixed counts."""

    def __init__(self, table, group, weights):
        self.ell, self.num_users, self.num_responses = table.shape
        sentinel = jnp.full((self.num_users, 1), -1, group.dtype)  # pads short prefixes
        self.args = (table, jnp.concatenate([group, sentinel], axis=1), weights)
        self.block = int(np.clip(2 ** int(np.log2(MAX_BLOCK_ENTRIES / self.num_responses)), 1, 256))
        self.sizes = [self.block * c for c in (1, 2, 4, 8)]
        self.count = 0

    def singles(self) -> np.ndarray:
        """``f({y})`` for every ``y``."""
        self.count += self.num_responses
        table, _, weights = self.args
        return np.asarray(user_average(weights, table[0]), np.float64)

    def doubles(self) -> np.ndarray:
        """``f({y, y})`` for every ``y`` (two members in ``y``'s group)."""
        self.count += self.num_responses
        table, _, weights = self.args
        return np.asarray(user_average(weights, table[1]), np.float64)

    def children(self, prefixes: np.ndarray, wanted=None) -> np.ndarray:
        rows, depth = prefixes.shape
        self.count += rows * self.num_responses
        full = np.full((rows, self.ell), self.num_responses, np.int32)
        full[:, :depth] = prefixes
        out, top = [], self.sizes[-1]
        for start in range(0, rows, top):
            piece, used = _padded(full[start : start + top], self.sizes)
            values = _dense_children(*self.args, jnp.asarray(piece), block=self.block)
            out.append(np.asarray(values, np.float64)[:used])
        return np.concatenate(out) if out else np.zeros((0, self.num_responses))


@functools.partial(jax.jit, static_argnames="block")
def _dense_children(table, group, weights, prefixes, block: int):
    ell, m, n = table.shape
    users = jnp.arange(m)[:, None]
    starts = np.arange(0, m, USER_BLOCK)

    def one_block(rows):  # [block, ell] responses, sentinel-padded
        g = group[:, rows]  # [m, block, ell]
        top = jnp.max(g, axis=-1)
        count = jnp.sum(g == top[..., None], axis=-1)
        best = jnp.take_along_axis(
            jnp.broadcast_to(rows, g.shape), jnp.argmax(g, axis=-1)[..., None], axis=-1
        )[..., 0]
        joined = table[jnp.minimum(count, ell - 1), users, best]  # z joins the top group
        kept = table[count - 1, users, best]  # z is below the top group

        def add_user(i, acc):  # one user at a time: [block, n] stays in cache
            above = group[i, :n][None, :] > top[i][:, None]
            tied = group[i, :n][None, :] == top[i][:, None]
            share = jnp.where(above, table[0, i][None, :], kept[i][:, None])
            return acc + weights[i] * jnp.where(tied, joined[i][:, None], share)

        def add_users(total, start):  # two-level sum (blocks of users) as in user_average
            stop = jnp.minimum(start + USER_BLOCK, m)
            zero = jnp.zeros((block, n), table.dtype)
            return total + jax.lax.fori_loop(start, stop, add_user, zero), None

        total = jnp.zeros((block, n), table.dtype)
        return jax.lax.scan(add_users, total, jnp.asarray(starts))[0]

    return jax.lax.map(one_block, prefixes.reshape(-1, block, ell)).reshape(-1, n)


class _GenericChildren:
    """``f(P + z)`` for the wanted ``(P, z)`` only, from the population's greedy summaries
    (``Population.greedy_parts``; Plackett–Luce users), in padded batches."""

    def __init__(self, pop, mixture: ProductMixture, k: int, ell: int):
        self.pop, self.mixture, self.k, self.ell = pop, mixture, k, ell
        self.num_responses = pop.num_responses
        self.sizes = (256, 2048)
        self.count = 0

    def sets(self, sets: np.ndarray) -> np.ndarray:
        rows, width = sets.shape
        self.count += rows
        full = np.full((rows, self.ell), self.num_responses, np.int32)
        full[:, :width] = sets
        out, top = [], self.sizes[-1]
        for start in range(0, rows, top):
            piece, used = _padded(full[start : start + top], self.sizes)
            values = map_prompts(
                _generic_values,
                self.pop,
                self.mixture,
                k=self.k,
                ell=self.ell,
                sets=jnp.asarray(piece),
            )
            out.append(np.asarray(values, np.float64)[:used])
        return np.concatenate(out) if out else np.zeros(0)

    def singles(self) -> np.ndarray:
        return self.sets(np.arange(self.num_responses)[:, None])

    def doubles(self) -> np.ndarray:
        return self.sets(np.repeat(np.arange(self.num_responses)[:, None], 2, axis=1))

    def children(self, prefixes: np.ndarray, wanted=None) -> np.ndarray:
        n = self.num_responses
        if wanted is None:
            wanted = np.ones((len(prefixes), n), bool)
        rows, cols = np.nonzero(wanted)
        out = np.full(wanted.shape, np.nan)
        out[rows, cols] = self.sets(np.column_stack([prefixes[rows], cols]))
        return out


def _ranking_tables(pop, mixture: ProductMixture, k: int, ell: int):
    """For one prompt of ranking users: ``table[c−1, i, y]``, the share user ``i`` gives a
    multiset whose best tie group on offer is ``y``'s, with ``c`` members in it, against
    ``A``'s ``k`` draws: ``c ∫_0^1 t^(c−1) (b + p t)^k dt`` (``b``, ``p``: the draws' masses
    below and tied with ``y``), averaged over the mixture; each user's tie groups; weights."""
    tables = pop.tables()
    dtype = mixture.policies.dtype
    s, w_s = unit_nodes(k + ell - 1, dtype)
    counts = jnp.arange(1, ell + 1, dtype=dtype)
    own = jnp.exp((counts[:, None] - 1) * jnp.log1p(-s)[None, :])  # t^(c−1), [ell, Q]

    def shares(policy):
        below, tied = tables.response_masses(policy)
        draws = power_from_top(below + tied, tied, s[:, None, None], k)  # [Q, m, n]
        return counts[:, None, None] * einsum("q,cq,qmn->cmn", w_s, own, draws)

    table = mixture_average(shares, mixture)
    return table, tables.tie_groups(), pop.user_weights.astype(dtype)


def _generic_values(pop, mixture: ProductMixture, k: int, ell: int, sets):
    """``f`` of each row of ``sets`` (entries ``n`` are padding) from the population's greedy
    summaries (``Population.greedy_parts``), for one prompt."""
    n = pop.num_responses
    init, add, value = pop.greedy_parts(mixture.policies, k, ell)
    alphas = mixture.weights.astype(mixture.policies.dtype)

    def one(row):
        def step(state, y):
            grown = add(state, jnp.minimum(y, n - 1))
            return jax.tree.map(lambda new, old: jnp.where(y < n, new, old), grown, state), None

        state, _ = jax.lax.scan(step, init, row)
        return dot(alphas, value(state))

    return jax.lax.map(one, sets, batch_size=64)


# --------------------------------------------------------------------------- the search


def _top_sums(first: np.ndarray, again: np.ndarray, r: int) -> np.ndarray:
    """``out[i, q]``: the sum of the ``r`` largest of ``{again[i, q]} × r`` together with
    ``{first[i, p]} ∪ {again[i, p]} × (r − 1)`` for every ``p > q``: a cap on what ``r`` more
    responses at positions ``>= q`` add, when a first copy of ``p`` adds at most ``first[p]``
    and a further copy (or any copy of ``q``, already present) at most ``again[p] <=
    first[p]``."""
    rows, n = first.shape
    if r == 0:
        return np.zeros_like(first)
    if r == 1:
        suffix = np.maximum.accumulate(first[:, ::-1], axis=1)[:, ::-1]
        after = np.concatenate([suffix[:, 1:], np.full((rows, 1), -np.inf)], axis=1)
        return np.maximum(after, again)
    lists = np.concatenate([first[..., None], np.repeat(again[..., None], r - 1, -1)], -1)
    step = 1
    while step < n:  # lists[:, q] <- top r of lists[:, q : q + 2·step]
        shifted = np.full_like(lists, -np.inf)
        shifted[:, :-step] = lists[:, step:]
        lists = -np.sort(-np.concatenate([lists, shifted], -1), axis=-1)[..., :r]
        step *= 2
    after = np.concatenate([lists[:, 1:], np.full((rows, 1, r), -np.inf)], axis=1)
    merged = np.concatenate([np.repeat(again[..., None], r, -1), after], -1)
    return np.sum(-np.sort(-merged, axis=-1)[..., :r], axis=-1)


class _Nodes(NamedTuple):
    """Open nodes of one depth: prefixes of positions, values ``f(P)``, bounds, and the gain
    caps they share with their siblings (``gains[family[i]]`` bounds ``Δ(· | P_i)``)."""

    prefix: np.ndarray  # [N, d] positions, ascending
    value: np.ndarray  # [N]
    bound: np.ndarray  # [N]
    gains: np.ndarray  # [F, n]
    family: np.ndarray  # [N]

    def take(self, rows):
        return self._replace(
            prefix=self.prefix[rows],
            value=self.value[rows],
            bound=self.bound[rows],
            family=self.family[rows],
        )


class _Tree:
    """The search's fixed data for one prompt, in positions (responses sorted by ``f({y})``,
    best first): the child evaluator, the singleton values, the gain of a second copy
    ``f({q, q}) − f({q})`` and, for ``ℓ >= 3``, the pairwise gains ``f({x, p}) − f({x})``."""

    def __init__(self, evaluator, ell: int):
        self.evaluator, self.ell = evaluator, ell
        singles = evaluator.singles()
        self.order = np.argsort(-singles, kind="stable")  # position -> response
        self.n = len(singles)
        self.f1 = singles[self.order]
        self.pair_gain = None
        if ell >= 2:
            self.copy_gain = evaluator.doubles()[self.order] - self.f1
        if ell >= 3 and self.n <= MAX_PAIR_TABLE:
            self.pair_gain = self.children(np.arange(self.n)[:, None]) - self.f1[:, None]

    def children(self, prefixes: np.ndarray, wanted=None) -> np.ndarray:
        """``f(P + q)`` for prefixes and children ``q`` in positions (``[N, n]``)."""
        asked = None
        if wanted is not None:
            asked = np.zeros_like(wanted)
            asked[:, self.order] = wanted
        values = self.evaluator.children(self.order[prefixes], asked)
        return values[:, self.order]


def _search(evaluator, ell: int, tol: float, max_seconds):
    """``(lower, upper, opponent, exact, evaluated)`` of ``R = 1 − max f`` for one prompt."""
    deadline = None if max_seconds is None else time.perf_counter() + max_seconds
    tree = _Tree(evaluator, ell)
    n, f1 = tree.n, tree.f1
    if ell == 1:
        return _result(f1[0], f1[0], tree.order[:1], True, evaluator.count)
    best_value, best = _greedy(tree, ell)
    dropped = -np.inf  # the largest bound dropped (only those above the incumbent matter)
    positions = np.arange(n)
    root_again = np.minimum(f1, tree.copy_gain)[None]
    bounds = f1 + _top_sums(f1[None], root_again, ell - 1)[0]
    stack = [_Nodes(positions[:, None], f1, bounds, f1[None], np.zeros(n, np.int64))]
    finished = True
    while stack:
        nodes = stack.pop()
        keep = nodes.bound > best_value + tol
        dropped = max(dropped, float(np.max(nodes.bound[~keep], initial=-np.inf)))
        nodes = nodes.take(np.flatnonzero(keep)[np.argsort(-nodes.bound[keep], kind="stable")])
        if len(nodes.value) == 0:
            continue
        if deadline is not None and time.perf_counter() > deadline:
            stack.append(nodes)
            finished = False
            break
        chunk = max(1, CHUNK_ENTRIES // n)
        if len(nodes.value) > chunk:
            stack.append(nodes.take(np.arange(chunk, len(nodes.value))))
            nodes = nodes.take(np.arange(chunk))
        children, leaf_value, leaf, cut = _expand(nodes, tree, best_value + tol)
        dropped = max(dropped, cut)
        if leaf_value > best_value:
            best_value, best = leaf_value, leaf
        if children is not None:
            stack.append(children)
    for nodes in stack:
        dropped = max(dropped, float(np.max(nodes.bound, initial=-np.inf)))
    upper_f = max(best_value, dropped)
    opponent = np.sort(tree.order[np.asarray(best)])
    exact = finished and upper_f <= best_value
    return _result(best_value, upper_f, opponent, exact, evaluator.count)


def _result(best_value, upper_f, opponent, exact, count):
    lower = float(np.clip(1.0 - upper_f, 0.0, 1.0))
    upper = float(np.clip(1.0 - best_value, 0.0, 1.0))
    return lower, upper, np.asarray(opponent, np.int32), bool(exact), int(count)


def _greedy(tree: _Tree, ell: int):
    """The greedy opponent (each step adds the position that raises ``f`` most)."""
    chosen, value = [0], tree.f1[0]
    for _ in range(ell - 1):
        grown = tree.children(np.array([chosen]))[0]
        q = int(np.argmax(grown))
        chosen, value = [*chosen, q], grown[q]
    return value, sorted(chosen)


def _expand(nodes: _Nodes, tree: _Tree, threshold: float):
    """Evaluate the children of ``nodes`` whose bound exceeds ``threshold``.

    Returns the child nodes (``None`` when the children are full multisets), the best full
    multiset found (positions) and its value, and the largest bound of a child not evaluated.
    """
    depth = nodes.prefix.shape[1]
    n = tree.n
    remaining = tree.ell - depth - 1  # after one child is added
    lo = nodes.prefix[:, -1]
    positions = np.arange(n)
    gains = nodes.gains[nodes.family]  # [N, n] caps on Δ(q | P): the parent's exact gains
    if tree.pair_gain is not None and depth >= 2:  # and Δ(q | P) <= Δ(q | {x}) for x in P
        gains = np.minimum(gains, np.min(tree.pair_gain[nodes.prefix], axis=1))
    again = np.minimum(gains, tree.copy_gain[None])
    own = np.where(positions[None] == lo[:, None], again, gains)  # q = lo repeats a member
    valid = positions[None] >= lo[:, None]
    bound = nodes.value[:, None] + own + _top_sums(gains, again, remaining)
    bound = np.where(valid, bound, -np.inf)
    wanted = bound > threshold
    cut = float(np.max(bound[valid & ~wanted], initial=-np.inf))
    live = np.flatnonzero(np.any(wanted, axis=1))
    if len(live) == 0:
        return None, -np.inf, None, cut
    nodes, gains, own, bound, wanted = (
        nodes.take(live),
        gains[live],
        own[live],
        bound[live],
        wanted[live],
    )
    if depth == 1 and tree.pair_gain is not None:
        values = tree.pair_gain[nodes.prefix[:, 0]] + nodes.value[:, None]
    else:
        values = tree.children(nodes.prefix, wanted)
    rows, cols = np.nonzero(wanted)
    child_value = values[rows, cols]
    if remaining == 0:
        i = int(np.argmax(child_value))
        return None, child_value[i], [*nodes.prefix[rows[i]], cols[i]], cut
    exact_gains = own.copy()
    exact_gains[rows, cols] = child_value - nodes.value[rows]
    exact_again = np.minimum(exact_gains, tree.copy_gain[None])
    child_bound = child_value + _top_sums(exact_gains, exact_again, remaining)[rows, cols]
    children = _Nodes(
        prefix=np.column_stack([nodes.prefix[rows], cols]),
        value=child_value,
        bound=child_bound,
        gains=exact_gains,
        family=rows,
    )
    return children, -np.inf, None, cut
