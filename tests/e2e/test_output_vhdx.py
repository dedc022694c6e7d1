"""vhdx output, byte for byte against the live `qemu-img dd -O vhdx`.

For every window of test_output_formats.py both files must be identical
except where qemu's bytes are random, time- or history-dependent or name
the creator (../shared/design/writers.md 5.2, 8.6):

  * the creator string of the file type identifier (qemu: "QEMU v7.2.22",
    instar: "instar VERSION");
  * in both headers the checksum, the sequence number, FileWriteGuid and
    DataWriteGuid (every other header field must be equal to qemu's
    current header's, the reserved bytes included);
  * the log region: qemu leaves stale entries of its own writes (LogGuid
    is zero, so nobody replays them); instar's log is empty (zeros);
  * the Virtual Disk ID (page 83 data) in the metadata region.

Everything else (region tables, metadata table and items, the BAT with its
offsets and states, the gaps, every payload byte) must be the same bytes.
The headers instar writes are checked on their own: valid CRC-32C, header
2 current, the GUIDs the same in both and non-zero.
"""
import os
import struct
import subprocess

import pytest

from conftest import listing, run_dd
from test_output_formats import WINDOWS, _id
from malformed_vhdx import crc32c

KiB = 1 << 10
MiB = 1 << 20
TiB = 1 << 40

H1, H2 = 64 * KiB, 128 * KiB
HEADER = 4096
LOG = (MiB, 2 * MiB)


def _metadata_offset(path):
    """Where region table 1 puts the metadata region."""
    with open(path, "rb") as f:
        rt = os.pread(f.fileno(), 80, 192 * KiB)
    return struct.unpack_from("<Q", rt, 48 + 16)[0]


def _masks(meta):
    """The byte ranges allowed to differ (see the module docstring)."""
    page83 = meta + 64 * KiB + 16
    return [(8, 8 + 512), (H1 + 4, H1 + 48), (H2 + 4, H2 + 48), LOG,
            (page83, page83 + 16)]


def _compare_masked(q_path, i_path, masks, chunk=16 * MiB):
    """Asserts the files are equal outside masks; returns nothing."""
    size = os.path.getsize(q_path)
    assert os.path.getsize(i_path) == size
    with open(q_path, "rb") as q, open(i_path, "rb") as i:
        pos = 0
        while pos < size:
            n = min(chunk, size - pos)
            a = bytearray(os.pread(q.fileno(), n, pos))
            b = bytearray(os.pread(i.fileno(), n, pos))
            for lo, hi in masks:
                lo, hi = max(lo, pos), min(hi, pos + n)
                if lo < hi:
                    a[lo - pos:hi - pos] = bytes(hi - lo)
                    b[lo - pos:hi - pos] = bytes(hi - lo)
            if a != b:
                at = next(k for k in range(n) if a[k] != b[k])
                pytest.fail(f"byte {pos + at}: qemu {a[at]:#x}, "
                            f"instar {b[at]:#x}")
            pos += n


def _header(f, off):
    return os.pread(f.fileno(), HEADER, off)


def _check_headers(q_path, i_path):
    """instar's headers: valid, header 2 current, GUIDs shared and random,
    every other field as in qemu's current header."""
    with open(q_path, "rb") as q, open(i_path, "rb") as i:
        qh = [_header(q, H1), _header(q, H2)]
        ih = [_header(i, H1), _header(i, H2)]
    qseq = [struct.unpack_from("<Q", h, 8)[0] for h in qh]
    qcur = qh[qseq[1] > qseq[0]]
    for h in ih:
        assert h[:4] == b"head"
        zeroed = h[:4] + bytes(4) + h[8:]
        assert struct.unpack_from("<I", h, 4)[0] == crc32c(zeroed)
        # LogGuid, LogVersion, Version, LogLength, LogOffset, reserved
        assert h[48:] == qcur[48:]
    assert h[48:64] == bytes(16)  # LogGuid zero: nothing to replay
    seq = [struct.unpack_from("<Q", h, 8)[0] for h in ih]
    assert seq[1] == seq[0] + 1
    assert ih[0][16:48] == ih[1][16:48]
    file_guid, data_guid = ih[0][16:32], ih[0][32:48]
    assert file_guid != data_guid
    for g in (file_guid, data_guid):
        assert g != bytes(16)
        assert g[7] >> 4 == 4 and g[8] >> 6 == 2  # version 4 GUID


