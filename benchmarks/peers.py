"""Peers side by side in one process: time to exploitability 1e-3 and 1e-6 on small games.

Run: ``python benchmarks/peers.py [--quick]``. Writes ``benchmarks/results/peers.json`` and
``peers.png`` (``--quick``: ``peers_quick.json`` and ``peers_quick.png``, two games and small
budgets, under a minute) and prints a markdown table for ``benchmarks/RESULTS.md``.

Games are built by ualign_jax itself: a ranking population and ``k``; every peer gets the dense
win tensor ``ua.win_tensor(pop, k + 1)`` (player ``p``'s payoff tensor is that tensor with axis 0
moved to position ``p``). Exploitability is always measured the same way, by ``ua.exploitability``
on the population in float64, on the symmetric policy a solver returns: its policy, or player
0's strategy of the profile it returns (peers that solve the general N-player game may return an
asymmetric equilibrium, whose player-0 strategy need not be a symmetric equilibrium; the JSON
records the asymmetry and the exploitability of the players' average as well).

Solvers, by kind:

- ``tolerance``: stop by themselves once the played iterate's exploitability is ``<= tol``
  (``ua.solve(..., tol=tol)``, the NumPy references, Gambit's logit with ``maxregret=tol``).
  Time = the run with that ``tol``.
- ``iterative``: a fixed number of iterations (OpenSpiel's projected replicator dynamics) or an
  ODE horizon (EGTtools' replicator gradient integrated by SciPy). The smallest count reaching
  ``tol`` is found on a doubling grid, then refined by bisection to within 1/16 of it; time = a
  run with that count. Exploitability need not be monotone in the count, so this is the smallest
  count found, not a certified minimum.
- ``exact``: one call (Gambit's lcp/enummixed/lp/gnm/ipa/simpdiv, nashpy, EGTtools' roots); the
  same time counts for both tolerances if its output reaches them.

Every time is the best of a few repeats after a warm-up call with the same arguments; for
ualign_jax the first call's excess over that is reported as compile time. Building a peer's input
(a Gambit game, EGTtools' payoff matrix) is reported as ``setup_s``, outside the timed call.
Gambit calls run first in a subprocess with a time limit (some never return on these degenerate
games); only those that return are timed in this process. Ratios are peer time / the time of
``ua.solve`` (default method) on the same dense game and tolerance.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import select  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ualign_jax as ua  # noqa: E402

RESULTS = Path(__file__).parent / "results"
#: The games, smallest first; ``--quick`` runs the first two.
GAME_NAMES = ("mallows_n4_k1", "sushi5_k2", "mallows_n6_k3")
TOLERANCES = (1e-3, 1e-6)
#: The denominator of every ratio.
REFERENCE = "ualign_jax optimistic_gradient (dense)"
#: Step cap of the self-stopping solvers: ua.solve's default ``steps``, also for NumPy.
MAX_STEPS = 2000
#: Distributions whose versions go into the JSON.
DISTRIBUTIONS = (
    "ualign_jax",
    "jax",
    "jaxlib",
    "numpy",
    "scipy",
    "open_spiel",
    "pygambit",
    "egttools",
    "nashpy",
)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Time limits: one doubling search, its iteration cap, the Gambit guard, the repeats."""

    search_s: float
    max_iterations: int
    guard_s: float
    min_repeats: int
    max_repeats: int
    repeat_s: float


FULL = Budget(20.0, 2**17, 30.0, min_repeats=5, max_repeats=50, repeat_s=1.0)
QUICK = Budget(1.5, 2**13, 3.0, min_repeats=3, max_repeats=20, repeat_s=0.2)


class Unavailable(Exception):
    """A solver that cannot run here: ``status`` says why (timeout, no equilibrium, ...)."""

    def __init__(self, status: str, note: str):
        super().__init__(note)
        self.status = status
        self.note = note


# --------------------------------------------------------------------------------------- games


@dataclasses.dataclass
class Game:
    """A symmetric (k+1)-player alignment game: the population, and its dense win tensor."""

    name: str
    description: str
    pop: ua.RankingPopulation
    k: int
    tensor: np.ndarray = dataclasses.field(init=False, repr=False)
    dense: ua.DenseGame = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        self.tensor = np.asarray(ua.win_tensor(self.pop, self.k + 1), np.float64)
        self.dense = ua.DenseGame(jnp.asarray(self.tensor))

    @property
    def n(self) -> int:
        return self.tensor.shape[0]

    @property
    def num_players(self) -> int:
        return self.k + 1


def sushi_subset(count: int) -> ua.RankingPopulation:
    """The bundled sushi rankings restricted to the first ``count`` items (orders kept)."""
    data = ua.load_dataset("sushi", dtype=jnp.float64)
    return ua.RankingPopulation(data.utilities[:, :count], data.weights)


