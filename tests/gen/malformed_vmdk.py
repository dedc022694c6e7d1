#!/usr/bin/python3
"""Handcrafted vmdk images: a small builder for hosted sparse extents
("KDMV", VMware Virtual Disk Format 1.1) and text descriptors, and a set of
malformed images instar must refuse cleanly.

    python3 tests/gen/malformed_vmdk.py DIR     # write every malformed case

Each case is a directory entry `NAME.vmdk` (plus the files it refers to);
`cases(DIR)` returns [(name, path, expected substring of the message)].
The builder is also used by the e2e tests for variants qemu-img cannot
create (a VMware-style streamOptimized image with its GD in the footer,
zeroed-grain entries, unallocated grain tables).
"""
import os
import struct
import sys
import zlib

SECTOR = 512
GD_AT_END = 0xFFFFFFFFFFFFFFFF
FLAG_NL_TEST = 1
FLAG_RGD = 2
FLAG_ZERO_GRAIN = 4
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17


def header(capacity, grain=128, desc_off=1, desc_size=20, gtes=512,
           rgd_off=0, gd_off=0, overhead=128, flags=FLAG_NL_TEST | FLAG_RGD,
           version=1, compress=0, magic=b"KDMV"):
    h = struct.pack("<4sIIQQQQIQQQB4sH", magic, version, flags, capacity,
                    grain, desc_off, desc_size, gtes, rgd_off, gd_off,
                    overhead, 0, b"\n \r\n", compress)
    return h.ljust(SECTOR, b"\0")


def descriptor(create_type="monolithicSparse", cid=0x12345678,
               parent_cid=0xFFFFFFFF, parent=None, extents=()):
    lines = ["# Disk DescriptorFile", "version=1", f"CID={cid:08x}",
             f"parentCID={parent_cid:08x}", f'createType="{create_type}"']
    if parent is not None:
        lines.append(f'parentFileNameHint="{parent}"')
    lines.append("")
    lines.append("# Extent description")
    lines.extend(extents)
    lines.append("")
    return ("\n".join(lines) + "\n").encode()


