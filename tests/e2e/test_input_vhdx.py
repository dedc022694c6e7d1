"""vhdx input: instar dd against the live qemu-img dd.

Images qemu-img can make (dynamic, fixed, 1 MiB and 32 MiB blocks, a 2 MiB
log, an empty disk, partially written images made with qemu-io, a 5 GiB
sparse disk) are compared byte for byte with qemu-img dd, exit status
included, over several windows. qemu cannot create or read differencing
vhdx images ("Operation not supported"), so chains are built by hand with
tests/gen/malformed_vhdx.py and compared with the spec's model of them.
Malformed images must be refused cleanly.
"""
import os
import shutil
import struct
import subprocess
import sys
import time

import pytest

from conftest import REPO, listing, run_dd
import info_parity
from qemu_model import expected_output

sys.path.insert(0, os.path.join(REPO, "tests", "gen"))
import malformed_vhdx as mv  # noqa: E402

MiB = 1 << 20

WINDOWS = [
    [],
    ["bs=1000", "skip=3", "count=700"],
    ["bs=4096", "skip=255", "count=300"],     # across the 1 MiB boundary
    ["bs=3", "count=100"],
    ["bs=65536", "skip=15", "count=33"],
    ["bs=1M", "skip=1"],
]
WIN_IDS = ["-".join(a).replace("=", "") or "all" for a in WINDOWS]


def _qemu(qemu_img, *args):
    subprocess.run([qemu_img, *args], check=True, capture_output=True)


def _qemu_io(path, *cmds):
    argv = ["qemu-io", "-f", "vhdx"]
    for c in cmds:
        argv += ["-c", c]
    subprocess.run(argv + [path], check=True, capture_output=True)


@pytest.fixture(scope="session")
def vhdx_images(images, qemu_img, tmp_path_factory):
    """name -> path of the vhdx inputs qemu-img (and qemu-io) made."""
    d = tmp_path_factory.mktemp("vhdx")
    out = {}

    def conv(name, src, *opts):
        p = str(d / f"{name}.vhdx")
        cmd = ["convert", "-f", "raw", "-O", "vhdx"]
        for o in opts:
            cmd += ["-o", o]
        _qemu(qemu_img, *cmd, images[src], p)
        out[name] = p

    conv("dyn-tiny", "tiny")
    conv("dyn-small", "small")
    conv("dyn-mid", "mid")
    conv("fixed-mid", "mid", "subformat=fixed")
    conv("bs1m-multi", "multi", "block_size=1M")
    conv("fixed-bs1m-multi", "multi", "subformat=fixed", "block_size=1M")
    conv("bs32m-multi", "multi", "block_size=32M")
    conv("log2m-mid", "mid", "log_size=2M")

    p = str(d / "empty.vhdx")
    _qemu(qemu_img, "create", "-f", "vhdx", p, "0")
    out["empty"] = p

    # Partially written: allocated and unallocated blocks side by side,
    # writes that start and end inside blocks and sectors.
    for name, opts in (("sparse", ["block_size=1M"]),
                       ("sparse-fixed", ["block_size=1M", "subformat=fixed"]),
                       ("sparse-nozero", ["block_size=1M",
                                          "block_state_zero=off"])):
        p = str(d / f"{name}.vhdx")
        _qemu(qemu_img, "create", "-f", "vhdx", "-o", ",".join(opts), p,
              "6M")
        _qemu_io(p, "write -P 0x55 1000k 100k", "write -P 0x66 3M 512",
                 "write -P 0x77 4100k 2000k", "write -z 4608k 4k")
        out[name] = p
    return out


QEMU_IMAGES = ["dyn-tiny", "dyn-small", "dyn-mid", "fixed-mid", "bs1m-multi",
               "fixed-bs1m-multi", "bs32m-multi", "log2m-mid", "empty",
               "sparse", "sparse-fixed", "sparse-nozero"]


def _compare(qemu_img, instar_bin, src, extra, dirs):
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, "o"), os.path.join(idir, "o")
    q = run_dd(qemu_img, [f"if={src}", f"of={q_out}", *extra], q_out)
    i = run_dd(instar_bin, [f"if={src}", f"of={i_out}", *extra], i_out)
    assert i.rc == q.rc, (q, i)
    assert i.out == q.out, (len(i.out or b""), len(q.out or b""))
    return q, i