def make_games(quick: bool = False, names=None) -> list[Game]:
    """The games, smallest first (``quick``: the first two; ``names``: those named)."""
    f64 = jnp.float64
    specs = [
        lambda: Game(
            "mallows_n4_k1",
            "mallows_mixture(key(25), n=4, 15 users, 3 centres, phi=0.7): a majority cycle, "
            "so the k=1 equilibrium (maximal lottery) is mixed, (1/7, 3/7, 0, 3/7)",
            ua.mallows_mixture(
                jax.random.key(25), 4, 15, num_components=3, dispersion=0.7, dtype=f64
            ),
            1,
        ),
        lambda: Game(
            "sushi5_k2",
            "the bundled sushi data restricted to its first 5 items (5000 voters), k=2",
            sushi_subset(5),
            2,
        ),
        lambda: Game(
            "mallows_n6_k3",
            "mallows_mixture(key(2), n=6, 300 users, 3 centres, phi=0.6), k=3",
            ua.mallows_mixture(
                jax.random.key(2), 6, 300, num_components=3, dispersion=0.6, dtype=f64
            ),
            3,
        ),
    ]
    names = GAME_NAMES[:2] if quick and names is None else names or GAME_NAMES
    return [spec() for spec, name in zip(specs, GAME_NAMES, strict=True) if name in names]


def normalised(policy) -> tuple[np.ndarray, float]:
    """The policy clipped at 0 and renormalised, and how far off the simplex it was."""
    p = np.asarray(policy, np.float64).reshape(-1)
    error = float(np.sum(np.abs(p - np.clip(p, 0.0, None))) + abs(np.sum(p) - 1.0))
    p = np.clip(p, 0.0, None)
    return p / np.sum(p), error


def exploitability(game: Game, policy) -> float:
    """``ε_k`` of the (renormalised) policy, by ``ua.exploitability`` on the population."""
    p, _ = normalised(policy)
    return float(ua.exploitability(game.pop, jnp.asarray(p), game.k))


def dense_payoffs(tensor: np.ndarray, policy: np.ndarray) -> np.ndarray:
    """``u_k(·, π)``: the win tensor contracted with ``π`` on its k opponent axes."""
    u = tensor
    for _ in range(tensor.ndim - 1):
        u = u @ policy
    return u


# ------------------------------------------------------------------------- NumPy references


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto the simplex (sort-based), as in ``ua.dynamics``."""
    top = np.sort(v)[::-1]
    excess = np.cumsum(top) - 1.0
    ranks = np.arange(1, v.size + 1)
    support = int(np.sum(top - excess / ranks > 0))
    return np.maximum(v - excess[support - 1] / support, 0.0)


def numpy_optimistic_gradient(tensor, tol, max_steps=MAX_STEPS, eta=1.0, growth=1.2):
    """ualign_jax's default dynamic, step for step, in NumPy on the dense tensor.

    Adaptive optimistic gradient from the uniform policy; stops once the played iterate's
    exploitability (from the payoffs it evaluated) is ``<= tol``. Returns (played, steps).
    """
    n = tensor.shape[0]
    target = 1.0 / tensor.ndim
    policy = np.full(n, 1.0 / n)
    last_played, last_payoffs, rate = policy, np.zeros(n), eta
    tiny = np.finfo(np.float64).tiny
    for t in range(1, max_steps + 1):
        played = project_simplex(policy + rate * last_payoffs)
        g = dense_payoffs(tensor, played)
        if g.max() - target <= tol:
            return played, t
        policy = project_simplex(policy + rate * g)
        changed = np.linalg.norm(g - last_payoffs)
        if t > 1 and changed > 0:
            moved = np.linalg.norm(played - last_played)
            rate = min(growth * rate, 0.5 * moved / max(changed, tiny))
        rate = min(max(rate, 1e-6), 1e4)
        last_played, last_payoffs = played, g
    return played, max_steps


def numpy_regret_matching_plus(tensor, tol, max_steps=MAX_STEPS):
    """Regret matching+ in NumPy on the dense tensor, stopping like ``ua.solve``."""
    n = tensor.shape[0]
    target = 1.0 / tensor.ndim
    policy, positive = np.full(n, 1.0 / n), np.zeros(n)
    for t in range(1, max_steps + 1):
        g = dense_payoffs(tensor, policy)
        if g.max() - target <= tol:
            return policy, t
        positive = np.maximum(positive + g - policy @ g, 0.0)
        total = positive.sum()
        policy = positive / total if total > 0 else np.full(n, 1.0 / n)
    return policy, max_steps


# -------------------------------------------------------------------------------------- solvers


@dataclasses.dataclass(frozen=True)
class Solver:
    """One row of the comparison.

    ``make(game, ctx)`` returns ``(call, extract)``: ``call`` is what is timed
    (``call(tol)`` for kind ``tolerance``, ``call(count)`` for ``iterative``, ``call()`` for
    ``exact``) and ``extract(raw) -> (policy, iterations, extra)`` runs outside the timing.
    ``guard(game, ctx, tol)`` runs before a first call and may raise Unavailable.
    """

    name: str
    library: str
    kind: str
    make: Callable
    reports: str = "its symmetric policy"
    note: str = ""
    two_player_only: bool = False
    guard: Callable | None = None


def ualign_solver(method: str, on: str) -> Callable:
    def make(game, ctx):
        target = game.dense if on == "dense" else game.pop

        def call(tol):
            sol = ua.solve(target, game.k, method=method, steps=MAX_STEPS, tol=tol)
            return jax.block_until_ready(sol)

        def extract(sol):
            return np.asarray(sol.policy), int(sol.num_steps), {"outcome": str(sol.outcome_name)}

        return call, extract

    return make


def numpy_solver(fn) -> Callable:
    def make(game, ctx):
        return (lambda tol: fn(game.tensor, tol)), (lambda raw: (raw[0], raw[1], {}))

    return make


def player_tensors(tensor: np.ndarray) -> list[np.ndarray]:
    """Player ``p``'s payoff tensor over profiles ``(a_0..a_k)``: ``W[a_p, a_others...]``."""
    return [np.ascontiguousarray(np.moveaxis(tensor, 0, p)) for p in range(tensor.ndim)]


