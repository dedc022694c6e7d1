#!/usr/bin/python3
"""Deterministic patterned raw inputs for the e2e tests, baselines and bench.

Every byte depends on its offset, so data copied from the wrong place (or a
block dropped or repeated) shows up as a mismatch. No byte of the pattern is
zero, so zero padding and holes are distinguishable from data.

    python3 tests/gen/images.py DIR            # write all images into DIR
    python3 tests/gen/images.py DIR --only mid  # just one

The 5 GiB image is sparse: it is made with truncate and pattern data is
written only in REGIONS around the 2 GiB and 4 GiB boundaries and at the end,
so it costs a few MiB of disk and never 5 GiB of writes.
"""
import argparse
import hashlib
import os
import sys
from array import array

# Bump when the pattern or the image set changes: baselines record it.
PATTERN_VERSION = 1

_MUL = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
# 0x00 never appears in the pattern: replace it with 0xA5.
_NOZERO = bytes([0xA5]) + bytes(range(1, 256))

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def pattern(offset, length):
    """The pattern bytes at [offset, offset + length) of any image."""
    if length <= 0:
        return b""
    first = offset // 8
    last = (offset + length + 7) // 8
    words = array("Q", ((((i + 1) * _MUL) ^ (i >> 3)) & _MASK
                        for i in range(first, last)))
    if sys.byteorder != "little":
        words.byteswap()
    raw = words.tobytes().translate(_NOZERO)
    start = offset - first * 8
    return raw[start:start + length]


def _around(boundary, radius=1 * MiB):
    return (boundary - radius, 2 * radius)


# name -> (size in bytes, [(offset, length), ...] regions holding pattern).
# Everything outside the regions is a hole (reads as zeros).
IMAGES = {
    "empty": (0, []),
    "tiny": (1000, [(0, 1000)]),
    "small": (3000, [(0, 3000)]),
    "mid": (1 * MiB + 1536, [(0, 1 * MiB + 1536)]),
    "multi": (5 * MiB + 1536, [(0, 5 * MiB + 1536)]),
    "huge": (5 * GiB, [(0, 64 * KiB), _around(2 * GiB), _around(4 * GiB),
                       (5 * GiB - 1 * MiB, 1 * MiB)]),
}


def file_name(name):
    return name + ".raw"


def write_image(path, size, regions, chunk=4 * MiB):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.truncate(size)
        for off, length in regions:
            pos = off
            while pos < off + length:
                n = min(chunk, off + length - pos)
                f.seek(pos)
                f.write(pattern(pos, n))
                pos += n
    os.rename(tmp, path)


def make_image(directory, name, force=False):
    """Create image `name` in `directory` (unless present); return its path."""
    size, regions = IMAGES[name]
    path = os.path.join(directory, file_name(name))
    if force or not (os.path.exists(path) and os.path.getsize(path) == size):
        write_image(path, size, regions)
    return path


def make_all(directory, names=None):
    os.makedirs(directory, exist_ok=True)
    return {n: make_image(directory, n) for n in (names or IMAGES)}


def expected_bytes(name, start, end):
    """What the image `name` holds at [start, end): pattern or hole zeros,
    and zeros past its end. Computed from the spec, not from the file."""
    size, regions = IMAGES[name]
    out = bytearray(max(0, end - start))
    for off, length in regions:
        lo, hi = max(start, off), min(end, off + length, size)
        if lo < hi:
            out[lo - start:hi - start] = pattern(lo, hi - lo)
    return bytes(out)


def fingerprint(name):
    """sha256 over the image spec and its data regions (cheap for the
    sparse image): identifies the inputs a baseline was recorded with."""
    size, regions = IMAGES[name]
    h = hashlib.sha256(f"v{PATTERN_VERSION} {name} {size} {regions}".encode())
    for off, length in regions:
        h.update(pattern(off, length))
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory")
    ap.add_argument("--only", action="append", choices=sorted(IMAGES))
    args = ap.parse_args()
    for name, path in make_all(args.directory, args.only).items():
        print(f"{path} {IMAGES[name][0]}")


if __name__ == "__main__":
    main()
