"""Reading untrusted files with bounded memory: bytes, JSON, ``.npy`` and ``.npz``.

Every reader of a user's file (PrefLib text, ``.npz`` populations, policies, checkpoints) goes
through these functions, so a damaged or hostile file fails the same way: a ``ValueError`` whose
message starts with the file's path and says what is wrong, never a ``BadZipFile``,
``NotImplementedError`` (an unknown compression), ``RuntimeError`` (an encrypted member),
``RecursionError`` (deeply nested JSON) or ``MemoryError`` (an ``.npy`` header declaring a huge
shape). A missing file is a ``FileNotFoundError`` naming it.

Memory follows the bytes actually present: an array's declared size must match the bytes its
member holds, and nothing larger than ``max_bytes`` is read (checked before allocating).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

#: Largest file, or array inside an archive, any reader reads (2 GiB).
MAX_FILE_BYTES = 2**31
#: Largest ``.npy`` header accepted (numpy's own default).
MAX_HEADER_BYTES = 10_000
#: Most members an ``.npz`` archive may hold.
MAX_MEMBERS = 256
#: Array element types a file may hold: bool, integers, floats, text, bytes.
ARRAY_KINDS = "biufUS"

# What the standard library and numpy raise on damaged bytes (zip headers, deflate streams,
# CRCs, encrypted or unknown-compression members, .npy headers tokenized and parsed by
# ast.literal_eval).
_DAMAGED = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    OverflowError,
    SyntaxError,
    UnicodeError,
    NotImplementedError,
    RuntimeError,
    MemoryError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    tokenize.TokenError,
)


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file")
    return path


def read_bytes(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The contents of ``path``, refused (before reading) when larger than ``max_bytes``."""
    path = _existing(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ValueError(f"{path}: {size:,} bytes, more than the limit {max_bytes:,}")
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except ValueError:
        raise
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({_reason(err)})") from err
    if len(data) > max_bytes:
        raise ValueError(f"{path}: more than the limit of {max_bytes:,} bytes")
    return data


def read_text(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> str:
    """``path`` decoded as UTF-8 (a leading byte-order mark is dropped)."""
    data = read_bytes(path, max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err


def read_json(path: str | os.PathLike, max_bytes: int = 2**26):
    """The JSON value in ``path`` (at most ``max_bytes``; nesting too deep is refused)."""
    text = read_text(path, max_bytes)
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, or an integer with too many digits
        raise ValueError(f"{path}: not valid JSON ({_reason(err)})") from err


def _read_array(file, size: int, where: str, max_bytes: int) -> np.ndarray:
    """One ``.npy`` array from ``file`` holding ``size`` bytes in all; checked before reading."""
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(file, MAX_HEADER_BYTES)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(file, MAX_HEADER_BYTES)
    else:
        raise ValueError(f"{where}: unsupported .npy format version {version}")
    if dtype.hasobject or dtype.fields is not None or dtype.shape or dtype.kind not in ARRAY_KINDS:
        raise ValueError(f"{where}: unsupported element type {dtype} (numbers or text only)")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    held = size - file.tell()
    if nbytes != held:
        raise ValueError(
            f"{where}: header declares shape {shape} of {dtype} ({nbytes:,} bytes) but "
            f"{held:,} bytes of data follow"
        )
    if nbytes > max_bytes:
        raise ValueError(f"{where}: {nbytes:,} bytes of data, more than the limit {max_bytes:,}")
    buffer = bytearray(nbytes)
    if file.readinto(buffer) != nbytes:
        raise ValueError(f"{where}: truncated array data")
    array = np.frombuffer(buffer, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C")


def read_npy(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> np.ndarray:
    """The array in an ``.npy`` file, its declared shape checked against its size first."""
    path = _existing(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            return _read_array(file, size, str(path), max_bytes)
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable .npy array ({_reason(err)})") from err
    except _DAMAGED as err:
        raise ValueError(f"{path}: not a readable .npy array ({_reason(err)})") from err


class NpzArchive:
    """An open ``.npz``: its keys, each array's header, and each array (all checked)."""

    def __init__(self, path: Path, archive: zipfile.ZipFile, max_bytes: int):
        self.path, self._zip, self._max_bytes = path, archive, max_bytes
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ValueError(f"{path}: {len(infos)} members, more than {MAX_MEMBERS}")
        self._members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if key in self._members:
                raise ValueError(f"{path}: the archive holds {key!r} twice")
            if info.file_size > max_bytes:
                raise ValueError(
                    f"{path}: {key!r} unpacks to {info.file_size:,} bytes, more than the "
                    f"limit {max_bytes:,}"
                )
            self._members[key] = info

    @property
    def keys(self) -> list[str]:
        return list(self._members)

    def _open(self, key: str):
        if key not in self._members:
            raise ValueError(f"{self.path}: no array {key!r} in the archive")
        return self._zip.open(self._members[key])

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """``(shape, dtype)`` of ``key``, from its header alone."""
        try:
            with self._open(key) as file:
                version = np.lib.format.read_magic(file)
                read = {
                    (1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0,
                }.get(version)
                if read is None:
                    raise ValueError(f"unsupported .npy format version {version}")
                shape, _, dtype = read(file, MAX_HEADER_BYTES)
                return shape, dtype
        except _DAMAGED as err:
            raise self._error(key, err) from err

    def array(self, key: str) -> np.ndarray:
        """The array ``key``; its declared size is checked against the member's before reading."""
        try:
            with self._open(key) as file:
                where = f"{self.path}: {key!r}"
                return _read_array(file, self._members[key].file_size, where, self._max_bytes)
        except _DAMAGED as err:
            raise self._error(key, err) from err

    def _error(self, key: str, err: BaseException) -> ValueError:
        if isinstance(err, ValueError) and str(err).startswith(str(self.path)):
            return err
        return ValueError(f"{self.path}: cannot read {key!r} ({_reason(err)})")


@contextlib.contextmanager
def open_npz(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES):
    """Open ``path`` as an ``.npz`` archive (a :class:`NpzArchive`); damage is a ValueError."""
    path = _existing(path)
    try:
        archive = zipfile.ZipFile(path)
    except _DAMAGED as err:
        raise ValueError(f"{path}: not a readable .npz archive ({_reason(err)})") from err
    with archive:
        yield NpzArchive(path, archive, max_bytes)