def profile_extra(strategies) -> dict:
    strategies = np.asarray(strategies, np.float64)
    return {
        "asymmetry": float(np.max(np.abs(strategies - strategies[0]))),
        "average_policy": strategies.mean(axis=0),
    }


def openspiel_prd(dt: float, last_iterate: bool) -> Callable:
    def make(game, ctx):
        from open_spiel.python.algorithms import projected_replicator_dynamics as prd  # noqa: PLC0415

        tensors = player_tensors(game.tensor)

        def call(iterations):
            return prd.projected_replicator_dynamics(
                tensors,
                prd_iterations=int(iterations),
                prd_dt=dt,
                prd_gamma=1e-6,
                average_over_last_n_strategies=1 if last_iterate else None,
            )

        return call, lambda out: (out[0], None, profile_extra(out))

    return make


def egttools_payoff_matrix(tensor: np.ndarray) -> np.ndarray:
    """EGTtools' N-player payoffs ``[n, C(N+n-1, N)]``: strategy i in each group composition.

    Columns follow ``egttools.sample_simplex``; a composition counts the focal player too, so
    the entry is ``W[i, opponents]`` with the opponents' counts = composition - e_i.
    """
    import egttools  # noqa: PLC0415

    players, n = tensor.ndim, tensor.shape[0]
    columns = egttools.calculate_nb_states(players, n)
    matrix = np.zeros((n, columns))
    for column in range(columns):
        counts = np.asarray(egttools.sample_simplex(column, players, n), dtype=np.int64)
        for i in np.flatnonzero(counts):
            others = counts.copy()
            others[i] -= 1
            matrix[i, column] = tensor[(i, *np.repeat(np.arange(n), others))]
    return matrix


def egttools_gradient(tensor: np.ndarray) -> Callable:
    from egttools.analytical import replicator_equation, replicator_equation_n_player  # noqa: PLC0415

    if tensor.ndim == 2:
        matrix = np.ascontiguousarray(tensor)
        return lambda x: replicator_equation(x, matrix)
    matrix, players = egttools_payoff_matrix(tensor), tensor.ndim
    return lambda x: replicator_equation_n_player(x, matrix, players)


def egttools_replicator(game, ctx):
    from scipy.integrate import solve_ivp  # noqa: PLC0415

    gradient = egttools_gradient(game.tensor)
    start = np.full(game.n, 1.0 / game.n)

    def call(horizon):
        return solve_ivp(
            lambda t, x: gradient(x),
            (0.0, float(horizon)),
            start,
            method="LSODA",
            rtol=1e-10,
            atol=1e-12,
        )

    def extract(ode):
        return ode.y[:, -1], int(ode.nfev), {"horizon": float(ode.t[-1]), "ode_status": ode.status}

    return call, extract


