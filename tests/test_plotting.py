"""The figures of ualign_jax.plotting: what each draws, checked on the figure objects."""

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def figures(monkeypatch):
    """The figures the plotting functions make, kept open for inspection."""
    from ualign_jax import plotting

    made = []

    def keep(fig, plt, path):
        fig.canvas.draw()  # renders every text: a mathtext error would raise here
        made.append(fig)
        return Path(path)

    monkeypatch.setattr(plotting, "_save", keep)
    yield made
    import matplotlib.pyplot as plt

    for fig in made:
        plt.close(fig)


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_convergence_figure_draws_the_bound_of_the_method_used(figures, tmp_path):
    from ualign_jax import plotting

    trace = {
        "exploitability": np.array([0.1, 0.01, 1e-4]),
        "mixture_exploitability": np.array([0.1, 0.05, 0.03]),
        "regret": np.array([0.1, 0.15, 0.16]),
    }
    plotting.plot_convergence(trace, "optimistic_gradient", 5, tmp_path / "a.png", "d.soc, k=4")
    plotting.plot_convergence(trace, "hedge", 5, tmp_path / "b.png", "d.soc, k=4", horizon=3)
    optimistic, hedge = figures
    left, right = optimistic.axes
    assert legend_texts(left) == ["last iterate", "mixture of iterates"]
    assert not any("Hedge" in t for t in legend_texts(right))
    assert any("Hedge bound" in t for t in legend_texts(hedge.axes[1]))
    assert "k=4" in optimistic._suptitle.get_text()


def test_win_rate_figure_integer_ticks_labelled_half_and_sparse_k_unjoined(figures, tmp_path):
    from ualign_jax import plotting

    rates = {"equilibrium": [0.5, 0.8, 0.94], "Price $5#1 $6": [0.5, 0.7, 0.7]}
    plotting.plot_robust_win_rates([1, 4, 16], rates, tmp_path / "a.png")
    (ax,) = figures[0].axes
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert "1/2 (a coin flip)" in legend_texts(ax)
    assert all(line.get_linestyle() == "None" for line in ax.get_lines()[:3])  # sparse k
    plotting.plot_robust_win_rates([1, 2, 3], rates, tmp_path / "b.png")
    (ax,) = figures[1].axes
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert ax.get_lines()[0].get_linestyle() == "-"


def test_policy_figure_caps_its_bars(figures, tmp_path):
    from ualign_jax import plotting

    policy = np.full(500, 1 / 500)
    plotting.plot_policy(policy, [f"${i}" for i in range(500)], tmp_path / "p.png")
    (ax,) = figures[0].axes
    assert len(ax.get_yticks()) == plotting.MAX_BARS and "460 other" in ax.get_xlabel()
