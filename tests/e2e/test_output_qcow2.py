"""qcow2 output byte for byte against `qemu-img dd -O qcow2`.

qemu-img writes no random or time-dependent field into a qcow2, so the
files must be identical, nothing masked: every window of
test_output_formats.py, every input format, request sizes (bs) that split
clusters differently, a window across an L2 table, and outputs past 2 GiB
of file, where the place of the second refcount block depends on bs
(writers.md 2.3). A dense output whose file would pass 16 TiB (more than
a one-cluster refcount table counts) is refused before anything is
written.
"""
import os
import subprocess

import pytest

from conftest import listing, run_dd
from test_output_formats import WINDOWS, _id, compare_outputs, format_inputs  # noqa: F401

MiB = 1 << 20
CHUNK = 16 * MiB

# A 513 MiB window needs a second L2 table.
TWO_TABLES = ("huge", ["bs=1M", "count=513"])
# bs splits clusters differently (below 2 GiB of file the layout is the
# same for every bs).
QCOW2_WINDOWS = [
    ("multi", ["bs=512"]),
    ("multi", ["bs=1000"]),
    ("multi", ["bs=1048577"]),
    ("multi", ["bs=65536", "skip=1", "count=70"]),
    ("multi", ["bs=3145728"]),
    TWO_TABLES,
]

# Past 2 GiB of file (2100 MiB windows of the sparse 5 GiB input): at
# bs=1M refcount block 1 follows the 1 MiB run that crosses 2 GiB
# (0x80080000); at bs=64k it follows the one cluster at 2 GiB (0x80010000).
BIG_WINDOWS = [
    ("huge", ["bs=1M", "count=2100"]),
    ("huge", ["bs=64k", "count=33600"]),
]


def _run_both(qemu_img, instar_bin, dirs, src, extra, keep=True):
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, "o.qcow2"), os.path.join(idir, "o.qcow2")
    args = ["-O", "qcow2", f"if={src}"] + extra
    q = run_dd(qemu_img, args + [f"of={q_out}"], q_out if keep else None)
    i = run_dd(instar_bin, args + [f"of={i_out}"], i_out if keep else None)
    return q, i, q_out, i_out


def _same_file(a, b):
    """Whole files equal, read in chunks (outputs may be GiBs)."""
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(CHUNK), fb.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


@pytest.mark.parametrize("win", WINDOWS + QCOW2_WINDOWS,
                         ids=[_id(w) for w in WINDOWS + QCOW2_WINDOWS])
def test_qcow2_bytes_match_qemu(win, images, instar_bin, qemu_img, dirs,
                                tmp_path):
    name, extra = win
    q, i, q_out, i_out = _run_both(qemu_img, instar_bin, dirs, images[name],
                                   extra, keep=False)
    assert q.rc == i.rc == 0, (q, i)
    assert _same_file(q_out, i_out)
    if win == TWO_TABLES:
        # qemu-img reads instar's file across the table as it reads its own.
        compare_outputs("qcow2", q_out, i_out, qemu_img, instar_bin,
                        tmp_path)


@pytest.mark.parametrize("src", ["qcow2", "vmdk", "vpc", "vhdx", "chain"])
def test_qcow2_bytes_from_every_input_format(src, format_inputs, instar_bin,
                                             qemu_img, dirs):
    q, i, _, _ = _run_both(qemu_img, instar_bin, dirs, format_inputs[src],
                           ["bs=4096", "skip=3"])
    assert q.rc == i.rc == 0, (q, i)
    assert i.out == q.out


@pytest.mark.parametrize("win", BIG_WINDOWS, ids=[_id(w) for w in BIG_WINDOWS])
def test_qcow2_past_2GiB_bytes_match_qemu(win, images, instar_bin, qemu_img,
                                          dirs):
    name, extra = win
    q, i, q_out, i_out = _run_both(qemu_img, instar_bin, dirs, images[name],
                                   extra, keep=False)
    try:
        assert q.rc == i.rc == 0, (q, i)
        assert os.path.getsize(q_out) == 0x834a0000
        assert _same_file(q_out, i_out)
    finally:
        for p in (q_out, i_out):
            if os.path.exists(p):
                os.unlink(p)


def test_qcow2_refuses_a_file_past_16TiB(instar_bin, qemu_img, tmp_path):
    """17 TiB of virtual disk written densely needs more than 8192
    refcount blocks; qemu would grow the refcount table, instar refuses
    up front and leaves no output. A window of it is fine."""
    src = str(tmp_path / "in.qcow2")
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", src, "17T"],
                   check=True)
    out = str(tmp_path / "o.qcow2")
    i = run_dd(instar_bin, ["-O", "qcow2", f"if={src}", f"of={out}"], out)
    assert i.rc == 1, i
    assert "qcow2" in i.stderr and "16 TiB" in i.stderr, i.stderr
    assert listing(tmp_path) == ["in.qcow2"]
    i = run_dd(instar_bin, ["-O", "qcow2", f"if={src}", f"of={out}",
                            "bs=1M", "count=3"], out)
    assert i.rc == 0, i
    os.unlink(out)