def egttools_roots(game, ctx):
    import egttools  # noqa: PLC0415
    from egttools.analytical.utils import find_roots  # noqa: PLC0415

    gradient = egttools_gradient(game.tensor)

    def call():
        egttools.Random.seed(0)
        return find_roots(gradient, game.n, nb_initial_random_points=10)

    def extract(roots):
        if not roots:
            raise Unavailable("no equilibrium returned", "find_roots found no rest point")
        gaps = [dense_payoffs(game.tensor, normalised(r)[0]).max() for r in roots]
        return roots[int(np.argmin(gaps))], None, {"rest_points": len(roots)}

    return call, extract


def gambit_game(tensor):
    """A pygambit strategic game; 2-player games exactly constant-sum (player 1 gets 1 - W)."""
    from fractions import Fraction  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import pygambit as gbt  # noqa: PLC0415

    if tensor.ndim == 2:
        exact = np.vectorize(lambda x: Fraction(float(x)), otypes=[object])(tensor)
        return gbt.Game.from_arrays(exact, 1 - exact)
    return gbt.Game.from_arrays(*[np.moveaxis(tensor, 0, p) for p in range(tensor.ndim)])


def gambit_call(game, method, tol):
    """One pygambit solver call with its default settings (logit: ``maxregret=tol``)."""
    import pygambit as gbt  # noqa: PLC0415

    if method == "lcp":
        return gbt.nash.lcp_solve(game, rational=False)
    if method == "enummixed":
        return gbt.nash.enummixed_solve(game, rational=False)
    if method == "lp":
        return gbt.nash.lp_solve(game, rational=False)
    if method == "gnm":
        return gbt.nash.gnm_solve(game)
    if method == "ipa":
        return gbt.nash.ipa_solve(game)
    if method == "simpdiv":
        return gbt.nash.simpdiv_solve(game.mixed_strategy_profile(rational=True))
    if method == "logit":
        return gbt.nash.logit_solve(game, maxregret=tol)
    raise ValueError(method)


_WORKER_LOOP = """
import json, sys, time
import numpy as np
games = {}
print("ready", flush=True)
for line in sys.stdin:
    path, method, tol = json.loads(line)
    try:
        if path not in games:
            games[path] = gambit_game(np.load(path))
        start = time.perf_counter()
        result = gambit_call(games[path], method, tol)
        reply = {"seconds": time.perf_counter() - start, "equilibria": len(result.equilibria)}
    except Exception as error:
        reply = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(reply), flush=True)
"""


