"""qcow2 input: instar dd vs the live qemu-img dd, byte for byte.

Every variant is made with qemu-img create/convert (and qemu-io for partial
writes, so allocated/unallocated boundaries fall inside clusters and
subclusters); both tools copy the same windows and must agree on exit
status and output bytes. The malformed images of tests/gen/malformed_qcow2.py
must each be refused cleanly.
"""
import os
import shutil
import struct
import subprocess
import time

import pytest

from conftest import listing, run_dd

import info_parity
import malformed_qcow2

MiB = 1 << 20


def _qemu_io():
    return shutil.which("qemu-io")


def _run(*argv, cwd=None):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, cwd=cwd)


def _set_incompat_bit(path, bit):
    with open(path, "r+b") as f:
        f.seek(72)
        v = struct.unpack(">Q", f.read(8))[0]
        f.seek(72)
        f.write(struct.pack(">Q", v | (1 << bit)))


def _drop_backing_format(path):
    """Turns the backing-format extension into an unknown one, so the
    backing file is probed (qemu-img 7.2 no longer creates such images)."""
    with open(path, "r+b") as f:
        head = bytearray(f.read(65536))
        i = head.find(bytes.fromhex("e2792aca"))
        assert i >= 0
        f.seek(i)
        f.write(bytes.fromhex("0badf00d"))


# Writes: (offset, length, pattern byte or "z" for write -z). Offsets are
# deliberately not cluster- or subcluster-aligned.
OV_WRITES = [(1000, 3000, 0x55), (70000, 100000, 0x66), (300000, 5000, "z"),
             (1048576 + 512, 512, 0x77), (2 * MiB - 1400, 1200, 0x78)]


def _write(qemu_io, path, writes):
    cmds = []
    for off, n, p in writes:
        cmds += ["-c", f"write -z {off} {n}" if p == "z"
                 else f"write -P {p:#x} {off} {n}"]
    _run(qemu_io, *cmds, path, cwd=os.path.dirname(path))


@pytest.fixture(scope="session")
def qcow2_inputs(images, qemu_img, tmp_path_factory):
    """name -> path of every qcow2 variant (all in one directory, so
    backing files are found by relative name)."""
    qemu_io = _qemu_io()
    if not qemu_io:
        pytest.skip("qemu-io not installed (qemu-utils)")
    d = str(tmp_path_factory.mktemp("qcow2"))
    out = {}

    def p(name):
        return os.path.join(d, name + ".qcow2")

    def convert(name, src, *opts):
        _run(qemu_img, "convert", "-f", "raw", "-O", "qcow2", *opts,
             images[src], p(name))
        out[name] = p(name)

    def create(name, size, *opts, writes=None):
        # In d: qemu creates and opens a relative data_file= in its cwd.
        _run(qemu_img, "create", "-f", "qcow2", *opts, p(name), str(size),
             cwd=d)
        if writes:
            _write(qemu_io, p(name), writes)
        out[name] = p(name)

    convert("v3", "mid")
    convert("v2", "mid", "-o", "compat=0.10")
    convert("c512", "mid", "-o", "cluster_size=512")
    convert("c2m", "multi", "-o", "cluster_size=2M")
    convert("comp", "multi", "-c")
    convert("comp-512", "mid", "-c", "-o", "cluster_size=512")
    convert("comp-2m", "multi", "-c", "-o", "cluster_size=2M")
    convert("extl2", "multi", "-o", "extended_l2=on")
    convert("extl2-16k", "mid", "-o", "extended_l2=on,cluster_size=16k")
    convert("prealloc-meta", "mid", "-o", "preallocation=metadata")
    convert("prealloc-full", "mid", "-o", "preallocation=full")
    convert("refcount1-lazy", "mid", "-o", "refcount_bits=1,lazy_refcounts=on")
    convert("tiny", "tiny")
    convert("empty", "empty")
    convert("huge", "huge")
    create("zeros", 4 * MiB, writes=[(0, 3 * MiB, 0x11), (65536 + 100, 200000, "z")])
    create("meta-empty", 3 * MiB, "-o", "preallocation=metadata")
    create("odd-size", 1000000, writes=[(0, 1000000, 0x22)])
    for bit, name in ((0, "dirty"), (1, "corrupt")):
        shutil.copyfile(p("v3"), p(name))
        _set_incompat_bit(p(name), bit)
        out[name] = p(name)

    # External data files (qemu-img names them relative to the image).
    create("datafile", 3 * MiB, "-o", "data_file=datafile.data",
           writes=OV_WRITES)
    create("datafile-raw", 3 * MiB,
           "-o", "data_file=datafile-raw.data,data_file_raw=on",
           writes=OV_WRITES)

    # Backing chains over a qcow2 base (5 MiB + 1536) and a raw base.
    convert("base", "multi")
    convert("base-comp", "multi", "-c")
    shutil.copyfile(images["multi"], os.path.join(d, "base.raw"))
    bq = ["-b", "base.qcow2", "-F", "qcow2"]
    create("ov-short", 2 * MiB, *bq, writes=OV_WRITES)
    create("ov-same", 5 * MiB + 1536, *bq, writes=OV_WRITES)
    create("ov-long", 8 * MiB, *bq,
           writes=OV_WRITES + [(7 * MiB + 3, 5000, 0x99)])
    create("ov-odd", 1000000, *bq, writes=[(4096, 600, 0x33)])
    create("ov-raw", 6 * MiB, "-b", "base.raw", "-F", "raw", writes=OV_WRITES)
    create("ov-comp", 5 * MiB, "-b", "base-comp.qcow2", "-F", "qcow2",
           writes=OV_WRITES)
    create("ov-extl2", 6 * MiB, *bq, "-o", "extended_l2=on",
           writes=OV_WRITES + [(3 * MiB + 1024, 2048, 0x44),
                               (3 * MiB + 8192, 2048, "z")])
    create("ov-512", 3 * MiB, *bq, "-o", "cluster_size=512", writes=OV_WRITES)
    create("chain-mid", 4 * MiB, *bq,
           writes=[(500, 70000, 0xA1), (2 * MiB, 65536 * 3, "z")])
    create("chain-top", 6 * MiB, "-b", "chain-mid.qcow2", "-F", "qcow2",
           writes=[(66000, 1000, 0xB2), (2 * MiB + 70000, 10, 0xB3),
                   (5 * MiB, 4096, 0xB4)])
    for name, back, fmt in (("nofmt-raw", "base.raw", "raw"),
                            ("nofmt-qcow2", "base.qcow2", "qcow2")):
        create(name, 6 * MiB, "-b", back, "-F", fmt, writes=OV_WRITES[:2])
        _drop_backing_format(p(name))
    return out


