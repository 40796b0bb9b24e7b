"""docs/theory.md §4 (T1–T5) checked numerically: each claim returns its numbers and verdict.

Used by ``ualign reproduce`` and by the test suite. Every check computes exact values (closed
forms, exact robust win rates) on bundled or generated populations, in float64 where available.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .baselines import nlhf
from .datasets import DATASETS, load_dataset
from .generators import (
    condorcet_instance,
    ell_tight_instance,
    impartial_culture,
    mallows_mixture,
    plackett_luce_mixture,
)
from .metrics import exploitability, robust_win_rate
from .payoffs import prepare
from .policies import uniform_k_sets
from .populations import Population
from .solver import solve

__all__ = ["check_theory", "claim_id", "CLAIMS"]

KS = (1, 2, 4, 8, 16)


def _dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _slack():
    """Tolerance of the float arithmetic itself (float32 runs cannot certify 1e-4 gaps to 1e-9)."""
    return 1e-9 if jax.config.jax_enable_x64 else 2e-5


def t1_populations() -> dict[str, Population]:
    dtype = _dtype()
    pops = {name: load_dataset(name, dtype=dtype) for name in DATASETS}
    pops["mallows"] = mallows_mixture(jax.random.key(1), 8, 300, 3, 0.5, dtype=dtype)
    pops["plackett_luce"] = plackett_luce_mixture(jax.random.key(0), 10, 20, 1.5, dtype=dtype)
    return {name: prepare(pop) for name, pop in pops.items()}  # sorted once for every k


def t1_achievability(ks: tuple[int, ...] = KS) -> dict:
    """T1: the solution's robust win rate is at least ``k/(k+1) − 1e-4`` everywhere."""
    worst = (np.inf, "", 0)
    for name, pop in t1_populations().items():
        for k in ks:
            sol = solve(pop, k, tol=1e-7, steps=3000)
            margin = float(robust_win_rate(pop, sol.policy, k)) - (k / (k + 1) - 1e-4)
            worst = min(worst, (margin, name, k))
    return {
        "claim": "T1 achievability",
        "passed": worst[0] >= -_slack(),
        "detail": f"min over 6 populations x k in {list(ks)} of R - (k/(k+1) - 1e-4) = "
        f"{worst[0]:.2e} ({worst[1]}, k={worst[2]})",
    }


def t2_uniform_k_sets_value(n: int, k: int) -> float:
    """``R_{k,1}`` of k distinct responses drawn uniformly, on impartial culture over ``n``
    (docs/theory.md §4, T2): ``k/(k+1) + (k−1)/(2n(k+1))``."""
    return k / (k + 1) + (k - 1) / (2 * n * (k + 1))


def t2_optimality(ns: tuple[int, ...] = (5, 6, 7), ks: tuple[int, ...] = (2, 4)) -> dict:
    """T2: on impartial culture the uniform policy is an equilibrium, and the correlated k-output
    model "k distinct responses, uniformly" beats ``k/(k+1)`` at finite ``n`` by exactly
    ``(k−1)/(2n(k+1))``, staying below the cap ``k/(k+1) + k/(n(k+1))``."""
    dtype = _dtype()
    worst_eq, worst_formula, min_gain, min_room, values = 0.0, 0.0, np.inf, np.inf, []
    for n in ns:
        pop = prepare(impartial_culture(n, dtype=dtype))
        uniform = jnp.full(n, 1.0 / n, dtype)
        worst_eq = max(worst_eq, *(abs(float(exploitability(pop, uniform, k))) for k in (1, *ks)))
        for k in ks:
            rate = float(robust_win_rate(pop, uniform_k_sets(n, k, dtype=dtype), k))
            cap = k / (k + 1) + k / (n * (k + 1))
            worst_formula = max(worst_formula, abs(rate - t2_uniform_k_sets_value(n, k)))
            min_gain, min_room = min(min_gain, rate - k / (k + 1)), min(min_room, cap - rate)
            values.append(f"n={n},k={k}: {rate:.4f}")
    return {
        "claim": "T2 optimality of k/(k+1)",
        "passed": worst_eq <= _slack()
        and worst_formula <= _slack()
        and min_gain > _slack()
        and min_room > _slack(),
        "detail": f"impartial culture n in {list(ns)}: max |eps(uniform)| = {worst_eq:.1e}; "
        f"k distinct responses uniformly: R = {', '.join(values)}; "
        f"max |R - (k/(k+1) + (k-1)/(2n(k+1)))| = {worst_formula:.1e}; "
        f"min R - k/(k+1) = {min_gain:.2e} (> 0); "
        f"min cap - R = {min_room:.2e} (> 0, cap k/(k+1) + k/(n(k+1)))",
    }


def t3_nlhf_collapse(delta: float = 0.1, ks: tuple[int, ...] = (2, 4, 8)) -> dict:
    """T3: NLHF returns the Condorcet winner; sampled k times it stays at 1/2 + δ."""
    pop = prepare(condorcet_instance(4, delta, dtype=_dtype()))
    p = nlhf(pop)
    point = bool(float(p[0]) >= 1 - 1e-9)
    nlhf_gap = max(abs(float(robust_win_rate(pop, p, k)) - (0.5 + delta)) for k in ks)
    solve_margin = min(
        float(robust_win_rate(pop, solve(pop, k, tol=1e-7, steps=3000).policy, k))
        - (k / (k + 1) - 1e-4)
        for k in ks
    )
    return {
        "claim": "T3 NLHF collapse",
        "passed": point and nlhf_gap <= _slack() and solve_margin >= -_slack(),
        "detail": f"nlhf = point mass: {point}; max_k |R(nlhf) - (1/2 + {delta})| = "
        f"{nlhf_gap:.1e}; min_k R(solve) - (k/(k+1) - 1e-4) = {solve_margin:.2e}",
    }


