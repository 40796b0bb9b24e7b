"""Pictures of the results: robust win rate vs k, a solve's convergence, a policy over responses.

Every function writes one PNG (matplotlib's Agg backend, no display needed) and returns its path.
Names and titles are drawn literally: ``$``, ``\\``, ``_`` or ``#`` in a response name never
start matplotlib's math mode, and characters no font can draw (lone surrogates) are shown as
``\\udcxx`` escapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "plot_robust_win_rates",
    "plot_convergence",
    "plot_regret",
    "plot_policy",
    "plot_sweep_win_rates",
    "plot_shortfall_distribution",
]

#: Most responses ``plot_policy`` draws (the largest); the rest are summed in a note.
MAX_BARS = 40


def _pyplot():
    import matplotlib  # noqa: PLC0415  (optional at import time of the package)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def literal(text) -> str:
    """``text`` as a string safe to draw: lone surrogates escaped (math mode is off elsewhere).

    Example:
        >>> literal("tuna \\udcff")
        'tuna \\\\udcff'
    """
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def _plain(*texts) -> None:
    """Draw these matplotlib Text objects literally (no mathtext)."""
    for text in texts:
        text.set_parse_math(False)


def _title(ax, title: str) -> None:
    _plain(ax.set_title(literal(title)))


def _legend(ax, **kwargs) -> None:
    legend = ax.legend(**kwargs)
    _plain(*legend.get_texts())


def plot_robust_win_rates(
    ks: Sequence[int], rates: Mapping[str, Sequence[float]], path, title: str = ""
) -> Path:
    """Robust win rate ``R_{k,1}`` of each method's policy sampled k times, against ``k/(k+1)``.

    The guarantee ``k/(k+1)`` (docs/theory.md §4, T1) is drawn at the evaluated k only; values are
    joined by lines only when the k are consecutive (a line between sparse k means nothing).

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "robust.png"
        >>> plot_robust_win_rates([1, 2], {"solve": [0.5, 0.66]}, out).name
        'robust.png'
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    ks = np.asarray(ks)
    joined = ks.size > 1 and bool(np.all(np.diff(ks) == 1))
    style = "-" if joined else "none"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    markers = "osD^v<>"
    for i, (name, values) in enumerate(rates.items()):
        ax.plot(
            ks,
            values,
            marker=markers[i % len(markers)],
            ms=6,
            mfc="none",  # hollow: the guarantee stays visible through the markers
            mew=1.3,
            lw=1.3,
            ls=style,
            label=literal(name),
        )
    ax.plot(  # a wide grey band under the markers: an equilibrium sits on it, hiding nothing
        ks,
        ks / (ks + 1),
        color="0.55",
        alpha=0.45,
        lw=7,
        ls=style,
        solid_capstyle="butt",
        marker="_",
        ms=18,
        mew=3,
        zorder=1,
        label="k/(k+1), the guarantee",
    )
    ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="1/2 (a coin flip)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("k (responses sampled per prompt)")
    ax.set_ylabel("robust win rate vs any single response")
    ax.set_ylim(0.0, 1.02)
    _title(ax, title or "Robust win rate of k samples")
    ax.grid(alpha=0.3)
    _legend(ax, loc="lower right", fontsize=8)
    return _save(fig, plt, path)


