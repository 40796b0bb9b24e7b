"""Training from sampled groups (docs/theory.md §7): the trainer reaches the equilibrium, measured
exactly; ``ualign train`` writes its outputs and refuses bad input with one line."""

import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ualign_jax as ua
from ualign_jax.cli import main

ROOT = Path(__file__).resolve().parent.parent
NETFLIX = ROOT / "ualign_jax" / "bundled" / "00004-00000001.soc"
#: Rock-paper-scissors voters: k = 1 is zero-sum with the uniform policy as its only equilibrium,
#: where plain simultaneous gradient play cycles away to the boundary.
CYCLE = [[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [2.0, 1.0, 3.0]]


def small_run(pop, k, **options):
    settings = dict(steps=2000, eval_every=500, group_size=8, judges=8, groups=32, tol=None)
    return ua.train_population(jax.random.key(0), pop, k, **(settings | options))


@pytest.mark.parametrize("k", [1, 3])
def test_training_reaches_the_equilibrium_of_a_cycle(k):
    run = small_run(ua.RankingPopulation(CYCLE), k)
    assert run.exploitability[-1] <= 0.005, run.exploitability
    np.testing.assert_allclose(run.policy, np.full(3, 1 / 3), atol=0.05)


def test_training_reaches_an_interior_equilibrium_of_a_mixture():
    pop = ua.mallows_mixture(jax.random.key(1), 5, 40, num_components=3, dispersion=0.6)
    run = small_run(pop, 3)
    assert run.exploitability[-1] <= 0.005, run.exploitability
    exact = ua.exploitability(pop, run.policy, 3)  # the run's record is the referee's number
    np.testing.assert_allclose(run.exploitability[-1], exact, rtol=1e-5, atol=1e-7)


def test_trainer_drives_a_pytree_of_parameters_over_prompts():
    """A two-prompt linear policy ``logits = features @ W + b`` (a dict of arrays), k = 2."""
    users = jnp.asarray([CYCLE, [[2.0, 1.0, 0.0], [2.0, 0.0, 1.0], [2.0, 1.0, 0.0]]])  # [P, m, n]
    features = jnp.eye(2)
    trainer = ua.self_play_trainer(optax.sgd(1.0), 2, group_size=6, tau=0.2, reference="average")
    params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}

    def logits_of(p):
        return features @ p["w"] + p["b"]  # [P, n]

    def one(state, key):
        k_s, k_u = jax.random.split(key)
        logits = logits_of(state.params)[:, None, None, :]
        samples = jax.random.categorical(k_s, logits, shape=(2, 16, 6))  # [P, B, G]
        judges = jax.random.randint(k_u, (2, 16, 8), 0, 3)  # [P, B, U], uniform over users
        prompt = jnp.arange(2)[:, None, None, None]
        scores = users[prompt, judges[..., None], samples[:, :, None, :]]  # [P, B, U, G]
        logp = lambda p: ua.table_logprobs(logits_of(p)[:, None, :], samples)  # noqa: E731
        return trainer.step(state, logp, scores)

    keys = jax.random.split(jax.random.key(2), 2000)
    state, losses = jax.lax.scan(one, trainer.init(params), keys)
    assert losses.shape == (2000,) and bool(jnp.all(jnp.isfinite(losses)))
    policy = jax.nn.softmax(logits_of(state.average))
    for prompt in range(2):
        pop = ua.RankingPopulation(users[prompt])
        assert float(ua.exploitability(pop, policy[prompt], 2)) <= 0.005, prompt


