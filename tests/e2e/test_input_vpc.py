"""vpc (VHD) input: instar dd against the live qemu-img dd.

- qemu-made images (dynamic, fixed, force_size, partly written with
  qemu-io): byte-identical output and exit status for several windows.
- Differencing chains (qemu-img cannot create them; built with
  tests/gen/malformed_vpc.py on top of qemu-made parents): compared with
  the disk the spec defines. qemu 7.2 ignores the parent (and the sector
  bitmaps) and reads zeros there: a documented divergence, checked too.
- Malformed images: refused cleanly (exit 1, "vpc" in the message, no
  output file, no hang).
"""
import os
import shutil
import subprocess

import pytest

from conftest import listing, run_dd
from qemu_model import expected_output

import info_parity
import malformed_vpc as mv

WINDOWS = [
    [],
    ["bs=1000", "skip=3", "count=700"],
    ["bs=4096", "skip=511", "count=1030"],     # across the 2 MiB block edge
    ["bs=512", "skip=4095", "count=4101"],
    ["bs=3", "skip=699050", "count=699400"],   # unaligned, across 2 MiB
    ["bs=65536", "skip=31", "count=33"],
    ["bs=1M", "skip=1"],
]
WIN_IDS = ["-".join(w).replace("=", "") or "all" for w in WINDOWS]


def _qemu(qemu_img, *args):
    subprocess.run([qemu_img, *args], check=True, capture_output=True)


def _qemu_io(path, cmds):
    argv = ["qemu-io", "-f", "vpc"]
    for c in cmds:
        argv += ["-c", c]
    subprocess.run(argv + [path], check=True, capture_output=True)


@pytest.fixture(scope="session")
def vpc_inputs(images, qemu_img, tmp_path_factory):
    """name -> (path, extra args) of qemu-made VHDs."""
    d = tmp_path_factory.mktemp("vpc")
    out = {}

    def conv(name, src, opts=None, extra=()):
        p = str(d / f"{name}.vpc")
        _qemu(qemu_img, "convert", "-f", "raw", "-O", "vpc",
              *(["-o", opts] if opts else []), images[src], p)
        out[name] = (p, list(extra))

    conv("dyn-tiny", "tiny")
    conv("dyn-mid", "mid")
    conv("dyn-multi", "multi")
    conv("dyn-mid-force", "mid", "force_size=on")
    conv("fixed-mid", "mid", "subformat=fixed", ["-f", "vpc"])
    conv("fixed-mid-force", "mid", "subformat=fixed,force_size=on",
         ["-f", "vpc"])
    out["fixed-mid-probed"] = (out["fixed-mid"][0], [])  # raw, as qemu
    p = str(d / "partial.vpc")
    _qemu(qemu_img, "create", "-f", "vpc", p, "9M")
    _qemu_io(p, ["write -P 0x55 1536 5120", "write -P 0xaa 2096640 1024",
                 "write -P 0x33 6291556 70000"])
    out["partial"] = (p, [])
    p = str(d / "unwritten.vpc")
    _qemu(qemu_img, "create", "-f", "vpc", p, "3M")
    out["unwritten"] = (p, [])
    return out


def _pair(qemu_img, instar_bin, dirs, args):
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, "o"), os.path.join(idir, "o")
    q = run_dd(qemu_img, [*args, f"of={q_out}"], q_out)
    i = run_dd(instar_bin, [*args, f"of={i_out}"], i_out)
    return q, i


INPUTS = ["dyn-tiny", "dyn-mid", "dyn-multi", "dyn-mid-force", "fixed-mid",
          "fixed-mid-force", "fixed-mid-probed", "partial", "unwritten"]


@pytest.mark.parametrize("win", WINDOWS, ids=WIN_IDS)
@pytest.mark.parametrize("name", INPUTS)
def test_parity(name, win, vpc_inputs, qemu_img, instar_bin, dirs):
    path, extra = vpc_inputs[name]
    q, i = _pair(qemu_img, instar_bin, dirs, [*extra, f"if={path}", *win])
    assert i.rc == q.rc, (q, i)
    assert i.out == q.out, (q, i)


# --- differencing chains (divergence: qemu reads no parent) -----------------

def _view(qemu_img, path, extra, tmp):
    """The disk qemu reads from a qemu-made image."""
    out = str(tmp / "view.raw")
    r = run_dd(qemu_img, [*extra, f"if={path}", f"of={out}", "bs=1M"], out)
    assert r.rc == 0, r
    os.unlink(out)
    return r.out


def _child(parent_path, chs, name, locators, blocks, d, uid):
    pchs, puid = mv.read_footer_fields(parent_path)
    s = mv.Sparse(chs or pchs, block_size=64 << 10, disk_type=mv.DIFF,
                  uid=uid, parent_uuid=puid)
    for i, bitmap in blocks:
        if i >= s.entries:
            continue
        s.write(i, mv.fill(64 << 10, i * 7 + uid[0]), bitmap)
    s.locators = locators
    p = str(d / name)
    with open(p, "wb") as f:
        f.write(s.build())
    return s, p


