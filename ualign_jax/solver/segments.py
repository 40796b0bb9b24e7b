"""A run in segments with its state saved between them, resumable after an interruption.

Each segment is one jitted loop (``loop.advance_one``); after it the state is written with
:func:`ualign_jax.checkpoint.save_checkpoint`. A run that finds its checkpoint resumes from it
and ends where an uninterrupted run ends, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .. import checkpoint as checkpoints  # looked up per call: tests may replace the writer
from .._validation import ITERATE_TOLERANCE
from .loop import RunConfig, RunState, advance_one, finish_one, init_one, map_run

__all__ = ["DEFAULT_CHECKPOINT_EVERY", "solve_in_segments", "segment_ends", "check_saved"]

#: Steps between checkpoints when ``solve`` is given a checkpoint path.
DEFAULT_CHECKPOINT_EVERY = 1000
#: Version of the saved state's layout (in the checkpoint's metadata).
CHECKPOINT_FORMAT = 3


def segment_ends(first: int, steps: int, every: int) -> list[int]:
    """Where a run from step ``first`` stops to save: ``every`` steps apart, then ``steps``.

    Example:
        >>> segment_ends(0, 25, 10), segment_ends(14, 25, 10)
        ([10, 20, 25], [20, 25])
    """
    return [*range(first - first % every + every, steps, every), steps]


def solve_in_segments(pop, config: RunConfig, checkpoint, every: int | None):
    """The run in segments of ``every`` steps, the state saved after each (resumed if saved)."""
    every = every or DEFAULT_CHECKPOINT_EVERY
    metadata = {
        "config": config._asdict(),
        "population": checkpoints.fingerprint(pop),
        "format": CHECKPOINT_FORMAT,
    }
    state = map_run(init_one, pop, config=config)
    if Path(checkpoint).exists():
        state = checkpoints.load_checkpoint(
            checkpoint, state, metadata, check=lambda saved: check_saved(saved, config)
        )
    start = int(jnp.max(state.step))
    for until in segment_ends(start, config.steps, every):
        if start >= until or (config.tol is not None and bool(jnp.all(state.done))):
            break
        state = map_run(advance_one, pop, state, config=config, length=until - start)
        start = until
        checkpoints.save_checkpoint(checkpoint, state, metadata)
    return map_run(finish_one, pop, state, config=config)


def check_saved(state: RunState, config: RunConfig) -> None:
    """Refuse a saved state no run of ``config`` reaches (a damaged or hand-edited checkpoint):
    ``0 <= step <= steps``; the last iterate and the kept iterates in use on the simplex (to
    ``ITERATE_TOLERANCE``, as ``loop.on_simplex``), their weights nonnegative, the unused
    slots zero."""
    step = np.asarray(state.step)
    if step.min() < 0 or step.max() > config.steps:
        bad = int(step.min() if step.min() < 0 else step.max())
        raise ValueError(f"step {bad} is outside 0..{config.steps} (the run's steps)")
    last = np.asarray(state.last)
    if np.any(last < 0) or np.any(np.abs(last.sum(-1) - 1) > ITERATE_TOLERANCE):
        raise ValueError("the last iterate is not a probability vector")
    kept = np.asarray(state.kept)
    in_use = np.arange(kept.shape[-2]) < step[..., None]
    sums = kept.sum(-1)
    off = np.abs(sums - 1) > ITERATE_TOLERANCE
    if np.any(kept < 0) or np.any(np.where(in_use, off, sums != 0)):
        raise ValueError("the kept iterates are not probability vectors (or unused slots not 0)")
    weights = np.asarray(state.kept_weight)
    if np.any(weights < 0) or np.any(np.where(in_use, False, weights != 0)):
        raise ValueError("the kept weights are negative (or unused slots not 0)")
