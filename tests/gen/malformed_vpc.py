#!/usr/bin/python3
"""VHD (vpc) images built byte by byte: a small builder (used by the e2e
tests for differencing chains, which qemu-img cannot create) and a set of
malformed images that instar must refuse cleanly.

    python3 tests/gen/malformed_vpc.py DIR     # write every case into DIR

Layout (Microsoft "Virtual Hard Disk Image Format Specification" 1.0):
fixed = data + footer; dynamic/differencing = footer copy, dynamic disk
header (1024 bytes), BAT, parent locator data, blocks (sector bitmap +
data), footer. Everything big-endian; checksums are the one's complement
of the byte sum with the checksum field as zero.
"""
import os
import struct
import sys

SECTOR = 512
FIXED, DYNAMIC, DIFF = 2, 3, 4


def checksum(b):
    return (~sum(b)) & 0xFFFFFFFF


def footer(disk_type, current_size, chs, app=b"qemu", data_offset=None,
           uid=b"\x11" * 16, version=0x00010000, cookie=b"conectix"):
    f = bytearray(512)
    f[0:8] = cookie
    struct.pack_into(">II", f, 8, 2, version)
    struct.pack_into(">Q", f, 16, 0xFFFFFFFFFFFFFFFF if data_offset is None
                     else data_offset)
    f[28:32] = app
    struct.pack_into(">HH", f, 32, 5, 3)
    f[36:40] = b"Wi2k"
    struct.pack_into(">QQ", f, 40, current_size, current_size)
    struct.pack_into(">HBBI", f, 56, chs[0], chs[1], chs[2], disk_type)
    f[68:84] = uid
    struct.pack_into(">I", f, 64, checksum(f))
    return bytes(f)


def reseal_footer(f):
    f = bytearray(f)
    f[64:68] = b"\0\0\0\0"
    struct.pack_into(">I", f, 64, checksum(f))
    return bytes(f)


def dyn_header(bat_off, entries, block_size, parent_uuid=b"\0" * 16,
               locators=(), version=0x00010000, cookie=b"cxsparse"):
    h = bytearray(1024)
    h[0:8] = cookie
    struct.pack_into(">QQIII", h, 8, 0xFFFFFFFFFFFFFFFF, bat_off, version,
                     entries, block_size)
    h[40:56] = parent_uuid
    for i, (code, space, length, off) in enumerate(locators):
        struct.pack_into(">4sIIIQ", h, 576 + 24 * i, code, space, length, 0,
                         off)
    struct.pack_into(">I", h, 36, checksum(h))
    return bytes(h)


def reseal_header(h):
    h = bytearray(h)
    h[36:40] = b"\0\0\0\0"
    struct.pack_into(">I", h, 36, checksum(h))
    return bytes(h)