class GambitWorker:
    """A subprocess that makes each pygambit call once before it is timed in this process.

    Some calls never return on these degenerate games and cannot be interrupted in-process; a
    call that takes longer than ``guard_s`` is killed with its worker (the next call starts a
    new one) and recorded as a timeout.
    """

    def __init__(self, guard_s: float):
        self.guard_s = guard_s
        self.process = None

    def _start(self):
        source = inspect.getsource(gambit_game) + inspect.getsource(gambit_call) + _WORKER_LOOP
        self.process = subprocess.Popen(
            [sys.executable, "-c", source],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reply(60.0, "start")

    def _reply(self, timeout: float, what: str) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else None
        if line:
            return line
        self.close()
        if line is None:
            raise Unavailable("timeout", f"{what} did not return within {timeout:g} s (killed)")
        raise Unavailable("error", f"{what}: the worker process died")

    def check(self, path: Path, method: str, tol: float) -> None:
        if self.process is None:
            self._start()
        self.process.stdin.write(json.dumps([str(path), method, float(tol)]) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self._reply(self.guard_s, method))
        if "error" in reply:
            raise Unavailable("error", reply["error"][:300])

    def close(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@dataclasses.dataclass
class Context:
    """What a solver run needs beyond the game: the budget, a scratch folder, the worker."""

    budget: Budget
    workdir: Path
    gambit: GambitWorker


def gambit_guard(method: str) -> Callable:
    def guard(game, ctx, tol):
        path = ctx.workdir / f"{game.name}.npy"
        if not path.exists():
            np.save(path, game.tensor)
        ctx.gambit.check(path, method, tol)

    return guard


def gambit_solver(method: str) -> Callable:
    def make(game, ctx):
        built = gambit_game(game.tensor)

        def call(tol=TOLERANCES[0]):
            return gambit_call(built, method, tol)

        def extract(result):
            if not result.equilibria:
                raise Unavailable("no equilibrium returned", f"{method} returned no profile")
            profile = result.equilibria[0]
            strategies = [[float(profile[s]) for s in p.strategies] for p in built.players]
            extra = profile_extra(strategies)
            extra.update(
                gambit_max_regret=float(profile.max_regret()),
                equilibria_returned=len(result.equilibria),
            )
            return strategies[0], None, extra

        return call, extract

    return make


def nashpy_solver(method: str) -> Callable:
    def make(game, ctx):
        import nashpy  # noqa: PLC0415

        zero_sum = nashpy.Game(game.tensor - 0.5)  # B = -A: the constant-sum game less 1/2

        def call():
            if method == "linear_program":
                return zero_sum.linear_program()
            if method == "lemke_howson":
                return zero_sum.lemke_howson(initial_dropped_label=0)
            return next(iter(getattr(zero_sum, method)()))

        return call, lambda pair: (pair[0], None, profile_extra([pair[0], pair[1]]))

    return make


PLAYER_0 = "player 0's strategy of the profile"
SOLVERS = (
    Solver(
        REFERENCE,
        "ualign_jax",
        "tolerance",
        ualign_solver("optimistic_gradient", "dense"),
        note="ua.solve(DenseGame(W), k, tol=tol): the default method on the same tensor",
    ),
    Solver(
        "ualign_jax optimistic_gradient (population)",
        "ualign_jax",
        "tolerance",
        ualign_solver("optimistic_gradient", "population"),
        note="ua.solve(pop, k, tol=tol): closed-form payoffs, no tensor",
    ),
    Solver(
        "ualign_jax regret_matching_plus (dense)",
        "ualign_jax",
        "tolerance",
        ualign_solver("regret_matching_plus", "dense"),
    ),
    Solver(
        "numpy optimistic_gradient",
        "numpy",
        "tolerance",
        numpy_solver(numpy_optimistic_gradient),
        note="the same adaptive optimistic gradient, a Python loop over NumPy contractions",
    ),
    Solver(
        "numpy regret_matching_plus",
        "numpy",
        "tolerance",
        numpy_solver(numpy_regret_matching_plus),
    ),
    Solver(
        "openspiel PRD (defaults)",
        "open_spiel",
        "iterative",
        openspiel_prd(1e-3, last_iterate=False),
        reports="player 0's average strategy (all players' are equal here)",
        note="projected_replicator_dynamics, dt=1e-3, gamma=1e-6, average of all iterates",
    ),
    Solver(
        "openspiel PRD (dt=1, last iterate)",
        "open_spiel",
        "iterative",
        openspiel_prd(1.0, last_iterate=True),
        reports="player 0's last iterate (all players' are equal here)",
        note="dt=1, gamma=1e-6, average_over_last_n_strategies=1; dt picked from a pilot "
        "over 1e-3..3 on these games",
    ),
    Solver(
        "egttools replicator (LSODA)",
        "egttools",
        "iterative",
        egttools_replicator,
        reports="the ODE state at the horizon (clipped, renormalised)",
        note="egttools' replicator gradient (n-player form for k >= 2) integrated from the "
        "uniform policy by scipy solve_ivp LSODA (rtol 1e-10, atol 1e-12); the searched count "
        "is the horizon, iterations = gradient evaluations",
    ),
    Solver(
        "egttools find_roots",
        "egttools",
        "exact",
        egttools_roots,
        reports="the rest point with the smallest exploitability (chosen outside the timing)",
        note="egttools.analytical.utils.find_roots on the replicator gradient from the n "
        "vertices and 10 random points; rest points of the replicator are not all equilibria",
    ),
    *(
        Solver(
            f"gambit {method}",
            "pygambit",
            "exact",
            gambit_solver(method),
            reports=PLAYER_0,
            note=note,
            two_player_only=two_player,
            guard=gambit_guard(method),
        )
        for method, note, two_player in (
            ("lcp", "lcp_solve(rational=False)", True),
            ("enummixed", "enummixed_solve(rational=False): all extreme equilibria", True),
            ("lp", "lp_solve(rational=False); the game is given exactly constant-sum", True),
            ("gnm", "gnm_solve, default perturbation", False),
            ("ipa", "ipa_solve, default perturbation", False),
            ("simpdiv", "simpdiv_solve from the centroid (rational)", False),
        )
    ),
    Solver(
        "gambit logit",
        "pygambit",
        "tolerance",
        gambit_solver("logit"),
        reports=PLAYER_0,
        note="logit_solve(maxregret=tol): traces the logit QRE path from the centroid",
        guard=gambit_guard("logit"),
    ),
    *(
        Solver(
            f"nashpy {method}",
            "nashpy",
            "exact",
            nashpy_solver(method),
            reports="the row player's strategy",
            note=note,
            two_player_only=True,
        )
        for method, note in (
            ("linear_program", "zero-sum LP (scipy linprog) on W - 1/2"),
            ("support_enumeration", "first equilibrium of support_enumeration()"),
            ("vertex_enumeration", "first equilibrium of vertex_enumeration()"),
            ("lemke_howson", "lemke_howson(initial_dropped_label=0)"),
        )
    ),
)


# -------------------------------------------------------------------------------------- timing


def timed(fn):
    """Seconds for one call of ``fn`` and its result."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def best_of(fn, budget: Budget):
    """Best time of ``min_repeats`` to ``max_repeats`` calls (more while within ``repeat_s``)."""
    best, spent, calls, out = math.inf, 0.0, 0, None
    while calls < budget.max_repeats and (calls < budget.min_repeats or spent < budget.repeat_s):
        seconds, out = timed(fn)
        best, spent, calls = min(best, seconds), spent + seconds, calls + 1
    return best, out


def evaluate(game, extract, raw):
    """(policy, iterations, extra, exploitability), with the extras made JSON-ready."""
    policy, iterations, extra = extract(raw)
    policy, simplex_error = normalised(policy)
    extra = dict(extra)
    if "average_policy" in extra:
        extra["average_exploitability"] = exploitability(game, extra.pop("average_policy"))
    if simplex_error > 1e-12:
        extra["simplex_error"] = simplex_error
    return policy, iterations, extra, exploitability(game, policy)


def entry(reached, seconds, iterations, eps, **more):
    return {
        "reached": bool(reached),
        "time_s": seconds if reached else None,
        "iterations": iterations,
        "exploitability": eps,
        **more,
    }


def measure_tolerance(solver, game, ctx, call, extract):
    out, first_calls = {}, []
    for tol in TOLERANCES:
        if solver.guard is not None:
            solver.guard(game, ctx, tol)
        first, raw = timed(lambda tol=tol: call(tol))
        policy, iterations, extra, eps = evaluate(game, extract, raw)
        if eps > tol:  # stopped at its step cap or short of tol: not timed again
            out[f"{tol:g}"] = entry(False, None, iterations, eps, **extra)
            continue
        wall, raw = best_of(lambda tol=tol: call(tol), ctx.budget)
        policy, iterations, extra, eps = evaluate(game, extract, raw)
        first_calls.append(first - wall)
        out[f"{tol:g}"] = entry(eps <= tol, wall, iterations, eps, **extra)
    excess = float(np.median(first_calls)) if first_calls else None
    key = "compile_s" if solver.library == "ualign_jax" else "first_call_excess_s"
    return out, {key: excess}


def search(call, extract, game, tol, budget, start, fail):
    """Smallest count on a doubling grid from ``start`` with ``ε <= tol``, then bisected.

    ``fail`` is a count known to miss ``tol`` (0 if none). Returns (count or None, tried).
    """
    tried, spent, count = {}, 0.0, start
    while True:
        seconds, raw = timed(lambda count=count: call(count))
        spent += seconds
        tried[count] = evaluate(game, extract, raw)[3]
        if tried[count] <= tol:
            break
        fail = count
        if 2 * count > budget.max_iterations or spent + 2.5 * seconds > budget.search_s:
            return None, tried, fail
        count *= 2
    hit = count
    while hit - fail > max(1, hit // 16) and spent < budget.search_s:
        mid = (hit + fail) // 2
        seconds, raw = timed(lambda mid=mid: call(mid))
        spent += seconds
        tried[mid] = evaluate(game, extract, raw)[3]
        hit, fail = (mid, fail) if tried[mid] <= tol else (hit, mid)
    return hit, tried, fail


def measure_iterative(solver, game, ctx, call, extract):
    out, start, fail = {}, 1, 0
    for tol in TOLERANCES:
        count, tried, fail = search(call, extract, game, tol, ctx.budget, start, fail)
        if count is None:
            largest = max(tried)
            out[f"{tol:g}"] = entry(
                False, None, None, min(tried.values()), largest_count_tried=largest
            )
            start = 2 * largest  # a tighter tolerance is not reached either
            out.update(
                {
                    f"{t:g}": entry(
                        False, None, None, min(tried.values()), largest_count_tried=largest
                    )
                    for t in TOLERANCES
                    if t < tol
                }
            )
            break
        wall, raw = best_of(lambda count=count: call(count), ctx.budget)
        policy, iterations, extra, eps = evaluate(game, extract, raw)
        out[f"{tol:g}"] = entry(
            eps <= tol, wall, count if iterations is None else iterations, eps, count=count, **extra
        )
        start = count
    return out, {}


def measure_exact(solver, game, ctx, call, extract):
    if solver.guard is not None:
        solver.guard(game, ctx, TOLERANCES[-1])
    first, raw = timed(call)
    wall, raw = best_of(call, ctx.budget)
    policy, iterations, extra, eps = evaluate(game, extract, raw)
    out = {f"{tol:g}": entry(eps <= tol, wall, None, eps, **extra) for tol in TOLERANCES}
    return out, {"call_s": wall, "policy": [round(float(p), 6) for p in policy]}


def call_floor(game: Game, budget: Budget) -> float:
    """Seconds of ``ua.solve(dense, k, steps=1)``: the fixed cost of one call, for context."""
    call = lambda: jax.block_until_ready(ua.solve(game.dense, game.k, steps=1))
    call()
    return best_of(call, budget)[0]


MEASURE = {"tolerance": measure_tolerance, "iterative": measure_iterative, "exact": measure_exact}


def run_solver(solver: Solver, game: Game, ctx: Context) -> dict:
    """One row for one game; a missing peer or a failing call is recorded, never raised."""
    record = {
        "library": solver.library,
        "kind": solver.kind,
        "reports": solver.reports,
        "note": solver.note,
    }
    if solver.two_player_only and game.num_players != 2:
        return {**record, "status": "not applicable", "why": "two-player games only"}
    if solver.library != "numpy":
        try:
            importlib.import_module(solver.library)
        except ImportError as error:
            return {**record, "status": "not installed", "why": f"{type(error).__name__}: {error}"}
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            setup_s, (call, extract) = timed(lambda: solver.make(game, ctx))
            tolerances, more = MEASURE[solver.kind](solver, game, ctx, call, extract)
    except Unavailable as why:
        return {**record, "status": why.status, "why": why.note}
    except Exception as error:  # a peer's failure is a result, not a crash
        return {**record, "status": "error", "why": f"{type(error).__name__}: {error}"[:300]}
    messages = sorted({f"{w.category.__name__}: {str(w.message)[:160]}" for w in caught})
    record.update(status="ok", setup_s=setup_s, **more, tolerances=tolerances)
    if messages:
        record["warnings"] = messages[:3]
    return record


def add_ratios(by_solver: dict) -> None:
    reference = by_solver.get(REFERENCE, {}).get("tolerances", {})
    for record in by_solver.values():
        for tol, e in record.get("tolerances", {}).items():
            ref = reference.get(tol, {}).get("time_s")
            e["ratio"] = e["time_s"] / ref if e["time_s"] is not None and ref else None


# ------------------------------------------------------------------------------------ reporting


def library_versions() -> dict:
    out = {}
    for name in DISTRIBUTIONS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def source_revision() -> str | None:
    """The repository's commit, with ``+dirty`` if ualign_jax/ has uncommitted changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "ualign_jax"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return None
    return (head + ("+dirty" if dirty else "")) or None


def device() -> dict:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "jax_device": f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}",
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }


