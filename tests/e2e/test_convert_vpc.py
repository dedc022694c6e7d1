"""instar convert -O vpc -o subformat=..., force_size=... against the live
`qemu-img convert` with the same arguments.

The outputs must be byte-identical but for the footer's timestamp,
checksum and UUID: same file size, same virtual size (read as vpc, and
probed: qemu probes a fixed VHD as raw), same data back as raw, and no
more allocated than qemu-img's.
"""
import json
import os
import subprocess

import pytest

from conftest import listing
from convert_compare import first_difference, run_both
from test_convert import _alloc, _info, _raw_of, _run, inputs  # noqa: F401

MiB = 1 << 20
SOURCES = ["small", "multi", "zeros", "zeros-qcow2", "zeros-vhdx", "chain"]
SHAPES = ["subformat=fixed", "force_size=on", "subformat=fixed,force_size=on",
          "subformat=dynamic,force_size=off"]


def _masked(path):
    """What differs by design: in each footer (the one at the end, and a
    dynamic disk's copy at 0) the timestamp, checksum and UUID."""
    with open(path, "rb") as f:
        head = f.read(8)
    footers = [os.path.getsize(path) - 512]
    if head == b"conectix" and footers[0] > 0:
        footers.append(0)
    return [r for at in footers for r in ((at + 24, at + 28),
                                          (at + 64, at + 84))]


def _same_bytes(i_out, q_out):
    masked = _masked(q_out)
    assert masked == _masked(i_out), "footers in other places"
    assert first_difference(i_out, q_out, masked) is None


def _probed(qemu_img, path):
    """qemu-img info without -f: a fixed VHD probes as raw."""
    r = subprocess.run([qemu_img, "info", "--output=json", path],
                       check=True, capture_output=True, text=True)
    d = json.loads(r.stdout)
    return d["format"], d["virtual-size"]


def _same_as_qemu(qemu_img, q_out, i_out, tmp_path):
    qi, ii = _info(qemu_img, q_out, "vpc"), _info(qemu_img, i_out, "vpc")
    assert ii["format"] == qi["format"] == "vpc"
    assert ii["virtual-size"] == qi["virtual-size"]
    assert _probed(qemu_img, i_out) == _probed(qemu_img, q_out)
    check = lambda p: subprocess.run([qemu_img, "check", "-f", "vpc", p],
                                     capture_output=True).returncode
    assert check(i_out) == check(q_out) == 63  # vpc has no check
    assert (_raw_of(qemu_img, i_out, "vpc", str(tmp_path / "i.raw")) ==
            _raw_of(qemu_img, q_out, "vpc", str(tmp_path / "q.raw")))
    assert os.path.getsize(i_out) == os.path.getsize(q_out)
    _same_bytes(i_out, q_out)
    assert _alloc(i_out) <= _alloc(q_out), \
        f"instar allocated {_alloc(i_out)}, qemu-img {_alloc(q_out)}"


@pytest.mark.parametrize("sparse", [None, "0"], ids=["default", "S0"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("src", SOURCES)
def test_shape_matches_qemu(src, shape, sparse, inputs, instar_bin, qemu_img,
                            tmp_path):
    args = ["-O", "vpc", "-o", shape] + (["-S", sparse] if sparse else [])
    q_out, i_out = run_both(qemu_img, instar_bin, args, inputs[src],
                            tmp_path, "vpc")
    _same_as_qemu(qemu_img, q_out, i_out, tmp_path)


@pytest.mark.parametrize("subformat", ["dynamic", "fixed"])
@pytest.mark.parametrize("size", [3000, MiB + 1536, 34816, 1079296,
                                  5 * MiB + 1536],
                         ids=["3000", "1M+1536", "chs-34816", "chs-1079296",
                              "5M+1536"])
def test_force_size_writes_the_exact_size(size, subformat, instar_bin,
                                          qemu_img, tmp_path):
    """The issue: "Fixed VHD with force_size: the exact size qemu writes".
    The virtual size is the size rounded up to 512, not a CHS geometry's,
    and the file is qemu's, size for size (34816 and 1079296 are sizes a
    geometry gives exactly)."""
    src = tmp_path / "in.raw"
    with open(src, "wb") as f:
        f.write(bytes(range(1, 256)) * (size // 255) + b"\x07" * (size % 255))
    args = ["-O", "vpc", "-o", f"subformat={subformat},force_size=on"]
    q_out, i_out = run_both(qemu_img, instar_bin, args, str(src), tmp_path,
                            "vpc")
    want = (size + 511) // 512 * 512
    assert _info(qemu_img, q_out, "vpc")["virtual-size"] == want
    assert _info(qemu_img, i_out, "vpc")["virtual-size"] == want
    if subformat == "fixed":
        assert os.path.getsize(i_out) == want + 512
    _same_as_qemu(qemu_img, q_out, i_out, tmp_path)


@pytest.mark.parametrize("shape", ["subformat=fixed",
                                   "subformat=fixed,force_size=on"])
def test_empty_fixed_disk_is_refused(shape, inputs, instar_bin, qemu_img,
                                     tmp_path):
    """qemu-img writes a lone footer it then cannot open, and exits 1;
    instar refuses before writing and leaves nothing."""
    q = _run(qemu_img, ["-O", "vpc", "-o", shape, inputs["empty"],
                        str(tmp_path / "q.vpc")])
    assert q.returncode == 1
    os.unlink(tmp_path / "q.vpc")
    i = _run(instar_bin, ["-O", "vpc", "-o", shape, inputs["empty"],
                          str(tmp_path / "i.vpc")])
    assert i.returncode == 1
    assert b"empty fixed image" in i.stderr, i.stderr
    assert listing(tmp_path) == []


@pytest.mark.parametrize("shape", ["force_size=on",
                                   "subformat=dynamic,force_size=on"])
def test_empty_dynamic_disk_with_force_size(shape, inputs, instar_bin,
                                            qemu_img, tmp_path):
    q_out, i_out = run_both(qemu_img, instar_bin,
                            ["-O", "vpc", "-o", shape], inputs["empty"],
                            tmp_path, "vpc")
    assert os.path.getsize(i_out) == os.path.getsize(q_out) == 2048
    _same_bytes(i_out, q_out)
