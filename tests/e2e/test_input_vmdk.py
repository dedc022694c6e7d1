"""vmdk input: instar dd vs the live qemu-img dd, byte for byte.

Variants made with qemu-img (every subformat, overlays of 2 and 3 levels,
overlays shorter and longer than their base, partly written with qemu-io
at offsets inside grains) and with tests/gen/malformed_vmdk.py (a
VMware-style streamOptimized image with its grain directory in the footer,
zeroed-grain entries, unallocated grain tables), each read through several
windows. Then every malformed image must be refused cleanly.
"""
import os
import resource
import shutil
import subprocess
import tempfile
import time

import pytest

import info_parity
import malformed_vmdk as mv
from conftest import listing, run_dd

SUBFORMATS = ["monolithicSparse", "streamOptimized", "monolithicFlat",
              "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"]

WINDOWS = [
    [],
    ["bs=1000", "skip=3", "count=700"],       # starts and ends inside grains
    ["bs=4096", "skip=25", "count=30"],       # around the qemu-io writes
    ["bs=65536", "skip=1", "count=3"],        # grain aligned
    ["bs=1M", "skip=1"],                      # from 1 MiB to the end
]
WINDOW_IDS = ["all", "bs1000-skip3-count700", "bs4096-skip25-count30",
              "bs64k-skip1-count3", "bs1M-skip1"]


def _qemu(qemu_img, *args):
    subprocess.run([qemu_img, *args], check=True, capture_output=True)


def _qemu_io(path, *cmds):
    qemu_io = shutil.which("qemu-io")
    if not qemu_io:
        return False
    argv = [qemu_io, "-f", "vmdk"]
    for c in cmds:
        argv += ["-c", c]
    subprocess.run(argv + [path], check=True, capture_output=True)
    return True


@pytest.fixture(scope="session")
def vmdk_inputs(images, qemu_img, tmp_path_factory):
    """name -> path of every vmdk variant (files they refer to beside)."""
    d = str(tmp_path_factory.mktemp("vmdk"))
    out = {}

    def p(name):
        return os.path.join(d, name)

    for src in ("mid", "multi"):
        for sub in SUBFORMATS:
            name = f"{src}-{sub}.vmdk"
            _qemu(qemu_img, "convert", "-f", "raw", "-O", "vmdk", "-o",
                  f"subformat={sub}", images[src], p(name))
            out[name] = p(name)

    # chains: base (5 MiB + 1536) <- ov (same size) <- top; short and long
    # overlays; a split-sparse overlay
    _qemu(qemu_img, "convert", "-f", "raw", "-O", "vmdk", images["multi"],
          p("base.vmdk"))
    for name, size in [("ov.vmdk", None), ("ov-short.vmdk", "1M"),
                       ("ov-long.vmdk", "8M")]:
        _qemu(qemu_img, "create", "-f", "vmdk", "-b", "base.vmdk", "-F",
              "vmdk", p(name), *([size] if size else []))
        out[name] = p(name)
    _qemu(qemu_img, "create", "-f", "vmdk", "-o",
          "subformat=twoGbMaxExtentSparse", "-b", "base.vmdk", "-F", "vmdk",
          p("ov-split.vmdk"))
    out["ov-split.vmdk"] = p("ov-split.vmdk")
    writes = ["write -P 0x55 100k 70k", "write -P 0x66 1000k 3k",
              "write -P 0x77 5000k 120k"]
    for name in ("ov.vmdk", "ov-short.vmdk", "ov-long.vmdk",
                 "ov-split.vmdk"):
        if not _qemu_io(p(name), *writes[:2] if name == "ov-short.vmdk"
                        else writes):
            break
    _qemu(qemu_img, "create", "-f", "vmdk", "-b", "ov.vmdk", "-F", "vmdk",
          p("top.vmdk"))
    _qemu_io(p("top.vmdk"), "write -P 0x99 130k 1k", "write -P 0x11 2M 64k")
    out["top.vmdk"] = p("top.vmdk")

    # handcrafted: VMware-style stream (GD in the footer), zero grains,
    # unallocated grain tables
    data = bytearray(mv.pattern(1 << 20))
    data[3 * 65536:4 * 65536] = bytes(65536)
    for name, img in [
        ("gen-stream-footer.vmdk",
         mv.sparse(bytes(data), compressed=True, gd_at_end=True)),
        ("gen-zero-grains.vmdk", mv.sparse(bytes(data), zero_grains={1, 5})),
        ("gen-sparse-gts.vmdk",
         mv.sparse(bytes(data), gtes=4, holes={4, 5, 6, 7},
                   sparse_gts=True)),
    ]:
        with open(p(name), "wb") as f:
            f.write(img)
        out[name] = p(name)
    return out