@pytest.mark.parametrize("extra", WINDOWS, ids=WIN_IDS)
@pytest.mark.parametrize("name", QEMU_IMAGES)
def test_qemu_made(name, extra, vhdx_images, qemu_img, instar_bin, dirs):
    q, _ = _compare(qemu_img, instar_bin, vhdx_images[name], extra, dirs)
    assert q.rc == 0, q


@pytest.fixture(scope="session")
def huge_vhdx(images, qemu_img, tmp_path_factory):
    p = str(tmp_path_factory.mktemp("vhdx-huge") / "huge.vhdx")
    _qemu(qemu_img, "convert", "-f", "raw", "-O", "vhdx", images["huge"], p)
    return p


@pytest.mark.parametrize("extra", [["bs=1", "skip=4294967295",
                                    "count=4294967297"],
                                   ["bs=1M", "skip=2047", "count=2050"]],
                         ids=["4G-edge", "2G-edge"])
def test_huge(extra, huge_vhdx, qemu_img, instar_bin, dirs):
    q, _ = _compare(qemu_img, instar_bin, huge_vhdx, extra, dirs)
    assert q.rc == 0, q


def test_dirty_log_refused_like_qemu(vhdx_images, qemu_img, instar_bin, dirs,
                                     tmp_path):
    # qemu-io leaves its (replayed) log entries behind with a zero log_guid;
    # pointing the header at them makes the log "need replay" again.
    p = str(tmp_path / "dirty.vhdx")
    shutil.copyfile(vhdx_images["sparse"], p)
    with open(p, "r+b") as f:
        buf = bytearray(f.read())
        log_off = struct.unpack_from("<Q", buf, 64 * 1024 + 72)[0]
        assert buf[log_off:log_off + 4] == b"loge"
        mv.rewrite_headers(buf, log_guid=bytes(buf[log_off + 32:log_off + 48]))
        f.seek(0)
        f.write(buf)
    q, i = _compare(qemu_img, instar_bin, p, [], dirs)
    assert q.rc == 1 and "replayed" in q.stderr
    assert "vhdx: log" in i.stderr and "replayed" in i.stderr
    assert listing(dirs[1]) == []


def test_log_guid_without_entries_reads(vhdx_images, qemu_img, instar_bin,
                                        dirs, tmp_path):
    p = str(tmp_path / "lg.vhdx")
    shutil.copyfile(vhdx_images["dyn-mid"], p)
    with open(p, "r+b") as f:
        buf = bytearray(f.read())
        mv.rewrite_headers(buf, log_guid=b"\x5a" * 16)
        f.seek(0)
        f.write(buf)
    q, _ = _compare(qemu_img, instar_bin, p, [], dirs)
    assert q.rc == 0, q


# --- differencing chains (hand-made: qemu cannot create or read them) ------

def _child(parent_path, vsize, rel=None):
    link = mv.guid_text(mv.data_write_guid(parent_path))
    c = mv.Image(vsize, parent=[("parent_linkage", link),
                                ("relative_path",
                                 rel or ".\\" + os.path.basename(parent_path))])
    return c


@pytest.fixture(scope="session")
def chain(images, qemu_img, tmp_path_factory):
    """base (qemu, 5 MiB + 1536) <- mid (4 MiB, shorter) <- top (9 MiB,
    longer); returns {name: (path, expected virtual disk bytes)}."""
    d = tmp_path_factory.mktemp("vhdx-chain")
    base = str(d / "base.vhdx")
    _qemu(qemu_img, "convert", "-f", "raw", "-O", "vhdx", "-o",
          "block_size=1M", images["multi"], base)
    with open(images["multi"], "rb") as f:
        base_data = f.read()
    base_data += bytes(-len(base_data) % 512)

    mid = _child(base, 4 * MiB)
    mid.write(0, bytes([0x31]) * MiB)
    mid.write(1, bytes([0x32]) * MiB, mv.PARTIALLY_PRESENT)
    mid.bitmaps[1] = mv.bitmap([0, 1, 2, 7] + list(range(1000, 1500)))
    mid.write(2, None, mv.ZERO)
    mid_path = str(d / "mid.vhdx")
    with open(mid_path, "wb") as f:
        f.write(mid.build())
    mid_data = mid.expected(base_data)

    top = _child(mid_path, 9 * MiB)
    top.write(1, bytes([0x41]) * MiB, mv.PARTIALLY_PRESENT)
    top.bitmaps[1] = mv.bitmap(range(500, 1200))
    top.write(3, bytes([0x43]) * MiB)
    top.write(6, bytes([0x46]) * 300)
    top_path = str(d / "top.vhdx")
    with open(top_path, "wb") as f:
        f.write(top.build())
    return {"mid": (mid_path, mid_data),
            "top": (top_path, top.expected(mid_data))}


