"""Raw to raw: instar dd vs the live qemu-img dd vs the window model.

Every successful window must give byte-identical output and the same exit
status as qemu-img dd with the same arguments, and match qemu_model.py.
"""
import os
import stat

import pytest

import cases
from conftest import listing, read_range, run_dd, strip_prefix
from qemu_model import expected_output

SKIP_MSG = "cannot skip to specified offset"
ALL_CASES = cases.all_cases()


def model_output(in_path, case):
    size = os.path.getsize(in_path)
    return expected_output(lambda s, e: read_range(in_path, s, e), size,
                           case.operands())


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_window(case, images, instar_bin, qemu_img, dirs):
    qdir, idir = dirs
    in_path = images[case.input]
    expected, win = model_output(in_path, case)

    q_out = os.path.join(qdir, "out.raw")
    i_out = os.path.join(idir, "out.raw")
    q = run_dd(qemu_img, case.argv(in_path, q_out), q_out)
    i = run_dd(instar_bin, case.argv(in_path, i_out), i_out)

    assert q.rc == 0, f"qemu-img failed, the case or the model is wrong: {q}"
    assert q.out == expected, f"qemu-img disagrees with the model {win}"
    assert i.rc == q.rc, f"instar {i}"
    assert i.out is not None, f"instar left no output: {i}"
    assert len(i.out) == len(q.out) == win.out_len
    assert i.out == q.out, "instar output differs from qemu-img"
    assert listing(idir) == ["out.raw"], "stray files beside the output"

    for r in (q, i):
        if win.skip_message:
            assert SKIP_MSG in r.stderr and in_path in r.stderr, r
        else:
            assert SKIP_MSG not in r.stderr, r


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _copy_pair(qemu_img, instar_bin, in_path, q_out, i_out, extra=()):
    q = run_dd(qemu_img, [f"if={in_path}", f"of={q_out}", *extra], q_out)
    i = run_dd(instar_bin, [f"if={in_path}", f"of={i_out}", *extra], i_out)
    return q, i


# --- output file handling (parity with qemu; instar adds atomicity) --------

def test_new_output_mode_matches_qemu(images, instar_bin, qemu_img, dirs):
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, "o"), os.path.join(idir, "o")
    old = os.umask(0o022)
    try:
        q, i = _copy_pair(qemu_img, instar_bin, images["small"], q_out, i_out)
    finally:
        os.umask(old)
    assert q.rc == i.rc == 0, (q, i)
    assert stat.S_IMODE(os.stat(i_out).st_mode) == stat.S_IMODE(os.stat(q_out).st_mode)
    assert listing(idir) == ["o"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604])
def test_existing_output_keeps_mode(mode, images, instar_bin, qemu_img, dirs):
    qdir, idir = dirs
    outs = []
    for d in dirs:
        p = os.path.join(d, "o")
        with open(p, "wb") as f:
            f.write(b"\x11" * 100000)
        os.chmod(p, mode)
        outs.append(p)
    q, i = _copy_pair(qemu_img, instar_bin, images["small"], *outs)
    assert q.rc == i.rc == 0, (q, i)
    assert i.out == q.out and len(i.out) == 3072  # replaced, old tail gone
    assert stat.S_IMODE(os.stat(outs[1]).st_mode) == mode
    assert stat.S_IMODE(os.stat(outs[0]).st_mode) == mode
    assert listing(idir) == ["o"]


def test_output_symlink_is_written_through(images, instar_bin, qemu_img, dirs):
    for d in dirs:
        with open(os.path.join(d, "target.img"), "wb") as f:
            f.write(b"\x22" * 5000)
        os.symlink("target.img", os.path.join(d, "out.img"))
    qdir, idir = dirs
    q, i = _copy_pair(qemu_img, instar_bin, images["mid"],
                      os.path.join(qdir, "out.img"), os.path.join(idir, "out.img"),
                      ["bs=1000", "skip=3", "count=11"])
    assert q.rc == i.rc == 0, (q, i)
    for d in dirs:
        link = os.path.join(d, "out.img")
        assert os.path.islink(link) and os.readlink(link) == "target.img"
    q_data = _read(os.path.join(qdir, "target.img"))
    i_data = _read(os.path.join(idir, "target.img"))
    assert i_data == q_data and len(i_data) == 8192
    assert listing(idir) == ["out.img", "target.img"]


