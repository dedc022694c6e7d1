"""For the option tests of instar convert (test_convert_<fmt>.py): the
same conversion by qemu-img and instar, and a byte comparison of the two
outputs outside the ranges that differ by design (random IDs, timestamps,
checksums). The comparison reads only where either file has data: holes
in both are zeros in both, so files of hundreds of MiB that are mostly
holes compare in a few reads."""
import os

from test_convert import _data_ranges, _run

CHUNK = 4 << 20


def _union(a, b):
    merged = []
    for start, end in sorted(a + b):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _mask(buf, at, masked):
    for start, end in masked:
        lo, hi = max(start, at), min(end, at + len(buf))
        if lo < hi:
            buf[lo - at:hi - at] = bytes(hi - lo)


def first_difference(a, b, masked):
    """None when files a and b have the same size and the same bytes
    outside `masked` ([(start, end)], file offsets); else the offset of
    the first chunk that differs (-1: the sizes)."""
    if os.path.getsize(a) != os.path.getsize(b):
        return -1
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for start, end in _union(_data_ranges(a), _data_ranges(b)):
            for at in range(start, end, CHUNK):
                n = min(CHUNK, end - at)
                fa.seek(at)
                fb.seek(at)
                x, y = bytearray(fa.read(n)), bytearray(fb.read(n))
                _mask(x, at, masked)
                _mask(y, at, masked)
                if x != y:
                    return at
    return None


def run_both(qemu_img, instar_bin, args, src, tmp_path, ext):
    """qemu-img convert and instar convert with the same arguments, to
    q.EXT and i.EXT in tmp_path; both must succeed."""
    q_out, i_out = str(tmp_path / f"q.{ext}"), str(tmp_path / f"i.{ext}")
    q = _run(qemu_img, args + [src, q_out])
    i = _run(instar_bin, args + [src, i_out])
    assert q.returncode == 0, q.stderr
    assert i.returncode == 0, i.stderr
    return q_out, i_out