def _check_identifier(i_path, instar_bin):
    version = subprocess.run([instar_bin, "--version"], check=True,
                             capture_output=True, text=True).stdout.split()[1]
    with open(i_path, "rb") as f:
        ident = os.pread(f.fileno(), 64 * KiB, 0)
    creator = f"instar {version}".encode("utf-16-le")
    assert ident[:8] == b"vhdxfile"
    assert ident[8:8 + len(creator)] == creator
    assert ident[8 + len(creator):] == bytes(64 * KiB - 8 - len(creator))


def _allocated(path):
    return os.stat(path).st_blocks * 512


@pytest.mark.parametrize("win", WINDOWS, ids=[_id(w) for w in WINDOWS])
def test_vhdx_bytes_match_qemu(win, images, instar_bin, qemu_img, dirs):
    name, extra = win
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, "o.vhdx"), os.path.join(idir, "o.vhdx")
    args = ["-O", "vhdx", f"if={images[name]}"] + extra
    q = run_dd(qemu_img, args + [f"of={q_out}"])
    i = run_dd(instar_bin, args + [f"of={i_out}"])
    assert q.rc == i.rc == 0, (q, i)
    meta = _metadata_offset(q_out)
    assert _metadata_offset(i_out) == meta
    _compare_masked(q_out, i_out, _masks(meta))
    _check_headers(q_out, i_out)
    _check_identifier(i_out, instar_bin)
    with open(i_out, "rb") as f:
        assert os.pread(f.fileno(), LOG[1] - LOG[0], LOG[0]) == bytes(MiB)
        disk_id = os.pread(f.fileno(), 16, meta + 64 * KiB + 16)
    assert disk_id != bytes(16)
    if meta == 66 * MiB:
        # The empty disk: qemu writes its 64 MiB BAT of zeros, instar
        # leaves it a hole (same bytes, 71 MiB file, writers.md 5.8).
        assert os.path.getsize(i_out) == 74448896
        assert _allocated(i_out) < 4 * MiB


def test_vhdx_runs_differ_only_in_random_fields(images, instar_bin, dirs):
    """Two runs: same bytes but for the GUIDs, sequence numbers and
    checksums (the entropy differs per run)."""
    _, idir = dirs
    outs = [os.path.join(idir, f"o{k}.vhdx") for k in range(2)]
    for o in outs:
        r = run_dd(instar_bin, ["-O", "vhdx", f"if={images['multi']}",
                                f"of={o}", "bs=1M"])
        assert r.rc == 0, r
    meta = _metadata_offset(outs[0])
    _compare_masked(outs[0], outs[1],
                    [(H1 + 4, H1 + 48), (H2 + 4, H2 + 48),
                     (meta + 64 * KiB + 16, meta + 64 * KiB + 32)])
    with open(outs[0], "rb") as a, open(outs[1], "rb") as b:
        assert _header(a, H2)[16:48] != _header(b, H2)[16:48]


def _too_large(instar_bin, qemu_img, dirs, src, fmt):
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, "o.vhdx"), os.path.join(idir, "o.vhdx")
    args = ["-f", fmt, "-O", "vhdx", f"if={src}", "bs=1M"]
    q = run_dd(qemu_img, args + [f"of={q_out}"])
    i = run_dd(instar_bin, args + [f"of={i_out}"])
    assert q.rc == i.rc == 1, (q, i)
    assert "max of 64TB" in q.stderr
    assert "too large" in i.stderr and "vhdx" in i.stderr, i.stderr
    # qemu leaves an empty o.vhdx behind; instar's output is atomic.
    assert listing(idir) == []


def test_vhdx_over_64_tib_refused_sparse_raw(instar_bin, qemu_img, dirs,
                                            tmp_path):
    """qemu-img refuses a vhdx over 64 TiB; so does instar, leaving no
    file. Needs a file system that holds a 65 TiB sparse file."""
    src = tmp_path / "big.raw"
    try:
        with open(src, "wb") as f:
            f.truncate(65 * TiB)
    except OSError as e:
        src.unlink(missing_ok=True)
        pytest.skip(f"{tmp_path} cannot hold a 65 TiB sparse file: {e}")
    _too_large(instar_bin, qemu_img, dirs, str(src), "raw")


def test_vhdx_over_64_tib_refused_qcow2(instar_bin, qemu_img, dirs,
                                        tmp_path):
    """The same refusal from a 65 TiB qcow2 input (a small file on any
    file system)."""
    src = str(tmp_path / "big.qcow2")
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", src,
                    str(65 * TiB)], check=True)
    _too_large(instar_bin, qemu_img, dirs, src, "qcow2")
