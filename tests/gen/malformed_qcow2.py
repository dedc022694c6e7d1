#!/usr/bin/python3
"""Malformed qcow2 images, built byte by byte (spec: qemu's
docs/interop/qcow2.txt), for the refusal tests in
tests/e2e/test_input_qcow2.py. instar must refuse each one: exit 1, a
message naming qcow2, no output file, no hang.

    python3 tests/gen/malformed_qcow2.py DIR     # write every case into DIR

A case is (name, files, input, args): `files` maps file names to bytes (the
input and anything it refers to), `input` is the file to pass as if=, and
`args` are extra dd arguments (e.g. -f qcow2 where the probe would see raw).
"""
import os
import struct
import sys

CS_BITS = 12
CS = 1 << CS_BITS  # 4 KiB clusters keep the images small
COPIED = 1 << 63
COMPRESSED = 1 << 62

EXT_BACKING_FMT = 0xE2792ACA
EXT_FEATURES = 0x6803F857
EXT_DATA_FILE = 0x44415441


class Image:
    """cluster 0 header, 1 L1 table, 2 L2 table, 3.. data clusters."""

    def __init__(self, version=3, vsize=4 * CS, nclusters=8, incompat=0):
        self.d = bytearray(nclusters * CS)
        for i in range(3 * CS, len(self.d)):
            self.d[i] = (i * 13 + 1) & 0xFF or 1
        self.version = version
        self.ext_at = 104 if version == 3 else 72
        self.d[0:4] = b"QFI\xfb"
        self.be32(4, version)
        self.be32(20, CS_BITS)
        self.be64(24, vsize)
        self.be32(36, 1)          # l1_size
        self.be64(40, CS)         # l1_table_offset
        self.be32(56, 1)          # refcount_table_clusters (at offset 0:
                                  # never read, only checked)
        self.be64(CS, 2 * CS | COPIED)
        if version == 3:
            self.be64(72, incompat)
            self.be32(96, 4)      # refcount_order
            self.be32(100, 104)   # header_length
        for c in range(4):        # guest cluster c -> host cluster 3 + c
            self.l2(c, (3 + c) * CS | COPIED)

    def be32(self, off, v):
        self.d[off:off + 4] = struct.pack(">I", v)

    def be64(self, off, v):
        self.d[off:off + 8] = struct.pack(">Q", v)

    def l2(self, idx, entry, bitmap=None):
        eb = 16 if bitmap is not None else 8
        self.be64(2 * CS + idx * eb, entry)
        if bitmap is not None:
            self.be64(2 * CS + idx * 16 + 8, bitmap)

    def ext(self, typ, data):
        self.be32(self.ext_at, typ)
        self.be32(self.ext_at + 4, len(data))
        self.d[self.ext_at + 8:self.ext_at + 8 + len(data)] = data
        self.ext_at += 8 + (len(data) + 7) // 8 * 8

    def backing(self, name, fmt=None):
        if fmt:
            self.ext(EXT_BACKING_FMT, fmt.encode())
        off = self.ext_at + 8
        raw = name.encode()
        self.d[off:off + len(raw)] = raw
        self.be64(8, off)
        self.be32(16, len(raw))
        return self

    def bytes(self):
        return bytes(self.d)


def _patched(fn, **kw):
    img = Image(**kw)
    fn(img)
    return img.bytes()


def _ext_l2_small_clusters():
    img = Image(incompat=16, nclusters=8)
    # 4 KiB clusters are too small for extended L2 (needs 16 KiB): that
    # alone must be refused, which is this case's point.
    return img.bytes()


def _chain(n):
    """n qcow2 images, each backed by the next; the last one by itself
    through the first: a loop."""
    files = {}
    for i in range(n):
        nxt = f"loop{(i + 1) % n}.qcow2"
        files[f"loop{i}.qcow2"] = Image().backing(nxt, "qcow2").bytes()
    return files


def _deep(n):
    files = {}
    for i in range(n):
        img = Image()
        if i + 1 < n:
            img.backing(f"deep{i + 1}.qcow2", "qcow2")
        files[f"deep{i}.qcow2"] = img.bytes()
    return files