def test_relative_names(images, instar_bin, qemu_img, dirs):
    for d in dirs:
        os.symlink(images["small"], os.path.join(d, "in.raw"))
    q = run_dd(qemu_img, ["if=in.raw", "of=out.raw", "bs=512", "skip=9"],
               cwd=dirs[0])
    i = run_dd(instar_bin, ["if=in.raw", "of=out.raw", "bs=512", "skip=9"],
               cwd=dirs[1])
    assert q.rc == i.rc == 0
    for r in (q, i):  # the message names the input as given
        assert "in.raw: " + SKIP_MSG in strip_prefix(r.stderr), r
    outs = [_read(os.path.join(d, "out.raw")) for d in dirs]
    assert outs[0] == outs[1] == b""
    assert listing(dirs[1]) == ["in.raw", "out.raw"]


def test_dot_slash_colon_name(images, instar_bin, qemu_img, dirs):
    """`./a:b.raw` is a plain file for qemu too (parity.md row 18)."""
    for d in dirs:
        os.symlink(images["small"], os.path.join(d, "a:b.raw"))
    q = run_dd(qemu_img, ["if=./a:b.raw", "of=out.raw"], cwd=dirs[0])
    i = run_dd(instar_bin, ["if=./a:b.raw", "of=out.raw"], cwd=dirs[1])
    assert q.rc == i.rc == 0, (q, i)
    outs = [_read(os.path.join(d, "out.raw")) for d in dirs]
    assert outs[0] == outs[1] and len(outs[1]) == 3072


def test_input_symlink(images, instar_bin, qemu_img, dirs):
    for d in dirs:
        os.symlink(images["tiny"], os.path.join(d, "link.raw"))
    q = run_dd(qemu_img, ["if=link.raw", "of=out.raw", "bs=7"], cwd=dirs[0])
    i = run_dd(instar_bin, ["if=link.raw", "of=out.raw", "bs=7"], cwd=dirs[1])
    assert q.rc == i.rc == 0, (q, i)
    outs = [_read(os.path.join(d, "out.raw")) for d in dirs]
    assert outs[0] == outs[1] and len(outs[1]) == 1024


def test_repeated_of_only_last_created(images, instar_bin, qemu_img, dirs):
    """A repeated operand takes the last value; the first of= is never
    created (parity.md row 13)."""
    for d, prog in zip(dirs, (qemu_img, instar_bin)):
        first, last = os.path.join(d, "first.img"), os.path.join(d, "out.raw")
        r = run_dd(prog, [f"if={images['small']}", f"of={first}", f"of={last}"], last)
        assert r.rc == 0, r
        assert not os.path.exists(first)
        assert len(r.out) == 3072
    assert listing(dirs[1]) == ["out.raw"]


def test_fixed_vhd_without_f_is_raw(images, instar_bin, qemu_img, dirs, tmp_path):
    """A fixed VHD is not recognised by the probe (footer at the end): it is
    copied as raw, footer included (parity.md row 8)."""
    import subprocess
    vhd = str(tmp_path / "mid-fixed.vpc")
    subprocess.run([qemu_img, "convert", "-f", "raw", "-O", "vpc", "-o",
                    "subformat=fixed", images["mid"], vhd], check=True)
    qdir, idir = dirs
    q, i = _copy_pair(qemu_img, instar_bin, vhd, os.path.join(qdir, "o"),
                      os.path.join(idir, "o"))
    assert q.rc == i.rc == 0, (q, i)
    assert i.out == q.out and len(i.out) == os.path.getsize(vhd)


def test_f_raw_on_qcow2_copies_container(images, instar_bin, qemu_img, dirs, tmp_path):
    """`-f raw` on a qcow2 copies the container bytes (parity.md row 9)."""
    import subprocess
    qc = str(tmp_path / "mid.qcow2")
    subprocess.run([qemu_img, "convert", "-f", "raw", "-O", "qcow2",
                    images["mid"], qc], check=True)
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, "o"), os.path.join(idir, "o")
    q = run_dd(qemu_img, ["-f", "raw", f"if={qc}", f"of={q_out}"], q_out)
    i = run_dd(instar_bin, ["-f", "raw", f"if={qc}", f"of={i_out}"], i_out)
    assert q.rc == i.rc == 0, (q, i)
    with open(qc, "rb") as f:
        container = f.read()
    assert i.out == q.out
    assert i.out[:len(container)] == container
