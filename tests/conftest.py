"""Test configuration: float64 for the exactness suites, strict dtype promotion, and programs
compiled with less machine-code optimisation (below)."""

import os

import jax
import pytest

#: The tests compile about 3,500 programs and spend most of their time doing so. XLA's backend
#: (LLVM) optimisation level 0 compiles them about a fifth faster; the programs (HLO, after
#: XLA's own passes) are the same, the machine code less optimised, so results differ from the
#: default compilation by rounding only (benchmarks/RESULTS.md, "The default test suite").
#: Set UALIGN_TEST_FULL_OPTIMIZATION=1 to test with XLA's default. Subprocesses inherit it.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
if os.environ.get("UALIGN_TEST_FULL_OPTIMIZATION") != "1":  # before any array exists
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

#: Scripts the tests run in subprocesses (one installs jaxtyping's import hook, one needs forced
#: host devices): never import them into the test process (``--doctest-modules`` would).
collect_ignore = ["annotations_check.py", "sharded_check.py"]


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker more than this process's cores. A worker waiting on a subprocess,
    or compiling on fewer threads than it has, leaves a core idle that the extra one uses (2
    cores: 318.8 s against 344.8 s with two workers, run side by side; RESULTS.md).
    PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) + 1


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One folder per test module for the files the bad-input suites write."""
    return tmp_path_factory.mktemp("inputs")


@pytest.fixture(scope="session")
def forced_devices_env():
    """``env(n)``: this process's environment for a subprocess with ``n`` forced host devices
    (the tests' XLA flags kept), warnings off."""

    def env(devices: int) -> dict:
        flags = (
            f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
        )
        return {**os.environ, "XLA_FLAGS": flags.strip(), "PYTHONWARNINGS": "ignore"}

    return env
