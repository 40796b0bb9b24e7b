"""Damaged and hostile files: every reader fails with one ValueError naming the file.

Targeted cases from a probe of hostile inputs (a flipped bit in a zip header, an encrypted
flag, truncation, deep JSON, ``.npy`` headers declaring huge shapes), then mutated bytes
(bit flips, truncations, insertions, overwrites) of small valid files, deterministic seeds.
A reader may accept a mutated file only if what it returns is valid.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import ualign_jax as ua
from ualign_jax.checkpoint import load_checkpoint, save_checkpoint
from ualign_jax.cli import main
from ualign_jax.files import load_policy_file, load_population
from ualign_jax.preflib import load_preflib

pytestmark = pytest.mark.fuzz  # deselect with -m 'not fuzz'

DATASETS = Path(ua.__file__).parent / "bundled"
NETFLIX = DATASETS / "00004-00000001.soc"
TOI = (
    b"# FILE NAME: mini.toi\n# TITLE: mini\n# DATA TYPE: toi\n# NUMBER ALTERNATIVES: 5\n"
    b"# NUMBER VOTERS: 6\n# ALTERNATIVE NAME 1: a\n# ALTERNATIVE NAME 2: b\n"
    b"3: 2,{4,1}\n2: 5\n1: {1,2,3,4,5}\n"
)
LIKE = {"step": np.asarray(7, np.int32), "x": np.asarray([0.25, 0.75], np.float32)}
META = {"config": {"k": 2, "method": "hedge"}, "format": 1}


def _npz(**arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _checkpoint_bytes(tmp_path) -> bytes:
    path = tmp_path / "seed.npz"
    save_checkpoint(path, LIKE, META)
    return path.read_bytes()


def _central(data: bytes) -> int:
    """Offset of the first central-directory entry of a zip."""
    return data.index(b"PK\x01\x02")


def _set16(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<H", value) + data[offset + 2 :]


def _huge_npy() -> bytes:
    """An .npy whose header declares 10**12 float64 but holds 16 bytes of data."""
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(16)


def _one_line_error(call, path: Path) -> str:
    with pytest.raises(ValueError) as info:
        call(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    return message


def test_targeted_damage_is_one_value_error_naming_the_file(tmp_path):
    checkpoint = _checkpoint_bytes(tmp_path)
    central = _central(checkpoint)
    cases = {
        # compression method 99 in the central directory (zipfile raises NotImplementedError)
        "method.npz": _set16(checkpoint, central + 10, 99),
        # the "encrypted" flag (zipfile raises RuntimeError)
        "encrypted.npz": _set16(checkpoint, central + 8, 1),
        "truncated.npz": checkpoint[: len(checkpoint) // 2],
        "empty.npz": b"",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        _one_line_error(lambda p: load_checkpoint(p, LIKE, META), path)
        _one_line_error(load_policy_file, path)
        _one_line_error(load_population, path)
    deep = tmp_path / "deep.json"  # was RecursionError
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in _one_line_error(load_policy_file, deep)
    huge = tmp_path / "huge.npy"  # was MemoryError
    huge.write_bytes(_huge_npy())
    assert "declares shape (1000000000000,)" in _one_line_error(load_policy_file, huge)
    inside = tmp_path / "huge_inside.npz"  # the same inside an archive
    inside.write_bytes(_npz(policy=np.zeros(2)).replace(_npy(np.zeros(2)), _huge_npy()))
    _one_line_error(load_policy_file, inside)


def test_an_archive_member_declaring_a_huge_size_is_refused_before_unpacking(tmp_path):
    """A zip bomb's member declares its unpacked size; one over the limit is never unpacked."""
    data = _npz(utilities=np.eye(3))
    central = _central(data)
    path = tmp_path / "bomb.npz"
    path.write_bytes(data[: central + 24] + struct.pack("<I", 2**32 - 16) + data[central + 28 :])
    assert "more than the limit" in _one_line_error(load_population, path)


def test_the_cli_reports_a_damaged_policy_in_one_line(tmp_path, capsys):
    path = tmp_path / "policy.npz"
    path.write_bytes(_npz(policy=np.full(3, 1 / 3))[:-30])
    assert main(["evaluate", str(NETFLIX), "--policy", str(path), "--k", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0], err


def _mutations(data: bytes, seed: int, count: int):
    """``count`` damaged copies of ``data``: half the edits near the start or the end (headers)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        out = bytearray(data)
        size = len(out)
        if rng.random() < 0.5:
            position = int(rng.integers(0, min(size, 128)))
        else:
            position = int(rng.integers(max(0, size - 128), size))
        kind = int(rng.integers(4))
        if kind == 0:
            for _ in range(int(rng.integers(1, 4))):
                spot = min(size - 1, position + int(rng.integers(0, 8)))
                out[spot] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            del out[position:]
        elif kind == 2:
            out[position:position] = rng.bytes(int(rng.integers(1, 9)))
        else:
            span = int(rng.integers(1, 9))
            out[position : position + span] = rng.bytes(span)
        yield bytes(out)


def _fuzz(tmp_path, name, data, seed, count, read, check):
    path = tmp_path / name
    outcomes = {"accepted": 0, "refused": 0}
    for mutated in _mutations(data, seed, count):
        path.write_bytes(mutated)
        try:
            result = read(path)
        except ValueError as err:
            message = str(err)
            assert str(path) in message and "\n" not in message, message
            outcomes["refused"] += 1
        else:
            check(result)
            outcomes["accepted"] += 1
    assert outcomes["refused"] > 0
    return outcomes


def _valid_policy(policy):
    assert policy.ndim == 1 and np.all(policy >= 0) and abs(policy.sum() - 1) <= 1e-6


def test_fuzz_preflib(tmp_path):
    def check(pop):
        assert pop.num_responses >= 1 and np.all(np.isfinite(np.asarray(pop.utilities)))

    _fuzz(tmp_path, "n.soc", NETFLIX.read_bytes(), 1, 150, load_preflib, check)
    _fuzz(tmp_path, "m.toi", TOI, 2, 150, load_preflib, check)


def test_fuzz_npz_population(tmp_path):
    data = _npz(utilities=np.eye(3), weights=np.ones(3), names=np.array(["a", "b", "c"]))
    _fuzz(tmp_path, "p.npz", data, 3, 200, load_population, lambda pop: None)


def test_fuzz_policies(tmp_path):
    policy = np.array([0.25, 0.25, 0.5])
    payload = json.dumps({"policy": policy.tolist(), "names": ["a", "b", "c"]}).encode()
    _fuzz(tmp_path, "p.json", payload, 4, 150, load_policy_file, _valid_policy)
    _fuzz(tmp_path, "p.npy", _npy(policy), 5, 150, load_policy_file, _valid_policy)
    _fuzz(tmp_path, "p.npz", _npz(policy=policy), 6, 150, load_policy_file, _valid_policy)


def test_fuzz_checkpoints(tmp_path):
    def check(tree):
        assert int(tree["step"]) == 7 and np.asarray(tree["x"]).shape == (2,)

    data = _checkpoint_bytes(tmp_path)
    _fuzz(tmp_path, "c.npz", data, 7, 250, lambda p: load_checkpoint(p, LIKE, META), check)