def test_readme_training_example_reaches_the_equilibrium(capsys):
    (code,) = re.findall(r"```py\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    exec(compile(code, "README.md", "exec"), {})
    assert float(capsys.readouterr().out) <= 0.005


def test_update_is_one_optax_step_and_averaging_is_exact():
    trainer = ua.self_play_trainer(optax.sgd(0.5), 1, group_size=2, averaging="uniform")
    state = trainer.init(jnp.array([4.0]))
    seen = [4.0]
    for _ in range(3):  # a few eager steps of a quadratic: θ ← θ − 0.5 · 2θ = 0 ... then stays
        state, loss = trainer.update(state, lambda th: jnp.sum((th - 1.0) ** 2))
        seen.append(float(state.params[0]))
    assert seen == [4.0, 1.0, 1.0, 1.0]
    assert float(state.average[0]) == pytest.approx(np.mean(seen[1:]))
    assert int(state.count) == 3
    ema = ua.self_play_trainer(optax.sgd(0.5), 1, group_size=2, averaging=0.75)
    state = ema.update(ema.init(jnp.array([4.0])), lambda th: jnp.sum((th - 1.0) ** 2))[0]
    assert float(state.average[0]) == pytest.approx(0.75 * 4.0 + 0.25 * 1.0)


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        (dict(k=4, group_size=4), "k"),
        (dict(k=1, group_size=1), "group_size"),
        (dict(k=1, group_size=4, tau=0.1), "reference"),
        (dict(k=1, group_size=4, tau=-1.0), "tau"),
        (dict(k=1, group_size=4, averaging="mean"), "averaging"),
        (dict(k=1, group_size=4, averaging=1.0), "averaging"),
        (dict(k=1, group_size=4, choice="worst"), "choice"),
    ],
)
def test_bad_trainer_arguments_name_the_argument(options, argument):
    k = options.pop("k")
    with pytest.raises(ValueError, match=argument):
        ua.self_play_trainer(optax.sgd(0.1), k, **options)


def test_bad_step_inputs_name_the_argument():
    trainer = ua.self_play_trainer(optax.sgd(0.1), 1, group_size=3)
    state = trainer.init(jnp.zeros(3))
    samples = jnp.array([0, 1, 2])
    with pytest.raises(ValueError, match="scores"):
        trainer.step(state, lambda t: ua.table_logprobs(t, samples), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="logprob_fn"):
        trainer.step(state, lambda t: ua.table_logprobs(t, samples[:2]), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="scores"):
        trainer.step(state, lambda t: ua.table_logprobs(t, samples), jnp.full((2, 3), jnp.nan))


# --------------------------------------------------------------------------- ualign train


def run_main(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_policy_curve_and_plot(tmp_path, capsys):
    out = tmp_path / "trained"
    code, stdout, _ = run_main(
        capsys, "train", NETFLIX, "--k", "2", "--out", out, "--json", "--eval-every", "100"
    )
    assert code == 0
    report = json.loads(stdout)
    assert report["reached_tol"] and report["exploitability"] <= 0.005
    saved = json.loads((out / "training.json").read_text())
    assert saved["curve"]["exploitability"][-1] == report["exploitability"]
    policy = json.loads((out / "policy.json").read_text())
    assert policy["k"] == 2 and "self_play_trainer" in policy["method"]
    assert policy["names"][0] == "Shrek (Full-screen)"
    pop = ua.load_population(NETFLIX)
    exact = float(ua.exploitability(pop, jnp.asarray(policy["policy"], pop.dtype), 2))
    assert exact == pytest.approx(report["exploitability"], abs=1e-6)
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trained"]  # no staging left


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["missing.soc", "--k", "2"], "missing.soc"),
        ([NETFLIX, "--k", "0"], "--k"),
        ([NETFLIX, "--k", "16"], "--group-size"),
        ([NETFLIX, "--k", "2", "--group-size", "1"], "--group-size"),
        ([NETFLIX, "--k", "2", "--judges", "0"], "--judges"),
        ([NETFLIX, "--k", "2", "--lr", "nan"], "--lr"),
        ([NETFLIX, "--k", "2", "--tol", "-1"], "--tol"),
    ],
)
def test_train_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, fragment):
    out = tmp_path / "never"
    code, _, err = run_main(capsys, "train", *argv, "--out", out)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ualign: error:") and fragment in lines[0], err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_train_bad_input_as_a_module_exits_2(tmp_path):
    """``python -m ualign_jax.cli`` runs the package's ``__main__``: its errors are still caught."""
    command = [sys.executable, "-m", "ualign_jax.cli", "train", str(NETFLIX), "--k", "3"]
    command += ["--group-size", "3", "--out", str(tmp_path / "never")]
    proc = subprocess.run(command, capture_output=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "--group-size" in lines[0], lines
    assert list(tmp_path.iterdir()) == []


def test_train_population_takes_the_key_first_and_warns_on_the_old_order():
    pop = ua.RankingPopulation([[2.0, 1.0, 0.0], [2.0, 0.0, 1.0]])
    options = {"steps": 20, "eval_every": 20, "tol": None}
    new = ua.train_population(jax.random.key(3), pop, 1, **options)
    with pytest.warns(DeprecationWarning, match="key first"):
        old = ua.train_population(pop, 1, jax.random.key(3), **options)
    np.testing.assert_array_equal(new.policy, old.policy)
