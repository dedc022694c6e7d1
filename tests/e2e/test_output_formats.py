"""Every output format against the live `qemu-img dd -O FMT`.

For each case both tools write the same window; the outputs must agree on
exit status, `qemu-img info` format and virtual size, file size, a clean
`qemu-img check` (vpc: qemu-img has no check for it, exit 63 for both),
and the bytes `qemu-img convert -O raw` makes of them. instar's own reader
must read its output back to the same bytes. Format-specific byte-level
comparisons live in test_output_<fmt>.py.
"""
import json
import os
import subprocess

import pytest

from conftest import image_as_raw as _as_raw, listing, run_dd

MiB = 1 << 20
GiB = 1 << 30

FORMATS = ["qcow2", "vmdk", "vpc", "vhdx"]

# (input image, dd operands): empty, tiny, unaligned, past the end, across
# clusters, grains, blocks and tables.
WINDOWS = [
    ("empty", []),
    ("small", ["count=0"]),
    ("tiny", []),
    ("small", []),
    ("small", ["bs=3", "count=100"]),
    ("small", ["bs=1000", "skip=1", "count=3"]),
    ("small", ["bs=1000", "skip=4"]),
    ("mid", ["bs=1M"]),
    ("mid", ["bs=4096", "skip=17"]),
    ("multi", ["bs=1M"]),
    ("multi", ["bs=1000", "skip=3", "count=4700"]),
    ("multi", ["bs=65537", "skip=1"]),
    # Offsets across 2 and 4 GiB of the sparse 5 GiB input.
    ("huge", ["bs=1M", "skip=2047", "count=2049"]),
    ("huge", ["bs=1", "skip=4294967295", "count=4294967297"]),
    ("huge", ["bs=64k", "skip=65530", "count=65546"]),
]


def _id(w):
    name, args = w
    return f"{name}-{'-'.join(a.replace('=', '') for a in args) or 'all'}"


# Windows whose output is empty: no vmdk of size 0 exists for qemu-img
# (both tools fail, instar cleanly).
EMPTY = {"empty-all", "small-count0", "small-bs1000-skip4"}


def _case_params():
    return [pytest.param(f, w, id=f"{f}-{_id(w)}")
            for f in FORMATS for w in WINDOWS]


def _info(qemu_img, path, fmt):
    r = subprocess.run([qemu_img, "info", "--output=json", "-f", fmt, path],
                       check=True, capture_output=True)
    return json.loads(r.stdout)


def _check(qemu_img, path, fmt):
    return subprocess.run([qemu_img, "check", "-f", fmt, path],
                          capture_output=True).returncode




def compare_outputs(fmt, q_out, i_out, qemu_img, instar_bin, tmp_path):
    """The checks every output format passes (both files exist)."""
    qi, ii = _info(qemu_img, q_out, fmt), _info(qemu_img, i_out, fmt)
    assert ii["format"] == qi["format"] == fmt
    assert ii["virtual-size"] == qi["virtual-size"]
    assert os.path.getsize(i_out) == os.path.getsize(q_out)
    q_check = _check(qemu_img, q_out, fmt)
    assert _check(qemu_img, i_out, fmt) == q_check
    assert q_check == (63 if fmt == "vpc" else 0)
    q_raw = _as_raw(qemu_img, q_out, fmt, str(tmp_path / "q.raw"))
    assert _as_raw(qemu_img, i_out, fmt, str(tmp_path / "i.raw")) == q_raw
    # instar reads its own output back to the same bytes.
    back = str(tmp_path / "back.raw")
    r = run_dd(instar_bin, ["-f", fmt, f"if={i_out}", f"of={back}", "bs=1M"],
               back)
    assert r.rc == 0, r
    assert r.out == q_raw
    os.unlink(back)


@pytest.mark.parametrize("fmt,win", _case_params())
def test_output_matches_qemu(fmt, win, images, instar_bin, qemu_img, dirs,
                             tmp_path):
    name, extra = win
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, f"o.{fmt}"), os.path.join(idir, f"o.{fmt}")
    args = ["-O", fmt, f"if={images[name]}"] + extra
    q = run_dd(qemu_img, args + [f"of={q_out}"], q_out)
    i = run_dd(instar_bin, args + [f"of={i_out}"], i_out)
    assert i.rc == q.rc, (q, i)
    if q.rc != 0:
        # qemu-img 7.2 writes no readable vmdk of size 0 (it leaves an
        # unreadable file and exits 1); instar refuses cleanly.
        assert fmt == "vmdk", q
        assert "vmdk" in i.stderr, i.stderr
        assert listing(idir) == []
        return
    compare_outputs(fmt, q_out, i_out, qemu_img, instar_bin, tmp_path)
    assert listing(idir) == [f"o.{fmt}"]


@pytest.fixture(scope="session")
def format_inputs(images, qemu_img, tmp_path_factory):
    """multi.raw converted to each format, and a qcow2 over it."""
    d = tmp_path_factory.mktemp("out-inputs")
    out = {}
    for fmt in ("qcow2", "vmdk", "vpc", "vhdx"):
        p = str(d / f"multi.{fmt}")
        subprocess.run([qemu_img, "convert", "-f", "raw", "-O", fmt,
                        images["multi"], p], check=True)
        out[fmt] = p
    top = str(d / "top.qcow2")
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", "-b",
                    out["qcow2"], "-F", "qcow2", top], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 1000 70000", top],
                   check=True, capture_output=True)
    out["chain"] = top
    return out


@pytest.mark.parametrize("src", ["qcow2", "vmdk", "vpc", "vhdx", "chain"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_output_from_every_input_format(fmt, src, format_inputs, instar_bin,
                                        qemu_img, dirs, tmp_path):
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, f"o.{fmt}"), os.path.join(idir, f"o.{fmt}")
    args = ["-O", fmt, f"if={format_inputs[src]}", "bs=4096", "skip=3"]
    q = run_dd(qemu_img, args + [f"of={q_out}"], q_out)
    i = run_dd(instar_bin, args + [f"of={i_out}"], i_out)
    assert q.rc == i.rc == 0, (q, i)
    compare_outputs(fmt, q_out, i_out, qemu_img, instar_bin, tmp_path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_leaves_existing_output(fmt, images, instar_bin, tmp_path):
    """The atomic-output guarantees hold for every format: a failing run
    (an input that is no image of the format it claims) keeps of=."""
    out = tmp_path / f"o.{fmt}"
    out.write_bytes(b"existing")
    bad = tmp_path / "bad.qcow2"
    bad.write_bytes(b"QFI\xfb" + bytes(508))
    i = run_dd(instar_bin, ["-O", fmt, f"if={bad}", f"of={out}"], str(out))
    assert i.rc == 1
    assert i.out == b"existing"
    assert sorted(listing(tmp_path)) == ["bad.qcow2", f"o.{fmt}"]
