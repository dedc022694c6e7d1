#!/usr/bin/python3
"""Handcrafted vhdx images: a small builder (written from the VHDX v1.0
specification, [MS-VHDX]) and the malformed images instar must refuse.

qemu-img cannot create differencing vhdx images ("Backing file not
supported for file format 'vhdx'"), so the builder also makes the parent /
child chains the e2e tests read.

    python3 tests/gen/malformed_vhdx.py DIR     # write every malformed image

Layout the builder uses (every region 1 MiB-aligned, as the spec requires):

    0        "vhdxfile" file type identifier
    64 KiB   header 1, 128 KiB header 2 (CRC-32C each)
    192 KiB  region table 1, 256 KiB region table 2
    1 MiB    log (1 MiB, empty unless asked)
    2 MiB    BAT (1 MiB)
    3 MiB    metadata region (1 MiB: table, then the items at +64 KiB)
    4 MiB    payload blocks and sector bitmaps, in order of allocation
"""
import argparse
import os
import struct
import sys
import uuid

MiB = 1 << 20
KiB = 1 << 10

NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED = 0, 1, 2, 3
FULLY_PRESENT, PARTIALLY_PRESENT = 6, 7
SB_PRESENT = 6

GUID_BAT = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
GUID_METADATA = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
GUID_FILE_PARAMS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
GUID_VSIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
GUID_PAGE83 = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
GUID_LSS = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
GUID_PSS = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
GUID_PARENT = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
GUID_LOCATOR_VHDX = uuid.UUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def guid_bytes(g):
    return g.bytes_le


def fix_checksum(buf, off, size):
    """Recomputes the CRC-32C at off+4 of the size-byte structure at off."""
    body = bytearray(buf[off:off + size])
    body[4:8] = b"\0\0\0\0"
    struct.pack_into("<I", buf, off + 4, crc32c(bytes(body)))


def header(seq, data_write_guid, log_guid=b"\0" * 16, version=1,
           log_version=0, log_len=MiB, log_off=MiB):
    h = bytearray(4096)
    h[0:4] = b"head"
    struct.pack_into("<Q", h, 8, seq)
    h[16:32] = uuid.uuid4().bytes_le
    h[32:48] = data_write_guid
    h[48:64] = log_guid
    struct.pack_into("<HHIQ", h, 64, log_version, version, log_len, log_off)
    fix_checksum(h, 0, 4096)
    return h


def region_table(entries):
    """entries: [(guid, offset, length, required)]"""
    t = bytearray(64 * KiB)
    t[0:4] = b"regi"
    struct.pack_into("<I", t, 8, len(entries))
    for i, (g, off, length, req) in enumerate(entries):
        o = 16 + 32 * i
        t[o:o + 16] = guid_bytes(g)
        struct.pack_into("<QII", t, o + 16, off, length, 1 if req else 0)
    fix_checksum(t, 0, len(t))
    return t


def utf16(s):
    return s.encode("utf-16-le")


def parent_locator(pairs):
    """pairs: [(key, value)] strings, stored UTF-16LE."""
    head = bytearray(guid_bytes(GUID_LOCATOR_VHDX))
    head += struct.pack("<HH", 0, len(pairs))
    strings = bytearray()
    base = 20 + 12 * len(pairs)
    for k, v in pairs:
        kb, vb = utf16(k), utf16(v)
        ko = base + len(strings)
        strings += kb
        vo = base + len(strings)
        strings += vb
        head += struct.pack("<IIHH", ko, vo, len(kb), len(vb))
    return bytes(head + strings)


def guid_text(data_write_guid):
    return "{" + str(uuid.UUID(bytes_le=bytes(data_write_guid))).upper() + "}"


