"""Test configuration: float64 for the exactness suites and strict dtype promotion."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

#: Scripts the tests run in subprocesses (one installs jaxtyping's import hook, one needs forced
#: host devices): never import them into the test process (``--doctest-modules`` would).
collect_ignore = ["annotations_check.py", "sharded_check.py"]


@pytest.fixture
def force_ranking_engine(monkeypatch):
    """``force_ranking_engine("scan")`` makes the ranking payoffs use that engine until the test
    ends. Compiled programs are cached per argument, not per engine, so caches are cleared at
    each switch and afterwards."""

    from ualign_jax import payoffs  # after the configuration above

    def force(engine: str) -> None:
        monkeypatch.setattr(payoffs, "RANKING_ENGINE", engine)
        jax.clear_caches()

    yield force
    monkeypatch.undo()
    jax.clear_caches()
