"""Output folders written whole or not at all, and the clean-up after Ctrl-C.

An output set is written into a hidden staging folder created beside the real target (the
target's own folder, after following symlinks, so the final rename never crosses filesystems),
then swapped in as one directory (:func:`atomic_output`, :func:`write_outputs`). An existing
``--out`` is replaced only if it is a previous ualign output (a folder of plain files holding a
``report.json`` that ualign wrote); anything else is refused before the work starts
(:func:`check_out`), so no user file is ever deleted. On Ctrl-C, :func:`cancelled` stops any
swap still to come and removes the staging folders and checkpoint temporaries.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from .common import UsageError, why

#: Folders being staged and checkpoint files being written (removed on Ctrl-C).
_STAGING: set[Path] = set()
_CHECKPOINTS: set[Path] = set()
#: Held while an output folder is swapped in; Ctrl-C waits for it (never a half swap).
_SWAP_LOCK = threading.Lock()
#: Set on Ctrl-C: a worker still running must not swap its outputs in afterwards.
_CANCELLED = threading.Event()


def _existing_ancestor(path: Path) -> Path:
    for folder in [path, *path.parents]:
        if folder.exists():
            return folder
    return Path(path.anchor or ".")


def _probe_writable(folder: Path, option: str, path: Path) -> None:
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".ualign-probe-", dir=folder))
    except OSError as err:
        raise UsageError(f"{option} {path}: cannot write in {folder} ({why(err)})") from err


def _is_previous_output(folder: Path) -> bool:
    report = folder / "report.json"
    if report.is_symlink() or not report.is_file():
        return False
    try:
        payload = json.loads(report.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(payload, dict) and "ualign_jax" in payload


def _folder_entries(out, option: str) -> tuple[Path, list[str] | None]:
    """``out``'s real path and its entries (``None`` when it does not exist yet); refuses a
    dangling symlink and a path that is not a folder."""
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise UsageError(f"{option} {out}: a symlink to {os.readlink(out)}, which does not exist")
    target = Path(os.path.realpath(out))
    if not target.exists():
        return target, None
    if not target.is_dir():
        raise UsageError(f"{option} {out}: exists and is not a folder")
    return target, sorted(p.name for p in target.iterdir())


def _listing(entries: list[str]) -> str:
    return f"{', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}"


def _check_creatable(target: Path, option: str, out) -> None:
    """The nearest existing ancestor of ``target`` is a folder ualign can write in."""
    ancestor = _existing_ancestor(target.parent)
    if not ancestor.is_dir():
        raise UsageError(f"{option} {out}: {ancestor} exists and is not a folder")
    _probe_writable(ancestor, option, out)


def check_out(out, option: str = "--out") -> Path:
    """``out`` as a folder ualign may write or replace; checked before any work.

    Refuses (UsageError) a dangling symlink, a path under a file, a folder that ualign cannot
    write in, and an existing non-empty folder that is not a previous ualign output.
    """
    target, entries = _folder_entries(out, option)
    if entries is not None:
        if entries and not _is_previous_output(target):
            raise UsageError(
                f"{option} {out}: folder is not empty and is not a previous ualign output "
                f"(holds {_listing(entries)}); choose a new or empty folder"
            )
        odd = [p.name for p in target.iterdir() if p.is_symlink() or not p.is_file()]
        if odd:
            raise UsageError(
                f"{option} {out}: holds {odd[0]!r}, which is not a plain file; "
                "ualign replaces whole output folders, so move it away or choose another folder"
            )
    _check_creatable(target, option, out)
    return Path(out)


def check_appendable_out(out, marker: str, option: str = "--out") -> Path:
    """``out`` as a folder a resumable command adds to in place (no staging, no swap): new,
    empty, or holding ``marker`` (the file its earlier runs left); checked before any work.

    Refuses (UsageError) a dangling symlink, a file, a path under a file, a non-empty folder
    without ``marker`` (its files are not ualign's to overwrite) and a folder ualign cannot
    write in.
    """
    target, entries = _folder_entries(out, option)
    if entries is None:
        _check_creatable(target, option, out)
    elif entries and marker not in entries:
        raise UsageError(
            f"{option} {out}: folder is not empty and holds no earlier run ({marker}) to "
            f"resume (holds {_listing(entries)}); choose a new or empty folder"
        )
    else:
        _probe_writable(target, option, out)
    return Path(out)


def check_checkpoint(path) -> Path:
    """``--checkpoint`` as a file that can be read (if present) and written; checked up front."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise UsageError(f"--checkpoint {path}: a symlink to {os.readlink(path)}, which is missing")
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():
        raise UsageError(f"--checkpoint {path}: exists and is not a file")
    ancestor = _existing_ancestor(target.parent)
    if not ancestor.is_dir():
        raise UsageError(f"--checkpoint {path}: {ancestor} exists and is not a folder")
    _probe_writable(ancestor, "--checkpoint", path)
    return path


def track_checkpoint(path) -> None:
    """Remove ``path``'s half-written temporaries if the run is interrupted."""
    _CHECKPOINTS.add(Path(os.path.realpath(path)))


def replaces_previous(out) -> bool:
    """Whether writing ``out`` will replace a previous (non-empty) output folder."""
    target = Path(os.path.realpath(out))
    return target.is_dir() and any(target.iterdir())


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False  # EINVAL/ENOSYS (filesystem without exchange): fall back to two renames


def _swap_in(staging: Path, target: Path) -> None:
    """Make ``staging`` the folder ``target`` (replacing a previous one) in one step."""
    with _SWAP_LOCK:
        if _CANCELLED.is_set():
            raise KeyboardInterrupt
        if not target.exists():
            os.rename(staging, target)
            return
        if _exchange(staging, target):  # staging now holds the old outputs
            shutil.rmtree(staging, ignore_errors=True)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        _STAGING.add(old)
        os.rename(target, old)
        try:
            os.rename(staging, target)
        except OSError:
            os.rename(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
        _STAGING.discard(old)


class OutputError(UsageError):
    """Writing the outputs failed; ``kept`` is where the finished results are, if anywhere."""

    def __init__(self, message: str, kept: Path | None = None):
        super().__init__(message)
        self.kept = kept


@contextlib.contextmanager
def atomic_output(out):
    """Yield a staging folder; when the block ends, swap it in as ``out`` (all files or none).

    The staging folder lies beside the real target (so the swap never crosses filesystems). A
    failure while writing raises :class:`OutputError`; one while swapping keeps the finished
    staging folder and names it. Write a ``report.json`` holding ``provenance()`` so that a later
    run may replace the folder.
    """
    out = check_out(out)
    target = Path(os.path.realpath(out))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as err:
        raise UsageError(f"--out {out}: cannot write in {target.parent} ({why(err)})") from err
    _STAGING.add(staging)
    kept = False
    try:
        try:
            yield staging
        except OSError as err:
            raise OutputError(f"--out {out}: writing the results failed ({why(err)})") from err
        try:
            _swap_in(staging, target)
        except OSError as err:
            kept = True
            raise OutputError(
                f"--out {out}: could not move the results into place ({why(err)}); "
                f"they are in {staging}",
                kept=staging,
            ) from err
    finally:
        _STAGING.discard(staging)
        if not kept:
            shutil.rmtree(staging, ignore_errors=True)


def write_outputs(out, write) -> None:
    """``write(folder)`` into a staging folder swapped in as ``out`` (see :func:`atomic_output`).

    If writing fails (a full or read-only disk), the results are written again into a new folder
    in the system's temporary directory and the one-line error says where.
    """
    try:
        with atomic_output(out) as staging:
            write(staging)
    except OutputError as err:
        if err.kept is not None:
            raise
        try:
            fallback = Path(tempfile.mkdtemp(prefix="ualign-results-"))
            write(fallback)
        except OSError as again:
            raise UsageError(f"{err}; keeping them elsewhere failed too ({why(again)})") from err
        raise UsageError(f"{err}; the finished results are in {fallback}") from err


def publish(report: dict, out, write, outputs) -> dict:
    """Write a command's results with :func:`write_outputs` and record in ``report`` whether
    they replaced a previous output folder and the paths of the files written (``outputs``)."""
    report["replaced_previous_output"] = replaces_previous(out)
    write_outputs(out, write)
    report["outputs"] = [str(Path(out) / name) for name in outputs]
    return report


def _remove_partial_files() -> None:
    """Delete staging folders and checkpoint temporaries (after Ctrl-C)."""
    for folder in list(_STAGING):
        shutil.rmtree(folder, ignore_errors=True)
    for checkpoint in list(_CHECKPOINTS):
        for temporary in checkpoint.parent.glob(f".{checkpoint.name}-*"):
            with contextlib.suppress(OSError):
                temporary.unlink()


def stop_if_cancelled() -> None:
    """Raise KeyboardInterrupt in a worker whose run was interrupted (call between units of work
    that a long command commits one by one, so an abandoned worker stops adding to them)."""
    if _CANCELLED.is_set():
        raise KeyboardInterrupt


def start_run() -> None:
    """Forget an earlier run's cancellation (``main`` may be called again in one process)."""
    _CANCELLED.clear()


@contextlib.contextmanager
def cancelled():
    """Ctrl-C: no output is swapped in from now on; waits (at most 10 s each) for a swap or a
    checkpoint write under way, removes the partial files, and holds both locks while the block
    runs, so no checkpoint write starts meanwhile (exit inside it to leave nothing behind)."""
    _CANCELLED.set()
    # A checkpoint can be under way only if its module was imported (it imports JAX: not here).
    checkpoint = sys.modules.get("ualign_jax.checkpoint")
    locks = [_SWAP_LOCK] + ([checkpoint.SAVE_LOCK] if checkpoint is not None else [])
    with contextlib.ExitStack() as held:
        for lock in locks:  # never leave a half-swapped folder or a checkpoint temporary
            if lock.acquire(timeout=10):
                held.callback(lock.release)
        _remove_partial_files()
        yield