def t4_multi_output(
    ks: tuple[int, ...] = (4, 8),
    ells: tuple[int, ...] = (2, 3),
    eps: float = 0.005,
    tight_cells: tuple[tuple[int, int], ...] = ((4, 2), (8, 3)),
) -> dict:
    """T4: against ℓ-output opponents the equilibrium keeps ``1 − ℓ/(k+1)`` (on sushi, with its
    gap to ``k/(k+ℓ)``), and the bound is tight: on ``ell_tight_instance(k, ℓ, eps)`` the
    equilibrium ``solve`` finds has exactly ``1 − ℓ/(k+1) + ℓ·eps``, for each ``(k, ℓ)`` of
    ``tight_cells`` (``1 < ℓ <= k + 1`` and ``eps <= (ℓ−1)/((k+1)(k+ℓ))``, where it is tight)."""
    for k, ell in tight_cells:
        if not 1 < ell <= k + 1 or eps > (ell - 1) / ((k + 1) * (k + ell)):
            raise ValueError(f"tight_cells: ({k}, {ell}) is not tight at eps={eps}")
    pop = prepare(load_dataset("sushi", dtype=_dtype()))
    rows, margin = [], np.inf
    for k in ks:
        policy = solve(pop, k, tol=1e-8, steps=3000).policy
        for ell in ells:
            rate = float(robust_win_rate(pop, policy, k, ell))
            margin = min(margin, rate - (1 - ell / (k + 1)))
            rows.append(f"k={k},l={ell}: R={rate:.4f} (k/(k+l) - R = {k / (k + ell) - rate:+.4f})")
    tight, tight_gap = [], 0.0
    for k, ell in tight_cells:
        instance = ell_tight_instance(k, ell, eps, dtype=_dtype())
        rate = float(robust_win_rate(instance, solve(instance, k, tol=1e-8).policy, k, ell))
        tight_gap = max(tight_gap, abs(rate - (1 - ell / (k + 1) + ell * eps)))
        tight.append(f"k={k},l={ell}: R={rate:.4f}")
    return {
        "claim": "T4 l-output opponents",
        "passed": margin >= -_slack() and tight_gap <= _slack(),
        "detail": "sushi: "
        + "; ".join(rows)
        + f"; tight instance (eps={eps}): "
        + "; ".join(tight)
        + f", max |R - (1 - l/(k+1) + l*eps)| = {tight_gap:.1e}",
        "min_margin": margin,
        "tight_gap": tight_gap,
    }


def t5_regret(k: int = 4, horizons: tuple[int, ...] = (10, 100, 2000)) -> dict:
    """T5: Hedge tuned to horizon T keeps ``Reg_t <= sqrt(T ln n / 2)`` for every ``t <= T``.

    (``ln n / η + η t / 8`` with ``η = sqrt(8 ln n / T)`` is at most the bound at ``t = T``.) The
    mixture of the iterates keeps a robust win rate of at least ``k/(k+1) − Reg_T/T``.
    """
    pop = prepare(load_dataset("sushi", dtype=_dtype()))
    excess, mixture_shortfall, parts = -np.inf, -np.inf, []
    for steps in horizons:
        sol = solve(pop, k, method="hedge", steps=steps)
        bound = float(sol.trace.bound[-1])
        excess = max(excess, float(jnp.max(sol.trace.regret)) - bound)
        final_regret = float(sol.trace.regret[-1])
        promised = k / (k + 1) - final_regret / steps
        mixture_shortfall = max(
            mixture_shortfall, promised - float(robust_win_rate(pop, sol.mixture, k))
        )
        parts.append(
            f"T={steps}: max_t Reg_t = {float(jnp.max(sol.trace.regret)):.3f} <= {bound:.3f}"
        )
    return {
        "claim": "T5 self-play regret",
        "passed": excess <= _slack() and mixture_shortfall <= _slack(),
        "detail": f"sushi k={k}, Hedge eta=sqrt(8 ln n/T): "
        + "; ".join(parts)
        + f"; max (k/(k+1) - Reg_T/T) - R(mixture) = {mixture_shortfall:.1e} (<= 0)",
    }


CLAIMS = (t1_achievability, t2_optimality, t3_nlhf_collapse, t4_multi_output, t5_regret)


def claim_id(claim: Callable[[], dict]) -> str:
    """The short name of a claim in :data:`CLAIMS`: ``"T4"`` for ``t4_multi_output``."""
    return claim.__name__.split("_", 1)[0].upper()


def check_theory(
    progress: Callable[[str], object] | None = None, claims: Sequence[str] | None = None
) -> list[dict]:
    """Run the claims named in ``claims`` (``"T4"``, case-insensitive; default: all of
    :data:`CLAIMS`, in order), in the order of :data:`CLAIMS`; ``progress(note)`` is called after
    each claim.

    Example:
        >>> check_theory(claims=["T9"])
        Traceback (most recent call last):
        ...
        ValueError: claims: unknown claim 'T9'; the claims are T1, T2, T3, T4, T5
    """
    known = [claim_id(claim) for claim in CLAIMS]
    wanted = set(known) if claims is None else {str(name).upper() for name in claims}
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ValueError(
            f"claims: unknown claim{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; the claims are {', '.join(known)}"
        )
    rows = []
    for claim in (claim for claim in CLAIMS if claim_id(claim) in wanted):
        rows.append(claim())
        rows[-1]["detail"] += f" [float tolerance {_slack():.0e}]"
        if progress is not None:
            progress(rows[-1]["claim"])
    return rows