class Image:
    """A vhdx under construction. blocks: {index: (state, bytes|None)};
    bitmaps: {block index: bytes} for partially present blocks (one bit
    per logical sector, 1 = data here)."""

    def __init__(self, vsize, block_size=MiB, lss=512, parent=None,
                 data_write_guid=None):
        self.vsize = vsize
        self.block_size = block_size
        self.lss = lss
        self.pss = 4096
        self.parent = parent  # [(key, value)] locator pairs or None
        self.dwg = data_write_guid or uuid.uuid4().bytes_le
        self.blocks = {}
        self.bitmaps = {}
        self.leave_allocated = False
        self.extra_meta = []      # [(guid, data, flags)]
        self.extra_regions = []   # [(guid, off, len, required)]
        self.log_guid = b"\0" * 16
        self.log = None           # bytes placed at the log offset

    @property
    def chunk_ratio(self):
        return (1 << 23) * self.lss // self.block_size

    @property
    def nblocks(self):
        return -(-self.vsize // self.block_size)

    def bat_index(self, b):
        return b + b // self.chunk_ratio

    def bat_entries(self):
        cr, n = self.chunk_ratio, self.nblocks
        if self.parent is not None:
            return -(-n // cr) * (cr + 1)
        return n + (n - 1) // cr if n else 0

    def write(self, b, data, state=FULLY_PRESENT):
        self.blocks[b] = (state, data)

    def expected(self, parent=b""):
        """The virtual disk this image reads as (per the spec), over the
        parent's virtual disk `parent`: absent blocks of a differencing
        image come from the parent (zeros past its end); zero, undefined
        and unmapped blocks read as zeros."""
        out = bytearray(self.vsize)
        if self.parent is not None:
            n = min(len(parent), self.vsize)
            out[:n] = parent[:n]
        bs, lss = self.block_size, self.lss
        for b in range(self.nblocks):
            lo, hi = b * bs, min((b + 1) * bs, self.vsize)
            state, data = self.blocks.get(b, (NOT_PRESENT, None))
            if state == NOT_PRESENT and self.parent is not None:
                continue
            blk = bytearray(bs)
            if data is not None:
                blk[:len(data)] = data
            if state == FULLY_PRESENT:
                out[lo:hi] = blk[:hi - lo]
            elif state == PARTIALLY_PRESENT:
                bm = self.bitmaps[b]
                for s in range(-(-(hi - lo) // lss)):
                    if bm[s // 8] >> (s % 8) & 1:
                        e = min(hi, lo + (s + 1) * lss)
                        out[lo + s * lss:e] = blk[s * lss:e - lo]
            else:
                out[lo:hi] = bytes(hi - lo)
        return bytes(out)

    def metadata(self):
        fp = struct.pack("<II", self.block_size,
                         (1 if self.leave_allocated else 0)
                         | (2 if self.parent is not None else 0))
        items = [(GUID_FILE_PARAMS, fp, 4),
                 (GUID_VSIZE, struct.pack("<Q", self.vsize), 6),
                 (GUID_PAGE83, uuid.uuid4().bytes_le, 6),
                 (GUID_LSS, struct.pack("<I", self.lss), 6),
                 (GUID_PSS, struct.pack("<I", self.pss), 6)]
        if self.parent is not None:
            items.append((GUID_PARENT, parent_locator(self.parent), 6))
        items += self.extra_meta
        m = bytearray(MiB)
        m[0:8] = b"metadata"
        struct.pack_into("<H", m, 10, len(items))
        off = 64 * KiB
        for i, (g, data, flags) in enumerate(items):
            e = 32 + 32 * i
            m[e:e + 16] = guid_bytes(g)
            struct.pack_into("<III", m, e + 16, off, len(data), flags)
            m[off:off + len(data)] = data
            off += -(-len(data) // 4096) * 4096 if data else 0
        return m

    def build(self):
        f = bytearray(4 * MiB)
        f[0:8] = b"vhdxfile"
        f[8:8 + 12] = utf16("instar")
        f[64 * KiB:68 * KiB] = header(1, self.dwg, self.log_guid)
        f[128 * KiB:132 * KiB] = header(2, self.dwg, self.log_guid)
        rt = region_table([(GUID_BAT, 2 * MiB, MiB, True),
                           (GUID_METADATA, 3 * MiB, MiB, True)]
                          + self.extra_regions)
        f[192 * KiB:256 * KiB] = rt
        f[256 * KiB:320 * KiB] = rt
        if self.log:
            f[MiB:MiB + len(self.log)] = self.log
        f[3 * MiB:4 * MiB] = self.metadata()
        bat = bytearray(8 * self.bat_entries())
        assert len(bat) <= MiB
        cr = self.chunk_ratio
        sb_off = {}
        for b in sorted(self.bitmaps):
            chunk = b // cr
            if chunk not in sb_off:
                sb_off[chunk] = len(f)
                f += bytes(MiB)
                struct.pack_into("<Q", bat, 8 * (chunk * (cr + 1) + cr),
                                 sb_off[chunk] | SB_PRESENT)
            per = self.block_size // self.lss // 8
            o = sb_off[chunk] + (b % cr) * per
            f[o:o + per] = self.bitmaps[b].ljust(per, b"\0")
        for b in sorted(self.blocks):
            state, data = self.blocks[b]
            off = 0
            if data is not None:
                off = len(f)
                f += bytes(self.block_size)
                f[off:off + len(data)] = data
            struct.pack_into("<Q", bat, 8 * self.bat_index(b), off | state)
        f[2 * MiB:2 * MiB + len(bat)] = bat
        return f


def data_write_guid(path):
    """The DataWriteGuid of the current header of the vhdx at path (what a
    child's parent_linkage must name)."""
    with open(path, "rb") as f:
        head = f.read(192 * KiB)
    best = None
    for off in (64 * KiB, 128 * KiB):
        h = head[off:off + 4096]
        body = bytearray(h)
        body[4:8] = b"\0\0\0\0"
        if h[:4] != b"head" or struct.unpack_from("<I", h, 4)[0] != crc32c(body):
            continue
        seq = struct.unpack_from("<Q", h, 8)[0]
        if best is None or seq > best[0]:
            best = (seq, h[32:48])
    return best[1]


def bitmap(sectors, block_size=MiB, lss=512):
    """A sector bitmap for one block with the given sectors present."""
    bm = bytearray(block_size // lss // 8)
    for s in sectors:
        bm[s // 8] |= 1 << (s % 8)
    return bytes(bm)


def bat_offset(img, b):
    return 2 * MiB + 8 * img.bat_index(b)


def rewrite_headers(buf, **kw):
    """Rewrites both headers with new field values (checksums fixed)."""
    for off in (64 * KiB, 128 * KiB):
        h = bytearray(buf[off:off + 4096])
        if "log_guid" in kw:
            h[48:64] = kw["log_guid"]
        if "version" in kw:
            struct.pack_into("<H", h, 66, kw["version"])
        if "log_version" in kw:
            struct.pack_into("<H", h, 64, kw["log_version"])
        fix_checksum(h, 0, 4096)
        buf[off:off + 4096] = h


def set_region_entry(buf, i, off=None, length=None):
    for rt in (192 * KiB, 256 * KiB):
        e = rt + 16 + 32 * i
        if off is not None:
            struct.pack_into("<Q", buf, e + 16, off)
        if length is not None:
            struct.pack_into("<I", buf, e + 24, length)
        fix_checksum(buf, rt, 64 * KiB)


def metadata_offset(buf):
    """File offset of the metadata region, from region table 1 (any
    layout, qemu-img's included)."""
    rt = 192 * KiB
    for i in range(struct.unpack_from("<I", buf, rt + 8)[0]):
        e = rt + 16 + 32 * i
        if bytes(buf[e:e + 16]) == guid_bytes(GUID_METADATA):
            return struct.unpack_from("<Q", buf, e + 16)[0]
    raise KeyError("metadata region")


def set_meta_item(buf, guid, data):
    """Overwrites the data of metadata item `guid` in place (the metadata
    region has no checksum)."""
    m = metadata_offset(buf)
    count = struct.unpack_from("<H", buf, m + 10)[0]
    for i in range(count):
        e = m + 32 + 32 * i
        if buf[e:e + 16] == guid_bytes(guid):
            off = struct.unpack_from("<I", buf, e + 16)[0]
            buf[m + off:m + off + len(data)] = data
            return
    raise KeyError(guid)


def base_image():
    img = Image(3 * MiB)
    img.write(0, bytes([0x11]) * MiB)
    img.write(2, bytes([0x22]) * 1000)
    return img


def _log_entry(log_guid):
    e = bytearray(4096)
    e[0:4] = b"loge"
    struct.pack_into("<IIQI", e, 8, 4096, 0, 1, 0)
    e[32:48] = log_guid
    fix_checksum(e, 0, 4096)
    return bytes(e)


def malformed():
    """name -> (files {name: bytes}, input name). Every input must be
    refused: exit 1, a message naming vhdx, no output."""
    out = {}

    def case(name, buf, extra=None):
        files = {"in.vhdx": bytes(buf)}
        files.update(extra or {})
        out[name] = files

    good = base_image().build()

    case("truncated-header", good[:100 * KiB])
    case("truncated-before-region-table", good[:200 * KiB])
    case("truncated-metadata", good[:int(2.5 * MiB)])

    b = bytearray(good)
    b[64 * KiB + 20] ^= 1
    b[128 * KiB + 20] ^= 1
    case("bad-header-checksums", b)

    b = bytearray(good)
    b[64 * KiB:64 * KiB + 4] = b"HEAD"
    b[128 * KiB:128 * KiB + 4] = b"HEAD"
    case("bad-header-magic", b)

    b = bytearray(good)
    rewrite_headers(b, version=2)
    case("bad-version", b)

    b = bytearray(good)
    b[192 * KiB + 100] ^= 0xFF
    case("region-table-checksum", b)

    b = bytearray(good)
    b[192 * KiB:192 * KiB + 4] = b"REGI"
    fix_checksum(b, 192 * KiB, 64 * KiB)
    case("region-table-magic", b)

    b = bytearray(good)
    struct.pack_into("<I", b, 192 * KiB + 8, 3000)
    fix_checksum(b, 192 * KiB, 64 * KiB)
    case("region-entry-count", b)

    img = base_image()
    img.extra_regions = [(uuid.uuid4(), 5 * MiB, MiB, True)]
    case("unknown-required-region", img.build())

    b = bytearray(good)
    set_region_entry(b, 0, off=1 << 50)
    case("bat-region-past-eof", b)

    b = bytearray(good)
    set_region_entry(b, 0, off=2 * MiB + 4096)
    case("bat-region-unaligned", b)

    b = bytearray(good)
    set_region_entry(b, 0, off=3 * MiB)
    case("bat-overlaps-metadata", b)

    b = bytearray(good)
    b[192 * KiB + 16:192 * KiB + 32] = uuid.uuid4().bytes_le
    fix_checksum(b, 192 * KiB, 64 * KiB)
    case("no-bat-region", b)

    b = bytearray(good)
    b[3 * MiB:3 * MiB + 8] = b"METADATA"
    case("metadata-magic", b)

    b = bytearray(good)
    struct.pack_into("<H", b, 3 * MiB + 10, 5000)
    case("metadata-entry-count", b)

    b = bytearray(good)
    struct.pack_into("<I", b, 3 * MiB + 32 + 16, 2 * MiB)  # file params off
    case("metadata-item-outside", b)

    b = bytearray(good)
    b[3 * MiB + 64:3 * MiB + 80] = uuid.uuid4().bytes_le  # the vsize item
    case("metadata-missing-vsize", b)

    img = base_image()
    img.extra_meta = [(uuid.uuid4(), b"x" * 8, 4)]
    case("unknown-required-metadata", img.build())

    for name, bs in (("block-size-not-pow2", 3 * MiB),
                     ("block-size-huge", 512 * MiB),
                     ("block-size-zero", 0)):
        b = bytearray(good)
        set_meta_item(b, GUID_FILE_PARAMS, struct.pack("<I", bs))
        case(name, b)

    b = bytearray(good)
    set_meta_item(b, GUID_LSS, struct.pack("<I", 1000))
    case("sector-size", b)

    b = bytearray(good)
    set_meta_item(b, GUID_VSIZE, struct.pack("<Q", 1 << 60))
    case("vsize-absurd", b)

    b = bytearray(good)
    set_meta_item(b, GUID_VSIZE, struct.pack("<Q", 1 << 46))  # 64 TiB
    case("bat-too-small", b)

    img = base_image()
    b = img.build()
    struct.pack_into("<Q", b, bat_offset(img, 1), (1 << 40) | FULLY_PRESENT)
    case("block-past-eof", b)

    b = img.build()
    struct.pack_into("<Q", b, bat_offset(img, 1), (2 * MiB) | FULLY_PRESENT)
    case("block-in-bat", b)

    b = img.build()
    struct.pack_into("<Q", b, bat_offset(img, 1), 0 | FULLY_PRESENT)
    case("block-at-zero", b)

    b = img.build()
    struct.pack_into("<Q", b, bat_offset(img, 1), (4 * MiB) | 4)
    case("block-state-4", b)

    b = img.build()
    struct.pack_into("<Q", b, bat_offset(img, 1), (4 * MiB) | PARTIALLY_PRESENT)
    case("partial-without-parent", b)

    # the spec wants a multiple of the logical sector size; qemu rounds
    # 512-byte-sector images down (odd_sizes) but opens no 4096 ones
    img = Image(2 * MiB + 512, lss=4096)
    img.write(0, bytes([0x11]) * MiB)
    case("vsize-not-sector-multiple-4096", img.build())

    lg = uuid.uuid4().bytes_le
    img = base_image()
    img.log_guid = lg
    img.log = _log_entry(lg)
    case("dirty-log", img.build())

    img = base_image()
    img.log_guid = lg
    b = img.build()
    rewrite_headers(b, log_version=1)
    case("dirty-log-version", b)

    # differencing: names that must not be followed, and broken chains
    parent = base_image()
    pbytes = bytes(parent.build())
    link = guid_text(parent.dwg)

    def child(pairs, dwg=None):
        c = Image(3 * MiB, parent=pairs, data_write_guid=dwg)
        c.write(1, bytes([0x33]) * MiB)
        return c.build()

    for name, path in (("parent-dotdot", "..\\x.vhdx"),
                       ("parent-absolute", "/etc/passwd"),
                       ("parent-missing", "missing.vhdx")):
        case(name, child([("parent_linkage", link), ("relative_path", path)]),
             {"base.vhdx": pbytes})
    case("parent-win32-absolute",
         child([("parent_linkage", link),
                ("absolute_win32_path", "C:\\images\\base.vhdx")]),
         {"base.vhdx": pbytes})
    case("parent-self",
         child([("parent_linkage", link), ("relative_path", "in.vhdx")]))
    case("parent-linkage-mismatch",
         child([("parent_linkage", guid_text(uuid.uuid4().bytes_le)),
                ("relative_path", "base.vhdx")]),
         {"base.vhdx": pbytes})
    case("parent-no-linkage", child([("relative_path", "base.vhdx")]),
         {"base.vhdx": pbytes})
    # a -> b -> a: each names the other, linkage matching
    ga, gb = uuid.uuid4().bytes_le, uuid.uuid4().bytes_le
    a = child([("parent_linkage", guid_text(gb)), ("relative_path", "b.vhdx")],
              ga)
    bb = child([("parent_linkage", guid_text(ga)),
                ("relative_path", "in.vhdx")], gb)
    case("parent-cycle", a, {"b.vhdx": bytes(bb)})
    img = Image(3 * MiB, parent=[])
    b = img.build()
    case("parent-empty-locator", b)
    # a partially present block whose sector bitmap is absent
    c = Image(3 * MiB, parent=[("parent_linkage", link),
                                ("relative_path", "base.vhdx")])
    c.write(1, bytes([0x33]) * MiB, PARTIALLY_PRESENT)
    case("partial-no-bitmap", c.build(), {"base.vhdx": pbytes})
    return out


def odd_sizes():
    """name -> image: 512-byte sectors and a virtual size that is not a
    multiple of them, which qemu 7.2 reads rounded down to 512."""
    out = {}
    for vsize in (3 * MiB + 1000, 3 * MiB + 100, 1000, 100):
        img = Image(vsize)
        img.write(0, bytes(range(256)) * 4096)
        if img.nblocks > 1:
            img.write(img.nblocks - 1, bytes([0x5A]) * MiB)
        out[f"vsize-{vsize}"] = bytes(img.build())
    return out


def write_malformed(directory):
    """Writes each case into DIR/NAME/; returns {name: input path}."""
    paths = {}
    for name, files in malformed().items():
        d = os.path.join(directory, name)
        os.makedirs(d, exist_ok=True)
        for fname, data in files.items():
            with open(os.path.join(d, fname), "wb") as f:
                f.write(data)
        paths[name] = os.path.join(d, "in.vhdx")
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    args = ap.parse_args()
    for name, path in sorted(write_malformed(args.dir).items()):
        print(name, path)


if __name__ == "__main__":
    sys.exit(main())