def cases():
    c = []

    def add(name, data, args=(), extra=None):
        files = {name + ".qcow2": data}
        files.update(extra or {})
        c.append((name, files, name + ".qcow2", list(args)))

    good = Image().bytes()
    add("truncated-header", good[:50], ["-f", "qcow2"])
    add("truncated-v3-header", good[:90])
    add("bad-magic", b"QFI\x00" + good[4:], ["-f", "qcow2"])
    add("version-1", _patched(lambda i: i.be32(4, 1)))
    add("version-4", _patched(lambda i: i.be32(4, 4)))
    add("cluster-bits-8", _patched(lambda i: i.be32(20, 8)))
    add("cluster-bits-31", _patched(lambda i: i.be32(20, 31)))
    add("header-length-odd", _patched(lambda i: i.be32(100, 105)))
    add("header-length-huge", _patched(lambda i: i.be32(100, 0xFFFFFFF8)))
    add("refcount-order-7", _patched(lambda i: i.be32(96, 7)))
    add("vsize-huge", _patched(lambda i: i.be64(24, 1 << 62)))
    add("l1-size-huge", _patched(lambda i: i.be32(36, 0xFFFFFFFF)))
    add("l1-too-small", _patched(lambda i: i.be64(24, 1 << 30)))
    add("l1-past-eof", _patched(lambda i: i.be64(40, 1 << 40)))
    add("l1-unaligned", _patched(lambda i: i.be64(40, CS + 8)))
    add("l1-in-header", _patched(lambda i: i.be64(40, 0)))
    add("l2-past-eof", _patched(lambda i: i.be64(CS, (1 << 40) | COPIED)))
    add("l2-unaligned", _patched(lambda i: i.be64(CS, 2 * CS + 512)))
    add("data-past-eof", _patched(lambda i: i.l2(1, (1 << 40) | COPIED)))
    add("data-unaligned", _patched(lambda i: i.l2(1, 4 * CS + 512 | COPIED)))
    add("data-in-header", _patched(lambda i: i.l2(2, COPIED)))
    add("compressed-garbage", _patched(
        lambda i: (i.l2(0, COMPRESSED | (1 << (62 - (CS_BITS - 8))) | 3 * CS),
                   i.d.__setitem__(slice(3 * CS, 4 * CS), b"\xff" * CS))))
    add("compressed-past-eof", _patched(lambda i: i.l2(0, COMPRESSED | 1 << 30)))
    add("compressed-in-header", _patched(lambda i: i.l2(0, COMPRESSED | 100)))
    add("zero-flag-v2", _patched(lambda i: i.l2(1, 4 * CS | 1), version=2))
    add("refcount-table-missing", _patched(lambda i: i.be32(56, 0)))
    add("refcount-table-huge", _patched(lambda i: i.be32(56, 1 << 31)))
    add("refcount-table-unaligned", _patched(lambda i: i.be64(48, 512)))
    add("refcount-table-past-qemu-limit",
        _patched(lambda i: i.be64(48, 0x7FFFFFFFC0000000)))
    add("encrypted-aes", _patched(lambda i: i.be32(32, 1)))
    add("encrypted-luks", _patched(lambda i: i.be32(32, 2)))
    add("zstd", _patched(lambda i: (i.be64(72, 8), i.be32(100, 112),
                                    i.d.__setitem__(104, 1))))
    add("compression-bit-no-type", _patched(lambda i: i.be64(72, 8)))
    add("unknown-incompat", _patched(lambda i: i.be64(72, 1 << 9)))
    add("ext-l2-small-clusters", _ext_l2_small_clusters())
    add("ext-overflow", _patched(lambda i: (i.be32(104, 0x1234), i.be32(108, 1 << 20))))
    add("backing-fmt-long", _patched(lambda i: i.ext(EXT_BACKING_FMT, b"x" * 40)))
    add("data-file-no-name", _patched(lambda i: i.be64(72, 4)))
    add("data-file-raw-alone", _patched(lambda i: i.be64(88, 2)))
    add("data-file-escape", _patched(lambda i: (i.be64(72, 4),
                                                i.ext(EXT_DATA_FILE, b"../data.raw"))))
    add("backing-name-long", _patched(lambda i: (i.backing("b"), i.be32(16, 2000))))
    add("backing-outside-cluster", _patched(lambda i: (i.backing("b"), i.be64(8, CS - 2),
                                                       i.be32(16, 10))))
    add("backing-parent-dir", Image().backing("../x.qcow2").bytes())
    add("backing-absolute", Image().backing("/etc/passwd", "raw").bytes())
    add("backing-missing", Image().backing("missing.qcow2", "qcow2").bytes())
    add("backing-self", Image().backing("backing-self.qcow2", "qcow2").bytes())
    add("backing-json", Image().backing(
        'json:{"driver":"raw","file":{"filename":"/etc/passwd"}}').bytes())
    add("backing-fmt-unknown", Image().backing("b.raw", "qed").bytes(),
        extra={"b.raw": b"\x01" * 16384})
    add("backing-corrupt", _patched(lambda i: (i.l2(0, 0), i.backing("inner.qcow2", "qcow2"))),
        extra={"inner.qcow2": _patched(lambda i: i.be64(CS, (1 << 40) | COPIED))})
    loop = _chain(2)
    c.append(("backing-loop", loop, "loop0.qcow2", []))
    deep = _deep(20)
    c.append(("backing-too-deep", deep, "deep0.qcow2", []))
    return c


def write_case(directory, case):
    name, files, inp, args = case
    d = os.path.join(directory, name)
    os.makedirs(d, exist_ok=True)
    for fname, data in files.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)
    return os.path.join(d, inp), args


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    for case in cases():
        path, args = write_case(argv[1], case)
        print(case[0], path, " ".join(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
