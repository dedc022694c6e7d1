"""instar convert -O vhdx -o subformat=..., block_size=... against the live
`qemu-img convert` with the same arguments.

The outputs must be the same bytes but for what instar's vhdx writer
always writes differently (the creator, the headers' GUIDs, sequence
numbers and checksums, the disk ID, and the log, which qemu leaves stale
entries in): same file size, same BAT and metadata, same info fields,
`qemu-img check` clean, the same data back as raw, and no more allocated
than qemu-img's.
"""
import os
import struct
import subprocess

import pytest

from conftest import listing
from convert_compare import first_difference, run_both
from test_convert import _alloc, _info, _raw_of, _run, inputs  # noqa: F401

MiB = 1 << 20
SOURCES = ["small", "multi", "zeros", "zeros-qcow2", "zeros-vhdx", "chain"]
SHAPES = ["subformat=fixed", "block_size=1M", "block_size=2M,subformat=fixed",
          "block_size=1536k", "block_size=32M,subformat=fixed",
          "block_size=256M", "subformat=dynamic,block_size=0"]
METADATA_GUID = bytes.fromhex("06a27c8b90479a4bb8fe575f050f886e")


def _masked(path):
    """What instar's vhdx writer writes differently, by design: the
    creator, the headers' checksums, sequence numbers and GUIDs, the log
    (qemu leaves stale entries there) and the disk ID."""
    masked = [(8, 520), (MiB, 2 * MiB)]
    masked += [(h + 4, h + 48) for h in (64 << 10, 128 << 10)]
    with open(path, "rb") as f:
        f.seek(192 << 10)
        rt = f.read(64 << 10)
    for e in range(struct.unpack_from("<I", rt, 8)[0]):
        entry = rt[16 + 32 * e:48 + 32 * e]
        if entry[:16] == METADATA_GUID:
            meta = struct.unpack_from("<Q", entry, 16)[0]
            masked.append((meta + 0x10010, meta + 0x10020))
    return masked


def _same_as_qemu(qemu_img, q_out, i_out, tmp_path):
    qi, ii = _info(qemu_img, q_out, "vhdx"), _info(qemu_img, i_out, "vhdx")
    for key in ("format", "virtual-size", "cluster-size"):
        assert ii[key] == qi[key], key
    check = lambda p: subprocess.run([qemu_img, "check", "-f", "vhdx", p],
                                     capture_output=True).returncode
    assert check(i_out) == check(q_out) == 0
    assert (_raw_of(qemu_img, i_out, "vhdx", str(tmp_path / "i.raw")) ==
            _raw_of(qemu_img, q_out, "vhdx", str(tmp_path / "q.raw")))
    assert os.path.getsize(i_out) == os.path.getsize(q_out)
    assert first_difference(i_out, q_out, _masked(q_out)) is None
    assert _alloc(i_out) <= _alloc(q_out), \
        f"instar allocated {_alloc(i_out)}, qemu-img {_alloc(q_out)}"
    return ii


@pytest.mark.parametrize("shape,sparse", [(s, None) for s in SHAPES] + [
    ("subformat=fixed", "0"), ("block_size=1M", "0"),
    ("block_size=2M,subformat=fixed", "0")])
@pytest.mark.parametrize("src", SOURCES)
def test_shape_matches_qemu(src, shape, sparse, inputs, instar_bin, qemu_img,
                            tmp_path):
    args = ["-O", "vhdx", "-o", shape] + (["-S", sparse] if sparse else [])
    q_out, i_out = run_both(qemu_img, instar_bin, args, inputs[src],
                            tmp_path, "vhdx")
    _same_as_qemu(qemu_img, q_out, i_out, tmp_path)


@pytest.mark.parametrize("value,block", [
    ("1", MiB), ("768k", MiB), ("1536k", 2 * MiB), ("1048577", 2 * MiB),
    ("300M", 256 * MiB), ("16G", 256 * MiB), ("0", 8 * MiB),
    ("18446744073709551615", 8 * MiB)])
def test_block_size_is_rounded_and_capped_like_qemu(value, block, inputs,
                                                    instar_bin, qemu_img,
                                                    tmp_path):
    """qemu rounds block_size up to a MiB (wrapping near 2^64, where 0
    means "from the size"), then caps it at 256 MiB."""
    q_out, i_out = run_both(qemu_img, instar_bin,
                            ["-O", "vhdx", "-o", f"block_size={value}"],
                            inputs["multi"], tmp_path, "vhdx")
    ii = _same_as_qemu(qemu_img, q_out, i_out, tmp_path)
    assert ii["cluster-size"] == block


@pytest.mark.parametrize("value", ["3M", "2621440", "100M"])
def test_block_size_not_a_power_of_two_fails_like_qemu(value, inputs,
                                                       instar_bin, qemu_img,
                                                       tmp_path):
    args = ["-O", "vhdx", "-o", f"block_size={value}", inputs["small"]]
    q = _run(qemu_img, args + [str(tmp_path / "q.vhdx")])
    i = _run(instar_bin, args + [str(tmp_path / "i.vhdx")])
    assert q.returncode == i.returncode == 1
    assert b"Block size must be a power of two" in q.stderr
    assert b"Block size must be a power of two" in i.stderr
    assert not (tmp_path / "i.vhdx").exists()  # qemu-img leaves its file


@pytest.mark.parametrize("shape", ["block_size=1M", "block_size=2M",
                                   "block_size=1M,subformat=fixed"])
def test_empty_disk_bat_follows_the_block_size(shape, inputs, instar_bin,
                                               qemu_img, tmp_path):
    """An empty disk's BAT is (2^32 - 1) / chunk ratio entries, as qemu's
    32-bit arithmetic makes it (8 MiB with 1 MiB blocks, 16 MiB with
    2 MiB blocks), left a hole."""
    q_out, i_out = run_both(qemu_img, instar_bin,
                            ["-O", "vhdx", "-o", shape], inputs["empty"],
                            tmp_path, "vhdx")
    _same_as_qemu(qemu_img, q_out, i_out, tmp_path)


@pytest.mark.divergence
def test_empty_disk_with_256m_blocks_is_refused(inputs, instar_bin, qemu_img,
                                                tmp_path):
    """qemu-img fails to write the 2 GiB BAT it computes (and cannot read
    one), exits 1 and leaves a 2 GiB file; instar refuses up front and
    leaves nothing."""
    args = ["-O", "vhdx", "-o", "block_size=256M", inputs["empty"]]
    q = _run(qemu_img, args + [str(tmp_path / "q.vhdx")])
    assert q.returncode == 1
    os.unlink(tmp_path / "q.vhdx")
    i = _run(instar_bin, args + [str(tmp_path / "i.vhdx")])
    assert i.returncode == 1
    assert b"256 MiB blocks" in i.stderr, i.stderr
    assert listing(tmp_path) == []