VARIANTS = ([f"{s}-{sub}.vmdk" for s in ("mid", "multi") for sub in SUBFORMATS]
            + ["ov.vmdk", "ov-short.vmdk", "ov-long.vmdk", "ov-split.vmdk",
               "top.vmdk", "gen-stream-footer.vmdk", "gen-zero-grains.vmdk",
               "gen-sparse-gts.vmdk"])


@pytest.mark.parametrize("window", WINDOWS, ids=WINDOW_IDS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_vmdk_matches_qemu(variant, window, vmdk_inputs, instar_bin,
                           qemu_img, dirs):
    qdir, idir = dirs
    src = vmdk_inputs[variant]
    q_out, i_out = os.path.join(qdir, "o"), os.path.join(idir, "o")
    q = run_dd(qemu_img, [f"if={src}", f"of={q_out}", *window], q_out)
    i = run_dd(instar_bin, [f"if={src}", f"of={i_out}", *window], i_out)
    assert q.rc == 0, q
    assert i.rc == q.rc, i
    assert i.out == q.out, f"{variant} {window}: output differs"
    assert listing(idir) == ["o"]


def test_parent_cid_mismatch_fails_like_qemu(vmdk_inputs, instar_bin,
                                             qemu_img, tmp_path):
    # qemu fails reads of unallocated grains when parentCID differs from
    # the parent's CID; both exit 1 (instar leaves no output).
    src = vmdk_inputs["ov.vmdk"]
    with open(src, "rb") as f:
        img = bytearray(f.read())
    at = img.index(b"parentCID=") + len(b"parentCID=")
    img[at:at + 8] = b"12345678"
    bad = tmp_path / "bad.vmdk"
    bad.write_bytes(bytes(img))
    shutil.copy(os.path.join(os.path.dirname(src), "base.vmdk"), tmp_path)
    q = run_dd(qemu_img, [f"if={bad}", f"of={tmp_path / 'q.raw'}"])
    i = run_dd(instar_bin, [f"if={bad}", f"of={tmp_path / 'i.raw'}"],
               str(tmp_path / "i.raw"))
    assert q.rc == i.rc == 1, (q, i)
    assert "parentCID" in i.stderr
    assert not i.out_exists


@pytest.fixture(scope="session")
def malformed(tmp_path_factory, images):
    d = tmp_path_factory.mktemp("vmdk-bad")
    # files outside the case directory that escapes would reach
    shutil.copy(images["mid"], d / "flat.bin")
    shutil.copy(images["mid"], d / "base.vmdk")
    return mv.cases(str(d / "cases"))


with tempfile.TemporaryDirectory() as _d:
    MALFORMED_NAMES = [n for n, _, _ in mv.cases(_d)]


@pytest.mark.parametrize("name", MALFORMED_NAMES)
def test_malformed_refused(name, malformed, instar_bin, tmp_path):
    _, path, hint = next(c for c in malformed if c[0] == name)
    out = str(tmp_path / "out.raw")
    t0 = time.monotonic()
    i = run_dd(instar_bin, [f"if={path}", f"of={out}"], out, timeout=10)
    assert time.monotonic() - t0 < 10
    assert i.rc == 1, i
    assert "vmdk" in i.stderr, i.stderr
    assert hint.lower() in i.stderr.lower(), i.stderr
    assert listing(tmp_path) == []


HUGE_SUBFORMATS = ["monolithicSparse", "twoGbMaxExtentSparse",
                   "twoGbMaxExtentFlat", "streamOptimized"]


@pytest.fixture(scope="session")
def huge_vmdk(images, qemu_img, tmp_path_factory):
    """The sparse 5 GiB image as vmdk: several 2 GiB extents."""
    d = tmp_path_factory.mktemp("vmdk-huge")
    out = {}
    for sub in HUGE_SUBFORMATS:
        path = str(d / f"huge-{sub}.vmdk")
        _qemu(qemu_img, "convert", "-f", "raw", "-O", "vmdk", "-o",
              f"subformat={sub}", images["huge"], path)
        out[sub] = path
    return out


@pytest.mark.parametrize("window", [
    ["bs=1", "skip=4294967295", "count=4294967297"],
    ["bs=1M", "skip=2047", "count=2050"],
    ["bs=1000", "skip=4294966", "count=4296000"],
], ids=["4G-2bytes", "2G-3MiB", "4G-unaligned"])
@pytest.mark.parametrize("sub", HUGE_SUBFORMATS)
def test_vmdk_huge_windows(sub, window, huge_vmdk, instar_bin, qemu_img,
                           dirs):
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, "o"), os.path.join(idir, "o")
    q = run_dd(qemu_img, [f"if={huge_vmdk[sub]}", f"of={q_out}", *window],
               q_out)
    i = run_dd(instar_bin, [f"if={huge_vmdk[sub]}", f"of={i_out}", *window],
               i_out)
    assert q.rc == 0, q
    assert i.rc == 0, i
    assert i.out == q.out