# blocks of 64 KiB: full, partial bitmaps, one straddling the parent's
# 2 MiB block edge (index 31), one past a shorter parent's end
BLOCKS = [(0, None), (3, bytes([0xF0, 0x0F, 0xFF, 0x00, 0x81] * 4)),
          (31, bytes([0x00] * 8 + [0xFF] * 8)), (12, bytes(16)),
          (16, bytes([0xAA] * 16))]


def _check_windows(instar_bin, path, view, dirs):
    idir = dirs[1]
    for win in WINDOWS:
        out = os.path.join(idir, "o")
        r = run_dd(instar_bin, [f"if={path}", f"of={out}", *win], out)
        assert r.rc == 0, r
        want, _ = expected_output(lambda a, b: view[a:b], len(view), win)
        assert r.out == want, (win, r)
        os.unlink(out)


@pytest.mark.divergence
@pytest.mark.parametrize("chs", [None, (20, 4, 17), (62, 4, 17)],
                         ids=["same-size", "child-shorter", "child-longer"])
@pytest.mark.parametrize("parent", ["dyn-mid", "fixed-mid", "partial"])
def test_differencing(parent, chs, vpc_inputs, qemu_img, instar_bin, dirs,
                      tmp_path):
    ppath, pextra = vpc_inputs[parent]
    d = tmp_path / "chain"
    d.mkdir()
    shutil.copyfile(ppath, d / "base.vpc")
    pview = _view(qemu_img, ppath, pextra, tmp_path)
    s, p = _child(ppath, chs, "child.vhd",
                  [(b"W2ru", mv.utf16(".\\base.vpc")),
                   (b"W2ku", mv.utf16("C:\\elsewhere\\base.vpc"))],
                  BLOCKS, d, b"\x71" * 16)
    _check_windows(instar_bin, p, s.view(pview), dirs)


@pytest.mark.divergence
def test_three_level_chain(vpc_inputs, qemu_img, instar_bin, dirs, tmp_path):
    ppath, pextra = vpc_inputs["fixed-mid"]
    d = tmp_path / "chain"
    d.mkdir()
    shutil.copyfile(ppath, d / "base.vpc")
    base = _view(qemu_img, ppath, pextra, tmp_path)
    mid, mpath = _child(ppath, None, "mid.vhd",
                        [(b"W2ru", mv.utf16("base.vpc"))],
                        BLOCKS[:3], d, b"\x72" * 16)
    top, tpath = _child(mpath, None, "top.vhd",
                        [(b"MacX", b"file://localhost" +
                          str(d / "mid.vhd").encode())],
                        [(0, bytes([0x0F] * 16)), (5, None), (31, None)],
                        d, b"\x73" * 16)
    _check_windows(instar_bin, tpath, top.view(mid.view(base)), dirs)


@pytest.mark.divergence
def test_qemu_reads_no_parent_and_no_bitmap(vpc_inputs, qemu_img, tmp_path):
    """The measured qemu 7.2 behaviour instar departs from: a differencing
    disk reads as a dynamic one, every allocated block read whole whatever
    its bitmap says, the rest zeros."""
    ppath, _ = vpc_inputs["dyn-mid"]
    s, p = _child(ppath, None, "child.vhd", [(b"W2ru", mv.utf16("x"))],
                  BLOCKS, tmp_path, b"\x74" * 16)
    got = _view(qemu_img, p, [], tmp_path)
    want = bytearray(s.vsize)
    for i, (data, _) in s.blocks.items():
        lo = i * s.block_size
        want[lo:lo + s.block_size] = data[:max(0, s.vsize - lo)]
    assert got == bytes(want)


@pytest.mark.divergence
def test_dynamic_bitmap_clear_reads_zeros(qemu_img, instar_bin, dirs,
                                          tmp_path):
    """Divergence: sectors whose bitmap bit is clear read as zeros in instar
    (the spec); qemu reads whatever the block holds."""
    s = mv.Sparse((31, 4, 17))
    s.write(0, mv.fill(2 << 20, 5), bytes([0x3C] * 8 + [0xFF] * 504))
    p = str(tmp_path / "bm.vhd")
    with open(p, "wb") as f:
        f.write(s.build())
    _check_windows(instar_bin, p, s.view(None), dirs)
    q = _view(qemu_img, p, [], tmp_path)
    assert q[:512] == mv.fill(2 << 20, 5)[:512]


# --- malformed images --------------------------------------------------------

@pytest.fixture(scope="module")
def malformed(tmp_path_factory):
    return mv.make_all(str(tmp_path_factory.mktemp("malformed_vpc")))


@pytest.mark.parametrize("case", sorted(mv.cases()))
def test_malformed_refused(case, malformed, instar_bin, tmp_path):
    path, extra = malformed[case]
    out = str(tmp_path / "out.raw")
    r = run_dd(instar_bin, [*extra, f"if={path}", f"of={out}"], out,
               timeout=20)
    assert r.rc == 1, r
    assert "vpc" in r.stderr, r
    assert listing(tmp_path) == [], r
    assert r.elapsed < 10, r


# --- instar info (tests/e2e/info_parity.py) --------------------------------

@pytest.mark.parametrize("name", INPUTS)
def test_info_matches_qemu(name, vpc_inputs, instar_bin, qemu_img):
    path, extra = vpc_inputs[name]
    info_parity.compare(qemu_img, instar_bin, path, extra)