@pytest.mark.parametrize("extra", WINDOWS + [["bs=512", "skip=2047",
                                              "count=3000"]],
                         ids=WIN_IDS + ["bs512-skip2047-count3000"])
@pytest.mark.parametrize("name", ["mid", "top"])
def test_differencing_chain(name, extra, chain, instar_bin, tmp_path):
    path, data = chain[name]
    out = str(tmp_path / "o")
    i = run_dd(instar_bin, [f"if={path}", f"of={out}", *extra], out)
    want, _ = expected_output(lambda s, e: data[s:e], len(data), extra)
    assert i.rc == 0, i
    assert i.out == want


def test_qemu_refuses_differencing(chain, qemu_img, tmp_path):
    # Measured quirk, recorded so a qemu upgrade that starts reading them
    # shows up: qemu 7.2 refuses any vhdx with has_parent set.
    out = str(tmp_path / "o")
    q = run_dd(qemu_img, [f"if={chain['mid'][0]}", f"of={out}"], out)
    assert q.rc == 1 and "not supported" in q.stderr, q


# --- malformed images --------------------------------------------------------

MALFORMED = sorted(mv.malformed())


@pytest.fixture(scope="session")
def malformed_paths(tmp_path_factory):
    return mv.write_malformed(str(tmp_path_factory.mktemp("vhdx-bad")))


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_refused(name, malformed_paths, instar_bin, tmp_path):
    out = str(tmp_path / "out.raw")
    t0 = time.monotonic()
    i = run_dd(instar_bin, [f"if={malformed_paths[name]}", f"of={out}"], out,
               timeout=20)
    assert time.monotonic() - t0 < 10, "too slow"
    assert i.rc == 1, i
    assert "vhdx" in i.stderr, i.stderr
    assert listing(str(tmp_path)) == [], "output left behind"


# --- virtual sizes that are not a multiple of the sector size ---------------

@pytest.fixture(scope="session")
def odd_vhdx(vhdx_images, tmp_path_factory):
    """The generator's odd sizes, and qemu-made images (6 MiB, written with
    qemu-io) whose VirtualDiskSize item is patched."""
    d = tmp_path_factory.mktemp("vhdx-odd")
    out = {}
    for name, blob in mv.odd_sizes().items():
        (d / f"{name}.vhdx").write_bytes(blob)
        out[name] = str(d / f"{name}.vhdx")
    with open(vhdx_images["sparse"], "rb") as f:
        made = f.read()
    for vsize in (5 * MiB + 1000, 4100 * 1024 + 700, 300):
        buf = bytearray(made)
        mv.set_meta_item(buf, mv.GUID_VSIZE, struct.pack("<Q", vsize))
        p = d / f"qemu-made-{vsize}.vhdx"
        p.write_bytes(bytes(buf))
        out[f"qemu-made-{vsize}"] = str(p)
    return out


ODD = (sorted(mv.odd_sizes())
       + [f"qemu-made-{v}" for v in (5 * MiB + 1000, 4100 * 1024 + 700, 300)])


@pytest.mark.parametrize("extra", [[], ["bs=1000", "skip=3", "count=7000"]],
                         ids=["all", "bs1000"])
@pytest.mark.parametrize("name", ODD)
def test_odd_virtual_size_rounds_down_like_qemu(name, extra, odd_vhdx,
                                                qemu_img, instar_bin, dirs):
    q, i = _compare(qemu_img, instar_bin, odd_vhdx[name], extra, dirs)
    assert q.rc == 0, q


def test_odd_size_with_4096_sectors_refused_like_qemu(malformed_paths,
                                                      qemu_img, instar_bin,
                                                      dirs):
    q, i = _compare(qemu_img, instar_bin,
                    malformed_paths["vsize-not-sector-multiple-4096"], [],
                    dirs)
    assert q.rc == 1, q
    assert "not a multiple of the logical sector size 4096" in i.stderr


# --- instar info (tests/e2e/info_parity.py) --------------------------------

@pytest.mark.parametrize("name", QEMU_IMAGES)
def test_info_matches_qemu(name, vhdx_images, instar_bin, qemu_img):
    info_parity.compare(qemu_img, instar_bin, vhdx_images[name])
