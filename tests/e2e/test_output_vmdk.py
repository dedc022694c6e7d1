"""vmdk output byte for byte against the live `qemu-img dd -O vmdk`.

qemu-img 7.2 picks a random CID on every run (writers.md 3.3); instar takes
it from the run's entropy. The CID is the one field masked: the embedded
descriptor (sectors 1..20) is compared as text with the CID's value
replaced (its digit count varies, so the NUL padding after the text is only
checked to be NULs), and every other byte of the two files must be equal:
header, both grain directories, both copies of every grain table, grains
and the holes between them.
"""
import os
import re
import struct
import subprocess

import pytest

from conftest import listing, run_dd
from test_output_formats import EMPTY, WINDOWS, _id

MiB = 1 << 20
SEC = 512
DESC = (SEC, 21 * SEC)  # the embedded descriptor's sectors
CID_LINE = re.compile(rb"\nCID=([0-9a-f]+)\n")
CHUNK = 8 * MiB

# The test_output_formats windows, plus windows of the 5 GiB input around
# the end of the first grain table (32 MiB of output), with data across it.
SPECIAL = [
    ("huge", ["bs=1M", "skip=2016", "count=2080"]),      # two full tables
    ("huge", ["bs=64k", "skip=32240", "count=32752"]),   # exactly one table
    ("huge", ["bs=512", "skip=4128768", "count=4194303"]),  # table - 512
    ("huge", ["bs=512", "skip=4128768", "count=4194305"]),  # table + 512
]


def cid(data):
    m = CID_LINE.search(data[DESC[0]:DESC[1]])
    assert m, data[DESC[0]:DESC[0] + 200]
    return m.group(1)


def descriptor_text(data, rewritten=False):
    """The descriptor with the CID's value masked; its padding must be
    NULs only. rewritten (qemu's file): qemu rewrites the descriptor in
    place with a new CID at its first write, and when that CID is two or
    more digits shorter than the one it was created with, the old text's
    last bytes stay behind the NUL (about 1 file in 256); only those may
    follow it."""
    d = data[DESC[0]:DESC[1]]
    text, _, rest = d.partition(b"\0")
    if rewritten:
        rest = rest[7:]  # at most 8 - 1 digits shorter
    assert rest.strip(b"\0") == b"", (text, rest)
    return CID_LINE.sub(b"\nCID=<cid>\n", text, count=1)


def assert_same_but_cid(q_path, i_path, q_is_qemu=True):
    assert os.path.getsize(i_path) == os.path.getsize(q_path)
    with open(q_path, "rb") as q, open(i_path, "rb") as i:
        head_q, head_i = q.read(DESC[1]), i.read(DESC[1])
        assert head_i[:SEC] == head_q[:SEC], "sparse extent header"
        assert (descriptor_text(head_i) ==
                descriptor_text(head_q, rewritten=q_is_qemu))
        off = DESC[1]
        while True:
            a, b = q.read(CHUNK), i.read(CHUNK)
            if a != b:
                k = next(n for n in range(len(a)) if a[n] != b[n])
                pytest.fail(f"files differ at byte {off + k}")
            if not a:
                break
            off += len(a)


def _run_both(qemu_img, instar_bin, dirs, args, name="o.vmdk"):
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, name), os.path.join(idir, name)
    # out_path None: the files are compared in chunks, not read whole.
    q = run_dd(qemu_img, ["-O", "vmdk"] + args + [f"of={q_out}"])
    i = run_dd(instar_bin, ["-O", "vmdk"] + args + [f"of={i_out}"])
    return q, i, q_out, i_out


@pytest.mark.parametrize("win", WINDOWS + SPECIAL,
                         ids=[_id(w) for w in WINDOWS + SPECIAL])
def test_vmdk_identical_but_cid(win, images, instar_bin, qemu_img, dirs):
    name, extra = win
    q, i, q_out, i_out = _run_both(qemu_img, instar_bin, dirs,
                                   [f"if={images[name]}"] + extra)
    if _id(win) in EMPTY:
        # qemu-img leaves an unreadable file and fails; instar refuses
        # before writing anything (writers.md 3.4).
        assert q.rc == 1 and os.path.getsize(q_out) == 65536, q
        assert i.rc == 1, i
        assert "vmdk" in i.stderr and "virtual size 0" in i.stderr, i.stderr
        assert "qemu-img 7.2" in i.stderr, i.stderr
        assert listing(dirs[1]) == []
        return
    assert q.rc == i.rc == 0, (q, i)
    assert_same_but_cid(q_out, i_out)


@pytest.mark.parametrize("name", ['quo"te.vmdk', "back\\slash.vmdk", "x",
                                  "sp ace.img", "ünï.vmdk"])
