"""vpc (dynamic VHD) output byte for byte against `qemu-img dd -O vpc`.

Both tools write the same window; the files must be identical except for
the fields qemu fills from the clock and from randomness: the footer's
timestamp (bytes 24-27), checksum (64-67, it covers the other two) and
unique id (68-83), in both footer copies (offset 0 and the last 512
bytes). The dynamic header's checksum covers none of them and is compared.
"""
import os
import struct

import pytest

from conftest import listing, run_dd
from test_output_formats import WINDOWS, _id, compare_outputs

MiB = 1 << 20
GiB = 1 << 30

# Footer byte ranges that differ between runs (writers.md 4.1).
MASKED = [(24, 28), (64, 84)]

# Windows the common list lacks: blocks that hold only CHS padding (a
# window of exactly one block, and of one block and a sector), the parity
# rows of a 4 MiB + 512 and a 34 MiB window, a window of 150 blocks across
# 2 GiB (two BAT sectors), and qemu's 512-byte requests.
VPC_WINDOWS = [
    ("multi", ["bs=2097152", "count=1"]),
    ("multi", ["bs=2097664", "count=1"]),
    ("multi", ["bs=4194816", "count=1"]),
    ("huge", ["bs=35651584", "count=1"]),
    ("huge", ["bs=1M", "skip=1900", "count=2200"]),
    ("multi", ["bs=512"]),
]


def _footers(data):
    return data[:512], data[-512:]


def _unmasked_spans(size):
    """[start, end) of every byte compared: all but MASKED in each footer."""
    cuts = sorted((base + s, base + e) for base in (0, size - 512)
                  for s, e in MASKED)
    pos = 0
    for s, e in cuts:
        yield pos, s
        pos = e
    yield pos, size


def _equal_but_masked(a, b):
    if len(a) != len(b):
        return False
    va, vb = memoryview(a), memoryview(b)
    return all(va[s:e] == vb[s:e] for s, e in _unmasked_spans(len(a)))


def _checksum(block, at):
    return ~sum(block[:at] + block[at + 4:]) & 0xffffffff


def _run_both(qemu_img, instar_bin, dirs, src, extra):
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, "o.vpc"), os.path.join(idir, "o.vpc")
    args = ["-O", "vpc", f"if={src}"] + extra
    q = run_dd(qemu_img, args + [f"of={q_out}"], q_out)
    i = run_dd(instar_bin, args + [f"of={i_out}"], i_out)
    return q, i, q_out, i_out


@pytest.mark.parametrize("win", WINDOWS + VPC_WINDOWS,
                         ids=[_id(w) for w in WINDOWS + VPC_WINDOWS])
def test_vpc_bytes_match_qemu(win, images, instar_bin, qemu_img, dirs,
                              tmp_path):
    name, extra = win
    q, i, q_out, i_out = _run_both(qemu_img, instar_bin, dirs, images[name],
                                   extra)
    assert q.rc == i.rc == 0, (q, i)
    assert len(i.out) == len(q.out)
    assert _equal_but_masked(i.out, q.out)
    # The masked fields are what qemu's are made of: a footer copy equal
    # to the footer, a valid checksum, the creation time, a v4 UUID.
    first, last = _footers(i.out)
    assert first == last
    assert struct.unpack(">I", first[64:68])[0] == _checksum(first, 64)
    q_time = struct.unpack(">I", q.out[24:28])[0]
    i_time = struct.unpack(">I", first[24:28])[0]
    assert abs(i_time - q_time) <= 60
    assert first[74] >> 4 == 4 and first[76] >> 6 == 2
    if win in VPC_WINDOWS and len(q.out) < 64 * MiB:
        compare_outputs("vpc", q_out, i_out, qemu_img, instar_bin, tmp_path)


def test_vpc_uuid_differs_between_runs(images, instar_bin, tmp_path):
    ids = set()
    for n in range(2):
        out = str(tmp_path / f"o{n}.vpc")
        r = run_dd(instar_bin, ["-O", "vpc", f"if={images['small']}",
                                f"of={out}"], out)
        assert r.rc == 0, r
        ids.add(r.out[68:84])
    assert len(ids) == 2


def test_vpc_too_large_is_refused(qemu_img, instar_bin, dirs, tmp_path):
    """qemu-img makes no VHD past 2040 GiB: a 2041 GiB window minus 1 MiB
    is refused by both before any copying. qemu-img leaves an empty file
    behind; instar leaves nothing (its output has no name until commit)."""
    src = tmp_path / "2041g.raw"
    with open(src, "wb") as f:
        f.truncate(2041 * GiB)
    q, i, q_out, i_out = _run_both(qemu_img, instar_bin, dirs, str(src),
                                   ["bs=1M", "skip=1"])
    assert q.rc == i.rc == 1, (q, i)
    assert "too large" in q.stderr and "too large" in i.stderr
    assert "'vpc'" in i.stderr
    assert listing(dirs[1]) == []
    os.unlink(src)