WINDOWS = [
    [],
    ["bs=1000", "skip=3", "count=700"],
    ["bs=4096", "skip=13", "count=300"],
    ["bs=1M", "skip=1", "count=3"],
    ["bs=65536", "skip=31"],
]
VARIANTS = [
    "v3", "v2", "c512", "c2m", "comp", "comp-512", "comp-2m", "extl2",
    "extl2-16k", "prealloc-meta", "prealloc-full", "refcount1-lazy", "tiny",
    "empty", "zeros", "meta-empty", "odd-size", "dirty", "corrupt",
    "datafile", "datafile-raw", "ov-short", "ov-same", "ov-long", "ov-odd",
    "ov-raw", "ov-comp", "ov-extl2", "ov-512", "chain-top", "nofmt-raw",
    "nofmt-qcow2",
]


def _compare(qemu_img, instar_bin, path, extra, tmp_path, tag=""):
    q_out = str(tmp_path / f"q{tag}.raw")
    i_out = str(tmp_path / f"i{tag}.raw")
    # cwd: qemu 7.2 resolves a relative data file name against the working
    # directory (backing names against the image's); instar always uses the
    # image's directory.
    cwd = os.path.dirname(path)
    q = run_dd(qemu_img, [f"if={path}", f"of={q_out}", *extra], q_out, cwd=cwd)
    i = run_dd(instar_bin, [f"if={path}", f"of={i_out}", *extra], i_out)
    assert q.rc == 0, q
    assert i.rc == q.rc, i
    assert i.out is not None and len(i.out) == len(q.out), (i, q)
    if i.out != q.out:
        first = next(k for k in range(len(q.out)) if i.out[k] != q.out[k])
        pytest.fail(f"outputs differ first at byte {first} of {len(q.out)}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_qcow2_parity(variant, qcow2_inputs, instar_bin, qemu_img, tmp_path):
    for n, extra in enumerate(WINDOWS):
        _compare(qemu_img, instar_bin, qcow2_inputs[variant], extra, tmp_path,
                 str(n))


@pytest.mark.parametrize("vcpus", ["1", "2"])
@pytest.mark.parametrize("variant", ["comp", "comp-512", "comp-2m", "ov-comp"])
def test_compressed_with_one_and_two_vcpus(variant, vcpus, qcow2_inputs,
                                           instar_bin, qemu_img, tmp_path,
                                           monkeypatch):
    """Compressed clusters are inflated on the worker vCPU too (2) or on
    the main one only (1): the bytes must not depend on it."""
    monkeypatch.setenv("INSTAR_VCPUS", vcpus)
    for n, extra in enumerate(WINDOWS):
        _compare(qemu_img, instar_bin, qcow2_inputs[variant], extra, tmp_path,
                 str(n))


def test_compressed_corruption_same_message_with_one_and_two_vcpus(
        qemu_img, instar_bin, tmp_path, monkeypatch):
    """A corrupt cluster in the middle of a batch is reported the same way
    whichever vCPU inflated it."""
    raw = tmp_path / "text.raw"
    raw.write_bytes(b"".join(b"line %08d of a compressible disk\n" % k
                             for k in range(4 * MiB // 34)).ljust(4 * MiB,
                                                                  b"."))
    path = str(tmp_path / "bad.qcow2")
    _run(qemu_img, "convert", "-f", "raw", "-O", "qcow2", "-c", str(raw),
         path)
    with open(path, "r+b") as f:
        data = f.read()
        cluster_bits = struct.unpack(">I", data[20:24])[0]
        l1_off = struct.unpack(">Q", data[40:48])[0]
        l2_off = struct.unpack(">Q", data[l1_off:l1_off + 8])[0] & \
            ((1 << 56) - 512)
        entries = [struct.unpack(">Q", data[l2_off + 8 * k:l2_off + 8 * k + 8])[0]
                   for k in range(64)]
        assert all(e >> 62 == 1 for e in entries), "not all compressed"
        host = entries[37] & ((1 << (62 - (cluster_bits - 8))) - 1)
        f.seek(host)
        f.write(b"\xff" * 16)
    messages = []
    for vcpus in ("1", "2"):
        monkeypatch.setenv("INSTAR_VCPUS", vcpus)
        out = str(tmp_path / f"o{vcpus}.raw")
        i = run_dd(instar_bin, [f"if={path}", f"of={out}"], out)
        assert i.rc == 1, i
        assert not os.path.exists(out)
        messages.append(i.stderr)
    assert f"compressed cluster at offset {host} does not decompress" in \
        messages[0], messages[0]
    assert messages[0] == messages[1]


@pytest.mark.parametrize("extra", [
    ["bs=1", "skip=4294967295", "count=4294967297"],
    ["bs=1M", "skip=2047", "count=2049"],
    ["bs=1M", "skip=5119"],
], ids=["4g", "2g", "end"])
def test_qcow2_huge_windows(extra, qcow2_inputs, instar_bin, qemu_img, tmp_path):
    _compare(qemu_img, instar_bin, qcow2_inputs["huge"], extra, tmp_path)


def test_forced_qcow2_format(qcow2_inputs, instar_bin, qemu_img, tmp_path):
    _compare(qemu_img, instar_bin, qcow2_inputs["ov-short"],
             ["-f", "qcow2", "bs=1000", "skip=1"], tmp_path)


# --- corruption qemu-img refuses at open or read ---------------------------

def _patch(path, *fields):
    """fields: (offset, struct format, value) written big-endian."""
    with open(path, "r+b") as f:
        for off, fmt, value in fields:
            f.seek(off)
            f.write(struct.pack(fmt, value))


def _both_refuse(qemu_img, instar_bin, path, tmp_path, extra=()):
    q = run_dd(qemu_img, [f"if={path}", f"of={tmp_path}/q.raw", *extra])
    assert q.rc == 1, q
    return _refused(instar_bin, str(tmp_path), path, list(extra))


# qemu-img 7.2 reads the refcount table at open: "Image does not contain a
# reference count table" (0 clusters), "Reference count table too large"
# (more than 8 MiB of table), "Reference count table offset invalid"
# (unaligned), "Could not initialize refcount handling" (ends past
# 2^63 - 2^30).
@pytest.mark.parametrize("fields,message", [
    ([(56, ">I", 0)], "refcount_table_clusters is 0"),
    ([(56, ">I", 129)], "refcount_table_clusters 129 exceeds 128"),
    ([(56, ">I", 1 << 31)], "refcount_table_clusters 2147483648 exceeds 128"),
    ([(48, ">Q", 512)], "refcount_table_offset 512 is not cluster-aligned"),
    ([(48, ">Q", 0x7FFFFFFFC0000000)], "the last one qemu reads"),
    ([(48, ">Q", 0x7FFFFFFFFFFF0000)], "the last one qemu reads"),
], ids=["none", "129", "2^31", "unaligned", "past-limit", "past-int64"])
def test_refcount_table_refused_like_qemu(fields, message, images, qemu_img,
                                          instar_bin, tmp_path):
    path = str(tmp_path / "r.qcow2")
    _run(qemu_img, "convert", "-f", "raw", "-O", "qcow2", images["mid"], path)
    _patch(path, *fields)
    i = _both_refuse(qemu_img, instar_bin, path, tmp_path)
    assert message in i.stderr, i.stderr


@pytest.mark.parametrize("fields", [
    [(56, ">I", 128)],
    [(48, ">Q", 0)],
    [(48, ">Q", 1 << 40)],
    [(48, ">Q", 0x7FFFFFFFBFFF0000)],
], ids=["128", "offset-0", "past-eof", "at-limit"])
def test_refcount_table_accepted_like_qemu(fields, images, qemu_img,
                                           instar_bin, tmp_path):
    path = str(tmp_path / "r.qcow2")
    _run(qemu_img, "convert", "-f", "raw", "-O", "qcow2", images["mid"], path)
    _patch(path, *fields)
    _compare(qemu_img, instar_bin, path, [], tmp_path)


def _extl2_entry_patched(qemu_img, tmp_path, index, entry, bitmap):
    """A 64 KiB-cluster extended-L2 image (clusters 0-1 data, 2 zero, 3
    partly written) with L2 entry `index` replaced."""
    qemu_io = _qemu_io()
    if not qemu_io:
        pytest.skip("qemu-io not installed (qemu-utils)")
    path = str(tmp_path / "x.qcow2")
    _run(qemu_img, "create", "-q", "-f", "qcow2", "-o", "extended_l2=on",
         path, str(4 * MiB))
    _write(qemu_io, path, [(0, 131072, 0x41), (131072, 65536, "z"),
                           (196608, 4096, 0x42)])
    with open(path, "rb") as f:
        head = f.read(64)
        l1 = struct.unpack(">Q", head[40:48])[0]
        f.seek(l1)
        l2 = struct.unpack(">Q", f.read(8))[0] & ((1 << 56) - 512)
    _patch(path, (l2 + 16 * index, ">Q", entry), (l2 + 16 * index + 8, ">Q",
                                                   bitmap))
    return path


# qemu checks the cluster offset of an extended L2 entry even when no
# subcluster is allocated: "Cluster allocation offset 0x70200 unaligned",
# an I/O error when that cluster is read (other clusters still read).
@pytest.mark.parametrize("bitmap", [0, 0xFFFFFFFF << 32],
                         ids=["empty", "zero-only"])
def test_extl2_unaligned_unused_offset_refused_like_qemu(
        bitmap, qemu_img, instar_bin, tmp_path):
    path = _extl2_entry_patched(qemu_img, tmp_path, 3, 1 << 63 | 0x70200,
                                bitmap)
    i = _both_refuse(qemu_img, instar_bin, path, tmp_path, ["bs=65536"])
    assert "cluster offset 459264 is not cluster-aligned" in i.stderr
    _compare(qemu_img, instar_bin, path, ["bs=65536", "count=3"], tmp_path)


def test_extl2_aligned_unused_offset_past_eof_read_like_qemu(
        qemu_img, instar_bin, tmp_path):
    path = _extl2_entry_patched(qemu_img, tmp_path, 4, 1 << 63 | 0x10000000,
                                0)
    _compare(qemu_img, instar_bin, path, ["bs=65536"], tmp_path)


# --- backing names with NUL bytes ---------------------------------------------

def _set_backing_name(path, payload, fmt=None):
    """Rewrites the backing name bytes (backing_file_size = len(payload))
    and optionally the backing format extension's name."""
    with open(path, "r+b") as f:
        head = bytearray(f.read(65536))
        off = struct.unpack(">Q", head[8:16])[0]
        old = struct.unpack(">I", head[16:20])[0]
        head[off:off + max(old, len(payload))] = \
            payload.ljust(max(old, len(payload)), b"\0")
        head[16:20] = struct.pack(">I", len(payload))
        if fmt is not None:
            i = head.find(bytes.fromhex("e2792aca"))
            assert i >= 0 and len(fmt) <= struct.unpack(">I", head[i + 4:i + 8])[0]
            head[i + 4:i + 8] = struct.pack(">I", len(fmt))
            head[i + 8:i + 8 + len(fmt)] = fmt
        f.seek(0)
        f.write(head)


# qemu-img 7.2 keeps the name as a C string: it ends at the first NUL, and
# an empty one means no backing file (the backing format is then unused).
@pytest.mark.parametrize("payload,fmt", [
    (b"base.raw\0\0\0\0", None),
    (b"base.raw\0junk", None),
    (b"\0\0\0\0", None),
    (b"\0base.raw", None),
    (b"\0\0\0", b"qed"),
], ids=["padded", "junk-after-nul", "all-nul", "leading-nul", "all-nul-qed"])
def test_backing_name_with_nuls(payload, fmt, images, qemu_img, instar_bin,
                                tmp_path):
    qemu_io = _qemu_io()
    if not qemu_io:
        pytest.skip("qemu-io not installed (qemu-utils)")
    shutil.copyfile(images["multi"], tmp_path / "base.raw")
    path = str(tmp_path / "ov.qcow2")
    _run(qemu_img, "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw",
         path, str(5 * MiB), cwd=str(tmp_path))
    _write(qemu_io, path, OV_WRITES)
    _set_backing_name(path, payload, fmt)
    for n, extra in enumerate([["bs=65536"], ["bs=1000", "skip=3", "count=700"]]):
        _compare(qemu_img, instar_bin, path, extra, tmp_path, str(n))


def test_backing_name_cut_at_nul_names_a_missing_file(images, qemu_img,
                                                      instar_bin, tmp_path):
    """b"base\0junk": both open "base", which does not exist."""
    shutil.copyfile(images["multi"], tmp_path / "base.raw")
    path = str(tmp_path / "ov.qcow2")
    _run(qemu_img, "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw",
         path, str(5 * MiB), cwd=str(tmp_path))
    _set_backing_name(path, b"base\0junk")
    q = run_dd(qemu_img, [f"if={path}", f"of={tmp_path}/q.raw"])
    assert q.rc == 1 and f"Could not open '{tmp_path}/base'" in q.stderr, q
    i = _refused(instar_bin, str(tmp_path), path, [])
    assert "cannot open 'base':" in i.stderr, i.stderr


# --- a deep chain of compressed 2 MiB-cluster images -------------------------

def _text(tag, n):
    """n bytes of compressible text that differ per tag and per line."""
    line, out, k = 0, bytearray(), 0
    while len(out) < n:
        out += b"%s line %08d of a compressible disk\n" % (tag, k)
        k += 1
    return bytes(out[:n])


@pytest.fixture(scope="module")
def chain_2m(qemu_img, tmp_path_factory):
    """c0 (qemu-img convert -c, 2 MiB clusters) <- c1 <- ... <- c15: each
    overlay holds one compressed cluster of its own text (qemu-io write -c)
    at a different place, and every third one an uncompressed partial
    write too. Removed afterwards: the chain is ~180 MB."""
    qemu_io = _qemu_io()
    if not qemu_io:
        pytest.skip("qemu-io not installed (qemu-utils)")
    d = tmp_path_factory.mktemp("chain2m")
    size = 24 * MiB
    (d / "r0.raw").write_bytes(_text(b"base", size))
    _run(qemu_img, "convert", "-f", "raw", "-O", "qcow2", "-c", "-o",
         "cluster_size=2M", str(d / "r0.raw"), str(d / "c0.qcow2"))
    (d / "r0.raw").unlink()
    for k in range(1, 16):
        src = d / "s.bin"
        src.write_bytes(_text(b"level %02d" % k, 2 * MiB))
        _run(qemu_img, "create", "-q", "-f", "qcow2", "-o", "cluster_size=2M",
             "-b", f"c{k - 1}.qcow2", "-F", "qcow2", str(d / f"c{k}.qcow2"),
             str(size), cwd=str(d))
        cmds = ["-c", f"write -q -c -s {src} {(k * 5) % 12 * 2 * MiB} {2 * MiB}"]
        if k % 3 == 0:
            cmds += ["-c", f"write -q -P {0x40 + k} {k * 1000003} 70000"]
        _run(qemu_io, *cmds, str(d / f"c{k}.qcow2"), cwd=str(d))
        src.unlink()
    yield d
    shutil.rmtree(d)


@pytest.mark.parametrize("vcpus", ["1", "2"])
@pytest.mark.parametrize("depth", [5, 16])
def test_deep_compressed_2m_chain(depth, vcpus, chain_2m, instar_bin,
                                  qemu_img, tmp_path, monkeypatch):
    """Each image of the chain used to take its own cluster-sized buffers
    (~8 MiB with 2 MiB clusters): five such images ran out of I/O memory.
    The buffers are now shared by the chain."""
    monkeypatch.setenv("INSTAR_VCPUS", vcpus)
    top = str(chain_2m / f"c{depth - 1}.qcow2")
    # Not qemu-img's default bs=512: it inflates a whole 2 MiB cluster
    # for every 512 bytes (a minute per image).
    for n, extra in enumerate([["bs=1M"], ["bs=1M", "skip=3", "count=9"],
                               ["bs=65536", "skip=31", "count=100"],
                               ["bs=3000", "skip=1001", "count=2000"]]):
        _compare(qemu_img, instar_bin, top, extra, tmp_path, str(n))
    for f in tmp_path.glob("*.raw"):  # 24 MiB each: not worth keeping
        f.unlink()


# --- refusals ---------------------------------------------------------------

def _refused(instar_bin, directory, path, args, timeout=20):
    out = os.path.join(directory, "out.raw")
    before = listing(directory)
    t0 = time.monotonic()
    try:
        i = run_dd(instar_bin, [*args, f"if={path}", f"of={out}"], out,
                   timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("instar hung")
    assert i.rc == 1, i
    assert "qcow2" in i.stderr, i.stderr
    assert listing(directory) == before, "instar left files behind"
    assert time.monotonic() - t0 < 10, "refusal took too long"
    return i


MALFORMED = malformed_qcow2.cases()


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_refused(case, instar_bin, tmp_path):
    path, args = malformed_qcow2.write_case(str(tmp_path), case)
    _refused(instar_bin, os.path.dirname(path), path, args)


def test_zstd_refused_not_misread(images, qemu_img, instar_bin, tmp_path):
    # Divergence: qemu-img reads zstd-compressed clusters; instar refuses
    # them by name rather than guess.
    path = str(tmp_path / "z.qcow2")
    _run(qemu_img, "convert", "-f", "raw", "-O", "qcow2", "-c", "-o",
         "compression_type=zstd", images["mid"], path)
    i = _refused(instar_bin, str(tmp_path), path, [])
    assert "compression_type 1 (zstd) not supported" in i.stderr


def test_encrypted_refused_like_qemu(qemu_img, instar_bin, tmp_path):
    path = str(tmp_path / "e.qcow2")
    _run(qemu_img, "create", "-f", "qcow2", "--object",
         "secret,id=s,data=abc", "-o", "encryption=on,encrypt.key-secret=s",
         path, "1M")
    q = run_dd(qemu_img, [f"if={path}", f"of={tmp_path}/q.raw"])
    assert q.rc == 1
    i = _refused(instar_bin, str(tmp_path), path, [])
    assert "crypt_method 1 (AES encryption) not supported" in i.stderr


def test_backing_outside_directory_refused(qcow2_inputs, qemu_img, instar_bin,
                                           tmp_path):
    # Divergence: qemu follows any path; instar confines backing files to
    # the image's directory.
    sub = tmp_path / "sub"
    sub.mkdir()
    shutil.copyfile(qcow2_inputs["base"], tmp_path / "base.qcow2")
    path = str(sub / "ov.qcow2")
    _run(qemu_img, "create", "-f", "qcow2", "-b", "../base.qcow2", "-F",
         "qcow2", path, "1M")
    i = _refused(instar_bin, str(sub), path, [])
    assert "../base.qcow2" in i.stderr


# --- instar info (tests/e2e/info_parity.py) --------------------------------

@pytest.mark.parametrize("chain", [[], ["--backing-chain"]],
                         ids=["image", "chain"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_info_matches_qemu(variant, chain, qcow2_inputs, instar_bin,
                           qemu_img):
    info_parity.compare(qemu_img, instar_bin, qcow2_inputs[variant], chain)
