"""Reference values by enumerating every pool: slow, obviously right, independent of the library.

A user type is a choice rule ``pick(pool) -> probabilities over positions``; pools are tuples of
response ids. Everything here is plain Python/NumPy in float64.
"""

from __future__ import annotations

import itertools

import numpy as np


def ranking_rule(utilities):
    def pick(pool):
        v = np.asarray(utilities)[list(pool)]
        top = (v == v.max()).astype(float)
        return top / top.sum()

    return pick


def plackett_luce_rule(log_weights):
    def pick(pool):
        s = np.asarray(log_weights)[list(pool)]
        e = np.exp(s - s.max())
        return e / e.sum()

    return pick


def rules(kind, params):
    make = ranking_rule if kind == "ranking" else plackett_luce_rule
    return [make(row) for row in np.asarray(params)]


def tuples_with_prob(policy, length):
    """Yield ``(tuple, probability)`` for every ordered tuple with positive probability."""
    policy = np.asarray(policy, dtype=float)
    for tup in itertools.product(range(len(policy)), repeat=length):
        prob = float(np.prod([policy[t] for t in tup]))
        if prob > 0:
            yield tup, prob


def payoffs(user_rules, weights, policy, k):
    """``u_k(y, π)`` for every ``y``."""
    n = len(policy)
    out = np.zeros(n)
    for y in range(n):
        for tup, prob in tuples_with_prob(policy, k):
            for w, pick in zip(weights, user_rules, strict=True):
                out[y] += w * prob * pick((y, *tup))[0]
    return out


def win_rate(user_rules, weights, mine, k, theirs, ell):
    """``WR(mine^{⊗k}, theirs^{⊗ell})``."""
    total = 0.0
    for a, pa in tuples_with_prob(mine, k):
        for b, pb in tuples_with_prob(theirs, ell):
            for w, pick in zip(weights, user_rules, strict=True):
                total += w * pa * pb * pick(a + b)[:k].sum()
    return total


def robust_win_rate(user_rules, weights, policy, k, ell):
    """``min`` over deterministic ell-multisets ``S`` of ``1 − WR(S, π^{⊗k})``."""
    n = len(policy)
    worst = 1.0
    for opp in itertools.combinations_with_replacement(range(n), ell):
        taken = 0.0
        for a, pa in tuples_with_prob(policy, k):
            for w, pick in zip(weights, user_rules, strict=True):
                taken += w * pa * pick(opp + a)[:ell].sum()
        worst = min(worst, 1.0 - taken)
    return worst