def test_extent_line_holds_the_name_as_given(name, images, instar_bin,
                                             qemu_img, dirs):
    """The extent line copies the basename of of= without escaping, like
    qemu's; qemu still opens the file (it ignores that name)."""
    q, i, q_out, i_out = _run_both(qemu_img, instar_bin, dirs,
                                   [f"if={images['small']}"], name)
    assert q.rc == i.rc == 0, (q, i)
    assert_same_but_cid(q_out, i_out)
    with open(i_out, "rb") as f:
        assert f'SPARSE "{name}"\n'.encode() in f.read(DESC[1])
    r = subprocess.run([qemu_img, "check", "-f", "vmdk", i_out],
                       capture_output=True)
    assert r.returncode == 0, r


def test_cid_is_random_and_unpadded(images, instar_bin, tmp_path):
    """Each run draws its CID from the run's entropy; printed as qemu
    prints it: lowercase hex, no zero padding."""
    cids = set()
    for n in range(4):
        out = str(tmp_path / f"c{n}.vmdk")
        r = run_dd(instar_bin, ["-O", "vmdk", f"if={images['tiny']}",
                                f"of={out}"], out)
        assert r.rc == 0, r
        c = cid(r.out)
        assert len(c) <= 8 and (c == b"0" or not c.startswith(b"0")), c
        cids.add(c)
        os.unlink(out)
    assert len(cids) == 4, cids


def test_bs_does_not_change_the_output(images, instar_bin, tmp_path):
    """writers.md section 1: dd's bs changes no byte but the CID (instar
    writes in chunks whatever bs is; qemu in requests of bs)."""
    outs = []
    for bs in ("512", "1000", "1M"):
        # The same name: it is in the extent line.
        (tmp_path / bs).mkdir()
        out = str(tmp_path / bs / "o.vmdk")
        r = run_dd(instar_bin, ["-O", "vmdk", f"if={images['multi']}",
                                f"of={out}", f"bs={bs}"])
        assert r.rc == 0, r
        outs.append(out)
    for o in outs[1:]:
        assert_same_but_cid(outs[0], o, q_is_qemu=False)


def test_empty_window_keeps_existing_output(images, instar_bin, tmp_path):
    """The refusal of an empty vmdk is an ordinary failure: an existing
    of= is left as it was, and nothing else is created."""
    out = tmp_path / "o.vmdk"
    out.write_bytes(b"existing")
    r = run_dd(instar_bin, ["-O", "vmdk", f"if={images['small']}",
                            f"of={out}", "count=0"], str(out))
    assert r.rc == 1 and "virtual size 0" in r.stderr, r
    assert r.out == b"existing"
    assert listing(tmp_path) == ["o.vmdk"]


def _qcow2_of_size(qemu_img, path, size, broken):
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(path),
                    str(size)], check=True)
    if broken:
        # L1 entry 0 points past the end of the file: the first read
        # fails, after the output size has been accepted.
        with open(path, "r+b") as f:
            l1 = struct.unpack(">Q", f.read(48)[40:48])[0]
            f.seek(l1)
            f.write(struct.pack(">Q", (1 << 63) | (1 << 40)))


def test_size_cap_is_the_last_addressable_grain(instar_bin, qemu_img,
                                                tmp_path):
    """Grain table entries are 32-bit sectors, and qemu-img fails a write
    whose grain would end past sector 2^32. The largest window whose last
    grain fits after a dense output's metadata, 2 TiB - 256.5 MiB, is
    accepted (the run then stops at the broken input's first read); one
    sector more is refused before anything is written (qemu-img would fail
    there after writing 2 TiB)."""
    cap = (2 << 40) - (513 << 19)
    out = tmp_path / "o.vmdk"
    at_cap = tmp_path / "cap.qcow2"
    _qcow2_of_size(qemu_img, at_cap, cap, broken=True)
    r = run_dd(instar_bin, ["-O", "vmdk", f"if={at_cap}", f"of={out}",
                            "bs=1M"])
    assert r.rc == 1, r
    assert "L1 entry 0" in r.stderr and "too large" not in r.stderr, r
    past = tmp_path / "past.qcow2"
    _qcow2_of_size(qemu_img, past, cap + SEC, broken=False)
    r = run_dd(instar_bin, ["-O", "vmdk", f"if={past}", f"of={out}",
                            "bs=1M"])
    assert r.rc == 1, r
    assert ("The image size is too large for file format 'vmdk' "
            f"({cap + SEC} bytes)") in r.stderr, r.stderr
    assert listing(tmp_path) == ["cap.qcow2", "past.qcow2"]