# Split images with many extents (files are sparse: a few MiB of disk).
# qemu keeps one file open per extent and does not raise its soft
# open-files limit, so both run with the soft limit at the hard one.
def _nofile_max():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _nofile(n):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


GiB_MiB = 1024          # MiB per GiB
FLAT_GIB = 2148         # 1074 extents: past the old cap of 1024
SPARSE_GIB = 1024       # 512 extents: past what per-extent caches fit


@pytest.fixture(scope="module")
def split_vmdk(qemu_img):
    """A twoGbMaxExtentFlat of 2148 GiB in a directory with a 200-byte
    name and a twoGbMaxExtentSparse of 1 TiB, written with qemu-io across
    extent boundaries and at their ends. Deleted afterwards."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip(f"open-files hard limit {hard} < 1200: qemu cannot open "
                    "a 1074-extent image")
    if shutil.disk_usage(tempfile.gettempdir()).free < 1 << 30:
        pytest.skip("less than 1 GiB free for the split images")
    top = tempfile.mkdtemp(prefix="instar-vmdk-split-")
    try:
        long_dir = os.path.join(top, ("long-directory-name-" * 10)[:200])
        os.mkdir(long_dir)
        flat = os.path.join(long_dir, "f.vmdk")
        _qemu(qemu_img, "create", "-f", "vmdk", "-o",
              "subformat=twoGbMaxExtentFlat", flat, f"{FLAT_GIB}G")
        sparse = os.path.join(top, "s.vmdk")
        _qemu(qemu_img, "create", "-f", "vmdk", "-o",
              "subformat=twoGbMaxExtentSparse", sparse, f"{SPARSE_GIB}G")
        end = FLAT_GIB * GiB_MiB
        if not _qemu_io(flat, "write -P 0x55 2047M 2M",
                        "write -P 0x66 2097151M 2M",   # extents 1023 | 1024
                        f"write -P 0x77 {end - 2}M 2M"):
            pytest.skip("qemu-io not installed")
        end = SPARSE_GIB * GiB_MiB
        _qemu_io(sparse, "write -P 0x55 2047M 2M",
                 "write -P 0x66 549755813376 1024",    # extents 255 | 256
                 f"write -P 0x77 {end - 2}M 2M")
        yield {"flat": flat, "sparse": sparse}
    finally:
        shutil.rmtree(top)


SPLIT_WINDOWS = {
    "flat": [
        ["bs=1M", "skip=2046", "count=2050"],
        ["bs=1M", "skip=2097150", "count=2097154"],
        ["bs=1M", f"skip={FLAT_GIB * GiB_MiB - 3}",
         f"count={FLAT_GIB * GiB_MiB}"],
    ],
    "sparse": [
        ["bs=1M", "skip=2046", "count=2050"],
        ["bs=512", "skip=1073741820", "count=1073741828"],
        ["bs=1M", f"skip={SPARSE_GIB * GiB_MiB - 3}",
         f"count={SPARSE_GIB * GiB_MiB}"],
    ],
}


@pytest.mark.parametrize("window", [0, 1, 2],
                         ids=["first-boundary", "mid-boundary", "end"])
@pytest.mark.parametrize("kind", ["flat", "sparse"])
def test_split_many_extents_match_qemu(kind, window, split_vmdk, instar_bin,
                                       qemu_img, dirs):
    qdir, idir = dirs
    src = split_vmdk[kind]
    args = SPLIT_WINDOWS[kind][window]
    q_out, i_out = os.path.join(qdir, "o"), os.path.join(idir, "o")
    q = run_dd(qemu_img, [f"if={src}", f"of={q_out}", *args], q_out,
               preexec_fn=_nofile_max)
    i = run_dd(instar_bin, [f"if={src}", f"of={i_out}", *args], i_out,
               preexec_fn=_nofile_max)
    assert q.rc == 0, q
    assert i.rc == 0, i
    assert i.out == q.out
    assert any(i.out), "the window holds the qemu-io writes"


def test_open_files_limit_names_the_bound(split_vmdk, vmdk_inputs,
                                          instar_bin, qemu_img, tmp_path):
    # 1074 extent files under a hard limit of 200 open files: refused
    # before any extent is opened, with the bound; qemu fails too
    out = str(tmp_path / "o")
    i = run_dd(instar_bin, [f"if={split_vmdk['flat']}", f"of={out}",
                            "bs=1M", "count=1"], out, preexec_fn=_nofile(200))
    assert i.rc == 1, i
    assert "vmdk: too many files referenced: 1074 > " in i.stderr, i.stderr
    assert not i.out_exists
    q = run_dd(qemu_img, [f"if={split_vmdk['flat']}", f"of={out}q",
                          "bs=1M", "count=1"], preexec_fn=_nofile(200))
    assert q.rc == 1, q
    # a small split image still reads under the same limit
    src = vmdk_inputs["multi-twoGbMaxExtentSparse.vmdk"]
    q = run_dd(qemu_img, [f"if={src}", f"of={out}q"], out + "q")
    i = run_dd(instar_bin, [f"if={src}", f"of={out}"], out,
               preexec_fn=_nofile(200))
    assert i.rc == 0, i
    assert i.out == q.out


@pytest.fixture(scope="module")
def empty_hint(tmp_path_factory):
    """Images whose parentFileNameHint is "": qemu 7.2 reads them as
    standalone images (holes read zeros, parentCID is not checked)."""
    d = tmp_path_factory.mktemp("vmdk-empty-hint")
    data = mv.pattern(256 * 1024)
    files = {
        # embedded descriptor, parentCID naming nothing
        "mono.vmdk": mv.sparse(data, holes={0, 1}, desc=mv.descriptor(
            parent="", parent_cid=0x12345678)),
        # a delta-disk createType in the embedded descriptor
        "mono-vmfssparse.vmdk": mv.sparse(data, holes={0, 1},
                                          desc=mv.descriptor(
                                              "vmfsSparse", parent="",
                                              parent_cid=0x12345678)),
        "ext.vmdk": mv.sparse(data, holes={2}, desc=b""),
        "desc-vmfssparse.vmdk": mv.descriptor(
            "vmfsSparse", parent="", parent_cid=0x1234,
            extents=['RW 512 SPARSE "ext.vmdk"']),
        "flat.bin": data,
        "desc-flat.vmdk": mv.descriptor(
            "monolithicFlat", parent="", parent_cid=0x1234,
            extents=['RW 512 FLAT "flat.bin" 0']),
    }
    for name, blob in files.items():
        (d / name).write_bytes(blob)
    return d


@pytest.mark.parametrize("name", ["mono.vmdk", "mono-vmfssparse.vmdk",
                                  "desc-vmfssparse.vmdk", "desc-flat.vmdk"])
def test_empty_parent_hint_reads_standalone(name, empty_hint, instar_bin,
                                            qemu_img, dirs):
    qdir, idir = dirs
    src = str(empty_hint / name)
    q_out, i_out = os.path.join(qdir, "o"), os.path.join(idir, "o")
    q = run_dd(qemu_img, [f"if={src}", f"of={q_out}"], q_out)
    i = run_dd(instar_bin, [f"if={src}", f"of={i_out}"], i_out)
    assert q.rc == 0, q
    assert i.rc == 0, i
    assert i.out == q.out


@pytest.fixture(scope="module")
def big_mono(qemu_img):
    """A 128 TiB monolithicSparse (4 Mi grain directory entries, past the
    old cap of 1 Mi; the file is sparse, about 33 MiB on disk), written
    at both ends. Deleted afterwards."""
    if shutil.disk_usage(tempfile.gettempdir()).free < 1 << 30:
        pytest.skip("less than 1 GiB free for the image")
    top = tempfile.mkdtemp(prefix="instar-vmdk-big-")
    try:
        p = os.path.join(top, "m.vmdk")
        _qemu(qemu_img, "create", "-f", "vmdk", p, "128T")
        if not _qemu_io(p, "write -P 0x55 1000k 100k",
                        f"write -P 0x66 {(128 << 40) - (1 << 20)} 1M"):
            pytest.skip("qemu-io not installed")
        yield p
    finally:
        shutil.rmtree(top)


@pytest.mark.parametrize("window", [
    ["bs=1M", "count=2"],
    ["bs=1M", f"skip={(128 << 20) - 2}", f"count={128 << 20}"],
], ids=["start", "end"])
def test_big_monolithic_sparse_matches_qemu(window, big_mono, instar_bin,
                                            qemu_img, dirs):
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, "o"), os.path.join(idir, "o")
    q = run_dd(qemu_img, [f"if={big_mono}", f"of={q_out}", *window], q_out)
    i = run_dd(instar_bin, [f"if={big_mono}", f"of={i_out}", *window], i_out)
    assert q.rc == 0, q
    assert i.rc == 0, i
    assert i.out == q.out
    assert any(i.out)


# --- instar info (tests/e2e/info_parity.py) --------------------------------

@pytest.mark.parametrize("chain", [[], ["--backing-chain"]],
                         ids=["image", "chain"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_info_matches_qemu(variant, chain, vmdk_inputs, instar_bin,
                           qemu_img):
    info_parity.compare(qemu_img, instar_bin, vmdk_inputs[variant], chain)