def plot_convergence(
    trace: Mapping[str, np.ndarray],
    method: str,
    num_responses: int,
    path,
    title: str = "",
    horizon: int | None = None,
) -> Path:
    """A solve's progress: exploitability (last iterate and mixture), and regret, vs steps.

    ``trace`` holds ``exploitability``, ``mixture_exploitability`` and ``regret`` at the recorded
    steps (``Solution.recorded_trace()``), with their step indices in ``step`` (default 1, 2, ...).
    The regret bound ``sqrt(T ln n / 2)`` of docs/theory.md §4 (T5) is drawn only for
    ``method="hedge"`` run for ``horizon`` = T steps, the one method it is proved for; other
    methods get no bound line.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "convergence.png"
        >>> trace = {"exploitability": [0.1, 0.01], "mixture_exploitability": [0.1, 0.05],
        ...          "regret": [0.1, 0.12]}
        >>> plot_convergence(trace, "optimistic_gradient", 3, out).name
        'convergence.png'
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    last = np.asarray(trace["exploitability"], dtype=float)
    mixed = np.asarray(trace["mixture_exploitability"], dtype=float)
    regret = np.asarray(trace["regret"], dtype=float)
    steps = np.asarray(trace.get("step", np.arange(1, last.size + 1)), dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    for values, label in ((last, "last iterate"), (mixed, "mixture of iterates")):
        positive = values > 0
        marker = "." if last.size <= 60 else None  # a few steps: show each one
        left.semilogy(steps[positive], values[positive], lw=1.5, marker=marker, label=label)
    left.set_xlabel("step")
    left.set_ylabel("exploitability (0 at an equilibrium)")
    left.set_title("Exploitability")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.grid(alpha=0.3, which="both")
    _legend(left, loc="best", fontsize=8)

    positive = regret > 0
    right.loglog(steps[positive], regret[positive], lw=1.5, label="measured regret")
    if method == "hedge" and horizon is not None:
        bound = math.sqrt(horizon * math.log(num_responses) / 2)
        label = f"Hedge bound sqrt(T ln n / 2), T={horizon}"
        right.axhline(bound, color="black", ls="--", label=label)
    else:
        right.text(
            0.98,
            0.03,
            "no bound drawn:\nthe T5 bound is Hedge's",
            transform=right.transAxes,
            ha="right",
            fontsize=8,
            color="dimgray",
            parse_math=False,
        )
    right.set_xlabel("step t")
    right.set_ylabel("external regret Reg_t")
    right.set_title("Self-play regret")
    right.grid(alpha=0.3, which="both")
    _legend(right, loc="best", fontsize=8)
    _plain(fig.suptitle(literal(title or f"Convergence of {method}")))
    return _save(fig, plt, path)


def plot_regret(regret, num_responses: int, path, title: str = "", method: str = "hedge") -> Path:
    """Cumulative external regret ``Reg_t`` vs ``t`` (log–log).

    For ``method="hedge"`` (run with ``η = sqrt(8 ln n / T)``, T = the trace's length) the dotted
    line is its bound ``sqrt(T ln n / 2)``, which holds at every ``t <= T`` (docs/theory.md §4, T5);
    no bound is drawn for other methods.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "regret.png"
        >>> plot_regret([0.1, 0.2, 0.25], 3, out).name
        'regret.png'
    """
    plt = _pyplot()
    regret = np.asarray(regret, dtype=float)
    steps = np.arange(1, regret.size + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    if method == "hedge":
        bound = math.sqrt(regret.size * math.log(num_responses) / 2)
        ax.axhline(bound, color="black", ls=":", label="Hedge bound sqrt(T ln n / 2)")
    positive = regret > 0
    ax.loglog(steps[positive], regret[positive], lw=1.5, label="measured regret")
    ax.set_xlabel("t (steps)")
    ax.set_ylabel("external regret Reg_t")
    _title(ax, title or f"Self-play regret ({method})")
    ax.grid(alpha=0.3, which="both")
    _legend(ax, fontsize=8, loc="best")
    return _save(fig, plt, path)


def plot_policy(policy, names: Sequence[str] | None, path, title: str = "") -> Path:
    """The policy as horizontal bars over the named responses, largest first.

    At most ``MAX_BARS`` bars (the largest); the mass of the others is given in a note. Names are
    drawn literally and may repeat (bars are placed by position).

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "policy.png"
        >>> plot_policy([0.25, 0.75], ["Price $5#1 $6", "$\\\\foo$"], out).name
        'policy.png'
    """
    plt = _pyplot()
    policy = np.asarray(policy, dtype=float)
    names = list(names) if names is not None else [str(i) for i in range(policy.size)]
    order = np.argsort(policy, kind="stable")[::-1][:MAX_BARS][::-1]
    rest = policy.size - order.size
    fig, ax = plt.subplots(figsize=(7, 0.35 * order.size + 1.5), dpi=120)
    ax.barh(np.arange(order.size), policy[order], color="tab:blue")
    ax.set_yticks(np.arange(order.size), [literal(names[i]) for i in order], parse_math=False)
    ax.set_xlabel("probability")
    if rest:
        others = float(policy.sum() - policy[order].sum())
        ax.set_xlabel(f"probability (the {rest:,} other responses hold {others:.3g} in all)")
    _title(ax, title or "Policy")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, plt, path)


def plot_training(
    run, k: int, equilibrium: float, path, title: str = "", tol: float | None = None
) -> Path:
    """The training curve: robust win rate ``k/(k+1) − ε_k`` of the averaged and last policies
    against steps, beside the ``solve`` equilibrium's value, and ``ε_k`` on a log scale.

    ``run`` is a :class:`ualign_jax.TrainingRun` (``steps``, ``exploitability``,
    ``last_exploitability``).
    """
    plt = _pyplot()
    value = k / (k + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    left.plot(run.steps, value - run.exploitability, marker="o", ms=3, label="averaged policy")
    left.plot(run.steps, value - run.last_exploitability, lw=1, alpha=0.7, label="last iterate")
    left.axhline(equilibrium, color="black", ls="--", lw=1.2, label="solve equilibrium")
    left.axhline(value, color="grey", ls=":", lw=1, label="k/(k+1)")
    left.set_xlabel("training steps")
    left.set_ylabel(f"robust win rate of k={k} samples")
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="lower right")
    floor = 1e-6
    right.semilogy(run.steps, np.maximum(run.exploitability, floor), marker="o", ms=3)
    right.semilogy(run.steps, np.maximum(run.last_exploitability, floor), lw=1, alpha=0.7)
    if tol is not None:
        right.axhline(tol, color="black", ls="--", lw=1.2, label=f"tol = {tol:g}")
        right.legend(fontsize=8, loc="upper right")
    right.set_xlabel("training steps")
    right.set_ylabel("exploitability (exact)")
    right.grid(alpha=0.3, which="both")
    fig.suptitle(literal(title) or f"Self-play training from sampled groups, k={k}")
    return _save(fig, plt, path)


#: Colours of the methods in the sweep plots (others cycle through matplotlib's defaults).
SWEEP_COLOURS = {"equilibrium": "tab:blue", "NLHF": "tab:orange", "RLHF": "tab:green"}


def plot_sweep_win_rates(
    ks: Sequence[int],
    rates: Mapping[int, Mapping[str, Sequence[Sequence[float]]]],
    path,
    title: str = "",
) -> Path:
    """Robust win rate ``R_{k,ℓ}`` vs k, one thin line per file and method, one panel per ℓ.

    ``rates[ell][method]`` holds one curve over ``ks`` per file (NaN where missing). Each panel
    draws the guarantee ``1 − ℓ/(k+1)`` of an exact equilibrium (docs/theory.md §4: T1 for
    ``ℓ = 1``, where it is ``k/(k+1)``, and T4) and, for ``ℓ > 1``, the impartial-culture
    ceiling ``k/(k+ℓ)``. The k axis is logarithmic in base 2.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "sweep.png"
        >>> plot_sweep_win_rates([1, 2], {1: {"NLHF": [[0.5, 0.6]]}}, out).name
        'sweep.png'
    """
    plt = _pyplot()
    ks = np.asarray(ks, dtype=float)
    ells = sorted(rates)
    fig, axes = plt.subplots(1, len(ells), figsize=(6 * len(ells), 4.6), dpi=120, squeeze=False)
    fine = np.geomspace(ks.min(), ks.max(), 200) if ks.size > 1 else ks
    for ax, ell in zip(axes[0], ells, strict=True):
        for i, (method, curves) in enumerate(rates[ell].items()):
            colour = SWEEP_COLOURS.get(method, f"C{i + 3}")
            curves = np.asarray(curves, dtype=float).reshape(-1, ks.size)
            curves = curves[np.any(np.isfinite(curves), axis=1)]
            for j, curve in enumerate(curves):
                ax.plot(
                    ks,
                    curve,
                    color=colour,
                    lw=1.6 if i == 0 else 0.9,  # the first method on top, drawn wider
                    alpha=0.6 if i == 0 else 0.45,
                    marker="o",
                    ms=3 if i == 0 else 2.5,
                    zorder=3 if i == 0 else 2,
                    label=f"{literal(method)} ({len(curves)} files)" if j == 0 else None,
                )
        ax.plot(
            fine,
            np.maximum(0.0, 1 - ell / (fine + 1)),
            color="black",
            ls="--",
            lw=1.4,
            label="k/(k+1), the guarantee" if ell == 1 else f"1 − {ell}/(k+1), the T4 guarantee",
            zorder=4,
        )
        if ell > 1:
            ax.plot(fine, fine / (fine + ell), color="0.4", ls=":", lw=1.4, label=f"k/(k+{ell})")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(int(k)) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("k (responses sampled per prompt)")
        opponent = "any single response" if ell == 1 else f"any {ell}-output opponent"
        ax.set_ylabel(f"robust win rate vs {opponent}")
        ax.set_ylim(0.0, 1.02)
        ax.set_title(f"ℓ = {ell}")
        ax.grid(alpha=0.3)
        _legend(ax, loc="lower right", fontsize=8)
    _plain(fig.suptitle(literal(title or "Robust win rate of k samples")))
    return _save(fig, plt, path)


def plot_shortfall_distribution(
    ks: Sequence[int],
    shortfalls: Mapping[str, Sequence[Sequence[float]]],
    path,
    title: str = "",
) -> Path:
    """Strip plot of ``k/(k+1) − R_{k,1}`` over files, at each k, for each method.

    ``shortfalls[method][i]`` holds one value per file at ``ks[i]``. Each dot is a file
    (jittered sideways), the bar is the median; the axis is symmetric-log so that exact zeros
    (an equilibrium) and shortfalls of 1e-3 and 0.3 are all visible.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "shortfall.png"
        >>> plot_shortfall_distribution([2], {"NLHF": [[0.0, 0.1]]}, out).name
        'shortfall.png'
    """
    plt = _pyplot()
    rng = np.random.default_rng(0)
    methods = list(shortfalls)
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(ks) + 2), 4.6), dpi=120)
    for m, method in enumerate(methods):
        colour = SWEEP_COLOURS.get(method, f"C{m + 3}")
        for i, values in enumerate(shortfalls[method]):
            values = np.asarray(values, dtype=float)
            values = values[np.isfinite(values)]
            centre = i + (m - (len(methods) - 1) / 2) * width
            jitter = rng.uniform(-0.35, 0.35, values.size) * width
            ax.scatter(
                centre + jitter,
                values,
                s=14,
                color=colour,
                alpha=0.7,
                edgecolors="none",
                label=literal(method) if i == 0 else None,
            )
            if values.size:
                ax.hlines(
                    np.median(values), centre - width / 2, centre + width / 2, color=colour, lw=2
                )
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_yscale("symlog", linthresh=1e-3)
    lowest = min(
        (float(np.nanmin(v)) for per_k in shortfalls.values() for v in per_k if len(v)),
        default=0.0,
    )
    ax.set_ylim(min(-2e-4, 1.5 * lowest), 1.0)  # a shortfall is at most 1
    ax.set_xticks(range(len(ks)), [f"k={k}" for k in ks])
    ax.set_ylabel("shortfall k/(k+1) − R_{k,1}  (0 = equilibrium)")
    ax.grid(alpha=0.3, axis="y", which="both")
    _title(ax, title or "Shortfall from the guarantee k/(k+1) over files")
    _legend(ax, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(methods), fontsize=8)
    return _save(fig, plt, path)


def _save(fig, plt, path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