def format_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def cell(record: dict, tol: str, markdown: bool = True) -> str:
    status = record.get("status")
    if status != "ok":
        return {"not applicable": "n/a"}.get(status, status)
    e = record["tolerances"][tol]
    if not e["reached"]:
        count = e.get("largest_count_tried") or e.get("iterations")
        tried = f" at {count} it" if markdown and count else ""
        return f"not reached (ε {e['exploitability']:.1e}{tried})"
    text = format_time(e["time_s"])
    if e.get("ratio") is not None:
        text += f" ({e['ratio']:.3g}x)" if markdown else f"\n{e['ratio']:.3g}x"
    if markdown and e.get("iterations") is not None:
        text += f", {e['iterations']} it"
    return text


def markdown_table(result: dict) -> str:
    """One table per game: time, ratio, iterations and reached ε per tolerance."""
    tols = [f"{t:g}" for t in result["tolerances"]]
    lines = []
    for name, game in result["games"].items():
        lines += [
            f"**{name}** (n = {game['n']}, k = {game['k']}, {game['num_players']} players; "
            f"`ua.solve(..., steps=1)` takes {format_time(game['ualign_call_floor_s'])}): "
            f"{game['description']}.",
            "",
            "| solver | "
            + " | ".join(f"ε≤{t}: time (ratio) | it | ε reached" for t in tols)
            + " |",
            "| --- |" + " ---: | ---: | ---: |" * len(tols),
        ]
        skipped = []
        for solver, record in game["solvers"].items():
            if record["status"] == "not applicable":
                skipped.append(solver)
                continue
            if record["status"] != "ok":
                why = f"{record['status']}: {record.get('why', '')}"
                cells = [why] + [""] * (3 * len(tols) - 1)
                lines.append(f"| {solver} | " + " | ".join(cells) + " |")
                continue
            cells = []
            for tol in tols:
                e = record["tolerances"][tol]
                if e["reached"]:
                    ratio = "" if e.get("ratio") is None else f" ({e['ratio']:.3g}x)"
                    first = format_time(e["time_s"]) + ratio
                elif record.get("call_s") is not None:
                    first = f"not reached (call {format_time(record['call_s'])})"
                else:
                    first = "not reached"
                count = e.get("iterations") or e.get("largest_count_tried")
                count = "" if count is None else f"{count}" + ("" if e["reached"] else " (max)")
                cells += [first, count, f"{e['exploitability']:.1e}"]
            lines.append(f"| {solver} | " + " | ".join(cells) + " |")
        if skipped:
            lines += ["", f"Two-player only, not run here: {', '.join(skipped)}."]
        lines.append("")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    games = list(result["games"])
    tols = [f"{t:g}" for t in result["tolerances"]]
    names = list(result["games"][games[0]]["solvers"])
    columns = [(g, t) for g in games for t in tols]
    values = np.full((len(names), len(columns)), np.nan)
    fig, ax = plt.subplots(figsize=(2.35 * len(columns) + 3.6, 0.46 * len(names) + 2.2))
    for i, name in enumerate(names):
        for j, (g, t) in enumerate(columns):
            record = result["games"][g]["solvers"][name]
            e = record.get("tolerances", {}).get(t, {})
            if e.get("ratio") is not None:
                values[i, j] = np.log10(e["ratio"])
                text = f"{format_time(e['time_s'])}  ({e['ratio']:.3g}x)"
            elif record.get("status") == "ok":
                text = f"not reached (ε {e['exploitability']:.1e})"
                if record.get("call_s") is not None:
                    text += f"\ncall {format_time(record['call_s'])}"
            else:
                text = {"not applicable": "n/a"}.get(record["status"], record["status"])
            dark = abs(values[i, j]) > 1.8  # nan compares False
            color = "white" if dark else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color=color)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.88")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-3, vmax=3, aspect="auto")
    ax.set_xticks(range(len(columns)))
    labels = []
    for g, t in columns:
        info = result["games"][g]
        labels.append(f"{g}\n(n={info['n']}, {info['num_players']} players)\nε ≤ {t}")
    ax.set_xticklabels(labels, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8.5)
    for j in range(1, len(games)):
        ax.axvline(j * len(tols) - 0.5, color="white", lw=3)
    bar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    bar.set_label("log10(time / ualign_jax time); red = slower than ualign_jax", fontsize=8)
    d = result["device"]
    fig.suptitle(
        f"Time to exploitability ≤ tol, ratio to ua.solve on the same dense game "
        f"({result['date']}, {d['machine']}, {d['cpu_count']} CPUs, {result['mode']}; "
        "grey: no time)",
        fontsize=9.5,
        y=0.995,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------- main


def run_game(game: Game, solvers, ctx: Context, log) -> dict:
    by_solver = {}
    for solver in solvers:
        elapsed, record = timed(lambda solver=solver: run_solver(solver, game, ctx))
        by_solver[solver.name] = {**record, "elapsed_s": elapsed}
        log(
            f"{game.name:14s} {solver.name:44s} {elapsed:6.2f} s  "
            f"{cell(record, f'{TOLERANCES[0]:g}')} | {cell(record, f'{TOLERANCES[-1]:g}')}"
        )
    add_ratios(by_solver)
    return {
        "description": game.description,
        "n": game.n,
        "k": game.k,
        "num_players": game.num_players,
        "tensor_entries": int(game.tensor.size),
        "ualign_call_floor_s": call_floor(game, ctx.budget),
        "solvers": by_solver,
    }


def benchmark(quick=False, games=None, solvers=None, log=print) -> dict:
    """The JSON record: every solver (or those named in ``solvers``) on every game."""
    budget = QUICK if quick else FULL
    chosen = make_games(quick, games)
    picked = [s for s in SOLVERS if solvers is None or s.name in solvers]
    start = time.perf_counter()
    result = {
        "date": datetime.date.today().isoformat(),
        "device": device(),
        "versions": library_versions(),
        "ualign_jax_revision": source_revision(),
        "mode": "quick" if quick else "full",
        "dtype": "float64",
        "tolerances": list(TOLERANCES),
        "reference": REFERENCE,
        "budget": dataclasses.asdict(budget),
        "max_steps": MAX_STEPS,
        "games": {},
    }
    with tempfile.TemporaryDirectory() as workdir:
        ctx = Context(budget, Path(workdir), GambitWorker(budget.guard_s))
        try:
            for game in chosen:
                result["games"][game.name] = run_game(game, picked, ctx, log)
        finally:
            ctx.gambit.close()
    result["device"]["load_average_at_end"] = list(os.getloadavg())
    result["total_s"] = time.perf_counter() - start
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two games, small budgets (< 1 min)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    result = benchmark(quick=args.quick)
    tag = "_quick" if args.quick else ""  # a quick run never overwrites the full results
    (RESULTS / f"peers{tag}.json").write_text(json.dumps(result, indent=2))
    plot(result, RESULTS / f"peers{tag}.png")
    print(markdown_table(result))
    print(f"total {result['total_s']:.1f} s")


if __name__ == "__main__":
    main()
