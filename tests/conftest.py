"""Test configuration: float64 for the exactness suites and strict dtype promotion."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

#: Scripts the tests run in subprocesses (one installs jaxtyping's import hook, one needs forced
#: host devices): never import them into the test process (``--doctest-modules`` would).
collect_ignore = ["annotations_check.py", "sharded_check.py"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One folder per test module for the files the bad-input suites write."""
    return tmp_path_factory.mktemp("inputs")