def fill(n, seed):
    """n non-zero bytes that depend on seed and position."""
    base = bytes(range(1, 252))
    k = seed % 251
    rot = base[k:] + base[:k]
    return (rot * (n // 251 + 1))[:n]


def bitmap_size(block_size):
    return (block_size // SECTOR // 8 + SECTOR - 1) & ~(SECTOR - 1)


class Sparse:
    """A dynamic or differencing disk under construction.

    blocks: index -> (data, bitmap or None = all sectors present)
    """

    def __init__(self, chs, block_size=2 << 20, disk_type=DYNAMIC,
                 app=b"qemu", current_size=None, uid=b"\x22" * 16,
                 parent_uuid=b"\0" * 16, entries=None):
        self.chs = chs
        self.vsize = chs[0] * chs[1] * chs[2] * SECTOR
        self.block_size = block_size
        self.disk_type = disk_type
        self.app = app
        self.current_size = self.vsize if current_size is None else current_size
        self.uid = uid
        self.parent_uuid = parent_uuid
        self.entries = (entries if entries is not None else
                        (self.vsize + block_size - 1) // block_size)
        self.blocks = {}
        self.locators = []  # (code, payload bytes)

    def write(self, index, data, bitmap=None):
        assert len(data) == self.block_size
        self.blocks[index] = (data, bitmap)

    def present(self, index, sector):
        if index not in self.blocks:
            return False
        bm = self.blocks[index][1]
        return bm is None or bool(bm[sector // 8] >> (7 - sector % 8) & 1)

    def build(self):
        bat_off = 1536
        bat_len = (self.entries * 4 + 511) & ~511
        pos = bat_off + bat_len
        locs, blobs = [], b""
        for code, payload in self.locators:
            space = (len(payload) + 511) & ~511
            locs.append((code, space, len(payload), pos + len(blobs)))
            blobs += payload + bytes(space - len(payload))
        pos += len(blobs)
        bms = bitmap_size(self.block_size)
        bat = [0xFFFFFFFF] * self.entries
        body = bytearray()
        for i in sorted(self.blocks):
            data, bm = self.blocks[i]
            bat[i] = (pos + len(body)) // SECTOR
            bm = b"\xff" * bms if bm is None else bm + bytes(bms - len(bm))
            body += bm + data
        ft = footer(self.disk_type, self.current_size, self.chs, self.app,
                    data_offset=512, uid=self.uid)
        hdr = dyn_header(bat_off, self.entries, self.block_size,
                         self.parent_uuid, locs)
        batb = b"".join(struct.pack(">I", x) for x in bat)
        batb += b"\xff" * (bat_len - len(batb))
        return ft + hdr + batb + blobs + bytes(body) + ft

    def view(self, parent_view):
        """The virtual disk by the spec, given the parent's (bytes, or None
        for a dynamic disk)."""
        out = bytearray(self.vsize)
        if parent_view is not None:
            n = min(len(parent_view), self.vsize)
            out[:n] = parent_view[:n]
        for i, (data, _) in self.blocks.items():
            base = i * self.block_size
            for s in range(self.block_size // SECTOR):
                o = base + s * SECTOR
                if o >= self.vsize:
                    break
                if self.present(i, s):
                    out[o:o + SECTOR] = data[s * SECTOR:(s + 1) * SECTOR]
                elif parent_view is None:
                    out[o:o + SECTOR] = bytes(SECTOR)
        return bytes(out)


def utf16(path):
    return path.encode("utf-16-le")


def read_footer_fields(path):
    """(chs, unique id) of an existing VHD (footer copy at 0, else end)."""
    with open(path, "rb") as f:
        head = f.read(512)
        if head[:8] != b"conectix":
            f.seek(-512, os.SEEK_END)
            head = f.read(512)
    return struct.unpack(">HBB", head[56:60]), head[68:84]


# --- malformed cases ---------------------------------------------------------

CHS = (31, 4, 17)          # 1079296 bytes, as qemu for mid.raw
BS = 2 << 20


def _good(disk_type=DYNAMIC, **kw):
    s = Sparse(CHS, disk_type=disk_type, **kw)
    s.write(0, fill(BS, 1))
    return s


def _patch(img, off, data):
    b = bytearray(img)
    b[off:off + len(data)] = data
    return bytes(b)


def _footer_edit(img, off, data):
    """Edits both footer copies and reseals their checksums."""
    b = bytearray(img)
    for at in (0, len(b) - 512):
        f = bytearray(b[at:at + 512])
        f[off:off + len(data)] = data
        b[at:at + 512] = reseal_footer(f)
    return bytes(b)


def _header_edit(img, off, data):
    b = bytearray(img)
    h = bytearray(b[512:1536])
    h[off:off + len(data)] = data
    b[512:1536] = reseal_header(h)
    return bytes(b)


def _diff(locators, parent_uuid=b"\x22" * 16, uid=b"\x33" * 16):
    s = Sparse(CHS, disk_type=DIFF, uid=uid, parent_uuid=parent_uuid)
    s.write(0, fill(BS, 2), bytes([0xF0]) + bytes(511))
    s.locators = locators
    return s.build()


def cases():
    """name -> (files {relative path: bytes}, image path, extra dd args).
    Every case must make instar exit 1 with a message naming vpc."""
    good = _good().build()
    parent = _good().build()  # unique id 0x22..
    fixed = fill(CHS[0] * CHS[1] * CHS[2] * SECTOR, 3)
    fixed_img = fixed + footer(FIXED, len(fixed), CHS)
    big = 0xFF000001 * SECTOR
    c = {}

    def add(name, data, extra=(), more=None):
        files = {"img/" + name + ".vhd": data}
        files.update(more or {})
        c[name] = (files, "img/" + name + ".vhd", list(extra))

    add("truncated-header", good[:700])
    add("truncated-footer-only", good[:300], ["-f", "vpc"])
    add("bad-magic", _patch(good, 0, b"conectiX")[:-512] +
        _patch(good[-512:], 0, b"conectiX"), ["-f", "vpc"])
    add("bad-footer-checksum", _patch(good, 100, b"\x01"))
    add("bad-footer-version", _footer_edit(good, 12, b"\x00\x02\x00\x00"))
    add("bad-disk-type", _footer_edit(good, 60, b"\x00\x00\x00\x05"))
    add("fixed-type-at-front", _footer_edit(good, 60, b"\x00\x00\x00\x02"))
    add("fixed-end-footer-dynamic", fixed_img[:-512] +
        reseal_footer(_patch(fixed_img[-512:], 60, b"\x00\x00\x00\x03")),
        ["-f", "vpc"])
    add("fixed-size-past-data", fixed_img[:-512] + footer(
        FIXED, len(fixed), (62, 4, 17)), ["-f", "vpc"])
    add("size-too-large", _footer_edit(_footer_edit(good, 28, b"qem2"), 48,
                                       struct.pack(">Q", big)))
    add("header-past-eof", _footer_edit(good, 16, struct.pack(">Q", 1 << 62)))
    add("header-bad-cookie", _header_edit(good, 0, b"cxsparsE"))
    add("header-bad-checksum", _patch(good, 512 + 900, b"\x01"))
    add("header-bad-version", _header_edit(good, 24, b"\x00\x02\x00\x00"))
    add("block-size-not-power-of-2", _header_edit(good, 32,
                                                  struct.pack(">I", 3 << 20)))
    add("block-size-too-small", _header_edit(good, 32, struct.pack(">I", 256)))
    add("block-size-huge", _header_edit(good, 32, struct.pack(">I", 1 << 30)))
    add("bat-entries-huge", _header_edit(good, 28,
                                         struct.pack(">I", 0xFFFFFFFF)))
    add("bat-entries-too-few", _header_edit(good, 28, struct.pack(">I", 0)))
    add("bat-past-eof", _header_edit(good, 16, struct.pack(">Q", 1 << 40)))
    add("bat-offset-overflow", _header_edit(
        good, 16, struct.pack(">Q", 0xFFFFFFFFFFFFFFF0)))
    add("bat-entry-past-eof", _patch(good, 1536, struct.pack(">I", 0xFFFFFF00)))
    add("bat-entry-over-header", _patch(good, 1536, struct.pack(">I", 1)))
    add("bat-entry-over-bat", _patch(good, 1536, struct.pack(">I", 3)))
    add("diff-no-locator", _diff([]))
    add("diff-locator-deprecated-only", _diff([(b"Wi2r", b"base.vhd")]))
    d = bytearray(_diff([(b"W2ru", utf16("base.vhd"))]))
    h = bytearray(d[512:1536])
    struct.pack_into(">Q", h, 576 + 16, 1 << 50)
    d[512:1536] = reseal_header(h)
    add("diff-locator-past-eof", bytes(d))
    d = bytearray(_diff([(b"W2ru", utf16("base.vhd"))]))
    h = bytearray(d[512:1536])
    struct.pack_into(">I", h, 576 + 8, 1 << 30)
    d[512:1536] = reseal_header(h)
    add("diff-locator-huge", bytes(d))
    add("diff-locator-bad-utf16", _diff([(b"W2ru", b"\x00\xd8a\x00")]))
    add("diff-locator-bad-url", _diff([(b"MacX", b"http://x/base.vhd")]))
    add("diff-parent-missing", _diff([(b"W2ru", utf16(".\\missing.vhd"))]))
    add("diff-parent-dotdot", _diff([(b"W2ru", utf16("..\\x.vhd"))]),
        more={"x.vhd": parent})
    add("diff-parent-etc-passwd", _diff([(b"W2ku", utf16("C:\\etc\\passwd"))]))
    add("diff-parent-url-etc-passwd",
        _diff([(b"MacX", b"file://localhost/etc/passwd")]))
    add("diff-parent-self", _diff([(b"W2ru",
                                    utf16("diff-parent-self.vhd"))],
                                  parent_uuid=b"\x33" * 16))
    add("diff-parent-uuid-mismatch",
        _diff([(b"W2ru", utf16("p.vhd"))], parent_uuid=b"\x44" * 16),
        more={"img/p.vhd": parent})
    add("diff-parent-cycle",
        _diff([(b"W2ru", utf16("cycle-b.vhd"))], parent_uuid=b"\x55" * 16),
        more={"img/cycle-b.vhd": _diff([(b"W2ru",
                                         utf16("diff-parent-cycle.vhd"))],
                                       parent_uuid=b"\x33" * 16,
                                       uid=b"\x55" * 16)})
    return c


def make_all(directory):
    """Writes every case under directory; returns name -> (path, args)."""
    out = {}
    for name, (files, image, extra) in cases().items():
        for rel, data in files.items():
            p = os.path.join(directory, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
        out[name] = (os.path.join(directory, image), extra)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for n, (p, extra) in make_all(sys.argv[1]).items():
        print(n, p, " ".join(extra))