def sparse(data, grain=128, gtes=512, desc=None, zero_grains=(),
           holes=(), version=1, flags=None, compressed=False,
           gd_at_end=False, sparse_gts=False):
    """A hosted sparse extent holding `data` (bytes, a multiple of 512).

    zero_grains: grain numbers written as GTE 1 (zeroed grain).
    holes: grain numbers left unallocated (GTE 0); all-zero grains are
    also left unallocated. compressed: streamOptimized-style grains with
    markers. gd_at_end: header gdOffset = GD_AT_END and a footer.
    sparse_gts: grain tables whose grains are all holes get GD entry 0.
    """
    assert len(data) % SECTOR == 0
    capacity = len(data) // SECTOR
    gbytes = grain * SECTOR
    ngrains = (capacity + grain - 1) // grain
    ngts = max(1, (ngrains + gtes - 1) // gtes)
    desc = desc if desc is not None else descriptor()
    desc_sectors = max(1, (len(desc) + SECTOR - 1) // SECTOR)
    gd_sectors = (ngts * 4 + SECTOR - 1) // SECTOR
    gt_sectors = (gtes * 4 + SECTOR - 1) // SECTOR
    desc_off = 1
    rgd_off = desc_off + desc_sectors
    gd_off = rgd_off + gd_sectors + ngts * gt_sectors
    meta_end = gd_off + gd_sectors + ngts * gt_sectors
    overhead = (meta_end + grain - 1) // grain * grain
    if flags is None:
        flags = FLAG_NL_TEST | FLAG_RGD
        if zero_grains:
            flags |= FLAG_ZERO_GRAIN
        if compressed:
            flags |= FLAG_COMPRESSED | FLAG_MARKERS
    body = bytearray()
    gte = [0] * (ngts * gtes)
    pos = overhead
    for g in range(ngrains):
        chunk = data[g * gbytes:(g + 1) * gbytes]
        if g in zero_grains:
            gte[g] = 1
            continue
        if g in holes or not any(chunk):
            continue
        if compressed:
            z = zlib.compress(chunk)
            blob = struct.pack("<QI", g * grain, len(z)) + z
        else:
            blob = chunk.ljust(gbytes, b"\0")
        blob = blob.ljust((len(blob) + SECTOR - 1) // SECTOR * SECTOR, b"\0")
        gte[g] = pos
        body += blob
        pos += len(blob) // SECTOR
    gd_entries = []
    gts = bytearray()
    for t in range(ngts):
        ents = gte[t * gtes:(t + 1) * gtes]
        if sparse_gts and not any(ents):
            gd_entries.append(0)
            gts += bytes(gt_sectors * SECTOR)
            continue
        gd_entries.append(gd_off + gd_sectors + t * gt_sectors)
        gts += struct.pack(f"<{gtes}I", *ents).ljust(gt_sectors * SECTOR, b"\0")
    rgd_entries = [e - gd_off + rgd_off if e else 0 for e in gd_entries]

    def gd_bytes(ents):
        return struct.pack(f"<{ngts}I", *ents).ljust(gd_sectors * SECTOR, b"\0")

    img = bytearray(header(capacity, grain, desc_off, desc_sectors, gtes,
                           rgd_off, GD_AT_END if gd_at_end else gd_off,
                           overhead, flags, version, 1 if compressed else 0))
    img += desc.ljust(desc_sectors * SECTOR, b"\0")
    img += gd_bytes(rgd_entries) + gts
    img += gd_bytes(gd_entries) + gts
    img = img.ljust(overhead * SECTOR, b"\0")
    img += body
    if gd_at_end:
        # footer marker, footer (a header copy with the real gdOffset), EOS
        img += struct.pack("<QII", 1, 0, 3).ljust(SECTOR, b"\0")
        img += header(capacity, grain, desc_off, desc_sectors, gtes,
                      rgd_off, gd_off, overhead, flags, version,
                      1 if compressed else 0)
        img += bytes(SECTOR)
    return bytes(img)


def pattern(n, seed=1):
    return bytes(((i * 7 + (i >> 9) + seed) % 255) + 1 for i in range(n))


def _w(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    return os.path.join(d, name)


def _patch(img, off, fmt, *vals):
    b = bytearray(img)
    struct.pack_into(fmt, b, off, *vals)
    return bytes(b)


def cases(d):
    """Writes every malformed case into d; returns [(name, path, hint)]."""
    os.makedirs(d, exist_ok=True)
    data = pattern(256 * 1024)
    good = sparse(data)
    out = []

    def add(name, img, hint="vmdk"):
        out.append((name, _w(d, name + ".vmdk", img), hint))

    add("truncated-header", good[:100], "vmdk")
    add("bad-version", _patch(good, 4, "<I", 4), "version 4")
    add("grain-size-zero", _patch(good, 20, "<Q", 0), "grainSize")
    add("grain-size-huge", _patch(good, 20, "<Q", 1 << 40), "grainSize")
    add("gtes-zero", _patch(good, 44, "<I", 0), "numGTEsPerGT")
    add("gtes-too-many", _patch(good, 44, "<I", 4096), "numGTEsPerGT")
    add("capacity-zero", _patch(good, 12, "<Q", 0), "capacity")
    add("capacity-huge", _patch(good, 12, "<Q", 1 << 62), "capacity")
    add("gd-past-eof", _patch(good, 56, "<Q", 1 << 30), "past the end")
    add("gd-zero", _patch(good, 56, "<Q", 0), "gdOffset")
    gd_off = struct.unpack_from("<Q", good, 56)[0]
    add("gt-past-eof", _patch(good, gd_off * SECTOR, "<I", 0x7FFFFFFF),
        "past the end")
    gt_off = struct.unpack_from("<I", good, gd_off * SECTOR)[0]
    add("grain-past-eof", _patch(good, gt_off * SECTOR, "<I", 0x7FFFFFF0),
        "past the end")
    add("grain-in-metadata", _patch(good, gt_off * SECTOR, "<I", 5),
        "metadata")
    add("unknown-compression", _patch(good, 77, "<H", 7), "compressAlgorithm")
    add("desc-no-cid", sparse(data, desc=b"version=1\ncreateType=\"x\"\n"),
        "CID")

    # compressed grain whose zlib stream is garbage
    st = bytearray(sparse(data, compressed=True))
    gd = struct.unpack_from("<Q", st, 56)[0]
    gt = struct.unpack_from("<I", st, gd * SECTOR)[0]
    g0 = struct.unpack_from("<I", st, gt * SECTOR)[0]
    st[g0 * SECTOR + 12:g0 * SECTOR + 40] = b"\xde\xad" * 14
    add("compressed-garbage", bytes(st), "decompress")
    st = _patch(sparse(data, compressed=True), g0 * SECTOR + 8, "<I",
                0x7FFFFFFF)
    add("compressed-size-huge", st, "vmdk")
    # footer says GD at end but the footer is missing
    st = sparse(data, compressed=True, gd_at_end=True)
    add("footer-missing", st[:-3 * SECTOR], "footer")
    add("footer-bad-magic", st[:-2 * SECTOR] + b"XXXX" + st[-2 * SECTOR + 4:],
        "footer")

    # descriptor files
    def desc_file(name, extents, create="monolithicFlat", hint="vmdk",
                  parent=None, pcid=0xFFFFFFFF):
        add(name, descriptor(create, extents=extents, parent=parent,
                             parent_cid=pcid), hint)

    _w(d, "flat.bin", data)
    desc_file("desc-unsupported-type", ['RW 512 FLAT "flat.bin" 0'],
              create="monolithicSparse", hint="createType")
    desc_file("desc-flat-no-offset", ['RW 512 FLAT "flat.bin"'],
              hint="extent line")
    desc_file("desc-negative-offset", ['RW 512 FLAT "flat.bin" -4'],
              hint="extent line")
    desc_file("extent-escape-dotdot", ['RW 512 FLAT "../flat.bin" 0'],
              hint="cannot open")
    desc_file("extent-escape-abs", ['RW 512 FLAT "/etc/passwd" 0'],
              hint="cannot open")
    desc_file("extent-missing", ['RW 512 FLAT "missing.bin" 0'],
              hint="cannot open")
    desc_file("extent-self-sparse",
              ['RW 512 SPARSE "extent-self-sparse.vmdk"'], hint="vmdk")
    desc_file("extent-sesparse", ['RW 512 SESPARSE "flat.bin"'],
              hint="not supported")
    desc_file("extent-sparse-not-kdmv", ['RW 512 SPARSE "flat.bin"'],
              hint="vmdk")
    # one more extent than LIMIT_VMDK_EXTENTS, in lines short enough for
    # the descriptor qemu reads
    desc_file("extent-count-huge", ['RW 1 VMFS "f"'] * 65537,
              hint="more than 65536 extents")
    desc_file("extent-sectors-huge",
              ['RW 144115188075855871 FLAT "flat.bin" 0'], hint="vmdk")
    add("desc-too-large", b"version=1\n" + b"#" * (2 << 20) + b"\n",
        "descriptor")
    # qemu reads 1 MiB - 1 bytes of a descriptor file; one byte more
    text = descriptor("monolithicFlat", extents=['RW 512 FLAT "flat.bin" 0'])
    add("desc-one-byte-too-large",
        text + b"#" * ((1 << 20) - len(text) - 1) + b"\n",
        "exceeds the limit 1048575")
    add("desc-no-create-type",
        b"version=1\nCID=1\nparentCID=ffffffff\nRW 512 FLAT \"flat.bin\" 0\n",
        "createType")

    # parents
    for name, parent in [("parent-escape-dotdot", "../base.vmdk"),
                         ("parent-escape-abs", "/etc/passwd"),
                         ("parent-missing", "nosuch.vmdk")]:
        add(name, sparse(data, holes={0, 1},
                         desc=descriptor(parent=parent, parent_cid=1)),
            "cannot open")
    add("parent-self", sparse(data, holes={0, 1},
                              desc=descriptor(parent="parent-self.vmdk",
                                              parent_cid=0x12345678)),
        "vmdk")
    # a -> b -> a
    add("cycle-a", sparse(data, holes={0}, desc=descriptor(
        parent="cycle-b.vmdk", cid=0xA, parent_cid=0xB)), "vmdk")
    add("cycle-b", sparse(data, holes={0}, desc=descriptor(
        parent="cycle-a.vmdk", cid=0xB, parent_cid=0xA)), "vmdk")
    _w(d, "base.vmdk", sparse(data))
    add("parent-not-vmdk", sparse(data, holes={0}, desc=descriptor(
        parent="flat.bin", parent_cid=1)), "vmdk")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for n, p, h in cases(sys.argv[1]):
        print(f"{n}\t{p}\t{h}")
