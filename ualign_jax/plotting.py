"""Pictures of the results: robust win rate vs k, regret vs T, a policy over named responses.

Every function writes one PNG (matplotlib's Agg backend, no display needed) and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from jax.typing import ArrayLike

__all__ = ["plot_robust_win_rates", "plot_regret", "plot_policy"]


def _pyplot():
    import matplotlib  # noqa: PLC0415  (optional at import time of the package)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_robust_win_rates(
    ks: Sequence[int], rates: Mapping[str, Sequence[float]], path, title: str = ""
) -> Path:
    """Robust win rate ``R_{k,1}`` of each method's policy sampled k times, against ``k/(k+1)``.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "robust.png"
        >>> plot_robust_win_rates([1, 2], {"solve": [0.5, 0.66]}, out).name
        'robust.png'
    """
    plt = _pyplot()
    ks = np.asarray(ks)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    grid = np.linspace(ks.min(), ks.max(), 200)
    ax.plot(
        grid,
        grid / (grid + 1),
        color="black",
        lw=1.5,
        ls="--",
        zorder=5,
        label="k/(k+1) (guarantee)",
    )
    markers = "osD^v<>"
    for i, (name, values) in enumerate(rates.items()):
        ax.plot(ks, values, marker=markers[i % len(markers)], ms=4, lw=1.5, label=name)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("k (responses sampled per prompt)")
    ax.set_ylabel("robust win rate vs any single response")
    ax.set_ylim(0.0, 1.02)
    ax.set_title(title or "Robust win rate of k samples")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, plt, path)


def plot_regret(regret: ArrayLike, num_responses: int, path, title: str = "") -> Path:
    """Cumulative external regret ``Reg_t`` vs ``t`` (log–log) against the √t reference lines.

    Dashed: ``sqrt(t ln n / 2)``. Dotted: its value at the horizon ``T``, the bound that Hedge
    with the fixed rate ``η = sqrt(8 ln n / T)`` keeps at every ``t <= T`` (THEORY T5).
    """
    plt = _pyplot()
    regret = np.asarray(regret, dtype=float)
    steps = np.arange(1, regret.size + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    bound = np.sqrt(steps * math.log(num_responses) / 2)
    ax.loglog(steps, bound, color="black", ls="--", label="sqrt(t ln n / 2)")
    ax.axhline(bound[-1], color="black", ls=":", label="Hedge bound for horizon T (fixed eta)")
    positive = regret > 0
    ax.loglog(steps[positive], regret[positive], lw=1.5, label="measured regret")
    ax.set_xlabel("t (steps)")
    ax.set_ylabel("external regret Reg_t")
    ax.set_title(title or "Self-play regret")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, plt, path)


def plot_policy(policy: ArrayLike, names: Sequence[str] | None, path, title: str = "") -> Path:
    """The policy as horizontal bars over the named responses, largest first."""
    plt = _pyplot()
    policy = np.asarray(policy, dtype=float)
    names = list(names) if names is not None else [str(i) for i in range(policy.size)]
    order = np.argsort(policy)
    fig, ax = plt.subplots(figsize=(7, 0.35 * policy.size + 1.5), dpi=120)
    ax.barh([names[i] for i in order], policy[order], color="tab:blue")
    ax.set_xlabel("probability")
    ax.set_title(title or "Policy")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, plt, path)


def _save(fig, plt, path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
