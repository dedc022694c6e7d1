"""Failures, refusals and deliberate divergences from qemu-img dd.

Error rows: same exit status as qemu-img (1), a message on stderr, and
instar's stronger guarantee: no output file is left behind and an existing
`of=` file is not touched (qemu truncates it in some cases).

Divergence tests (marker `divergence`) check instar's own behaviour; they
fail against a qemu-img shim by design.
"""
import os
import shutil
import stat
import subprocess
import time

import pytest

from conftest import listing, read_range, run_dd, strip_prefix
from cases import ERROR_ROWS, subst_error_template as _subst

EXISTING = b"\x5a" * 100000  # content of a pre-existing of= file

def _prepare(d, existing):
    os.mkdir(os.path.join(d, "adir"))
    if existing:
        p = os.path.join(d, "out.raw")
        with open(p, "wb") as f:
            f.write(EXISTING)
        os.chmod(p, 0o640)
    return listing(d)


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("row", ERROR_ROWS, ids=[r[0] for r in ERROR_ROWS])
def test_error_row(row, existing, images, instar_bin, qemu_img, dirs):
    _, input_name, template, hint = row
    qdir, idir = dirs
    _prepare(qdir, existing)
    before = _prepare(idir, existing)
    q = run_dd(qemu_img, _subst(template, qdir, images[input_name]), cwd=qdir)
    i = run_dd(instar_bin, _subst(template, idir, images[input_name]), cwd=idir)

    assert q.rc == 1, f"qemu-img: {q}"
    assert i.rc == q.rc, f"instar: {i}"
    assert i.stderr.strip(), "instar printed no message"
    if hint:
        assert hint in strip_prefix(i.stderr), i.stderr
    # instar's guarantee: nothing created, nothing touched
    assert listing(idir) == before, "instar left files behind"
    if existing:
        p = os.path.join(idir, "out.raw")
        with open(p, "rb") as f:
            assert f.read() == EXISTING, "instar modified the existing output"
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o640


def test_help_exits_zero(instar_bin, qemu_img, tmp_path):
    q = run_dd(qemu_img, ["-h"], cwd=tmp_path)
    i = run_dd(instar_bin, ["-h"], cwd=tmp_path)
    assert q.rc == i.rc == 0
    assert (i.stdout + i.stderr).strip()
    assert listing(tmp_path) == []


# --- deliberate divergences -------------------------------------------------

def _padded(data):
    return data + bytes(-len(data) % 512)


@pytest.mark.divergence
@pytest.mark.parametrize("src,extra,window", [
    ("small", [], (0, 3072)),                     # not a 512 multiple: padded
    ("mid", [], (0, 1050112)),                    # full window, 512 multiple
    ("mid", ["bs=512", "skip=1", "count=4"], (512, 2048)),
    ("mid", ["bs=1000", "skip=3", "count=7"], (3000, 7000)),
], ids=["small-full", "mid-full", "mid-skip1-count4", "mid-bs1000-unaligned"])
def test_same_file_not_destroyed(src, extra, window, images, instar_bin, tmp_path):
    # Divergence: qemu truncates X before reading it and writes zeros
    # (parity.md row 10); instar writes the window to a temp file and renames.
    x = str(tmp_path / "x.raw")
    shutil.copyfile(images[src], x)
    with open(x, "rb") as f:
        orig = f.read()
    i = run_dd(instar_bin, [f"if={x}", f"of={x}", *extra], x)
    assert i.rc == 0, i
    assert i.out == _padded(orig[window[0]:window[1]])
    assert listing(tmp_path) == ["x.raw"]


@pytest.mark.divergence
def test_fifo_input_refused(instar_bin, tmp_path):
    # Divergence: qemu blocks forever opening a FIFO (never run qemu here);
    # instar refuses non-regular inputs at once.
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    out = str(tmp_path / "out.raw")
    t0 = time.monotonic()
    try:
        i = run_dd(instar_bin, [f"if={fifo}", f"of={out}"], out, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("instar blocked on a FIFO input")
    assert time.monotonic() - t0 < 10
    assert i.rc == 1 and i.stderr.strip(), i
    assert listing(tmp_path) == ["fifo"]


@pytest.mark.divergence
@pytest.mark.parametrize("dev", ["/dev/zero", "/dev/null"])
@pytest.mark.parametrize("extra", [[], ["count=1"]], ids=["nocount", "count1"])
def test_char_device_input_refused(dev, extra, instar_bin, tmp_path):
    # Divergence: qemu accepts /dev/zero and /dev/null as empty inputs
    # (exit 0, empty output); instar refuses non-regular, non-block inputs.
    out = str(tmp_path / "out.raw")
    i = run_dd(instar_bin, [f"if={dev}", f"of={out}", *extra], out, timeout=10)
    assert i.rc == 1 and i.stderr.strip(), i
    assert listing(tmp_path) == []


def _run_in(prog, d, args):
    out = os.path.join(d, "out.raw")
    return run_dd(prog, args, out, cwd=d)


@pytest.mark.divergence
def test_colon_input_is_plain_name(images, instar_bin, tmp_path):
    # Divergence: qemu parses `a:` as a protocol ("Unknown protocol 'a'").
    os.symlink(images["small"], tmp_path / "a:b.raw")
    i = _run_in(instar_bin, str(tmp_path), ["if=a:b.raw", "of=out.raw", "bs=1000", "skip=1"])
    assert i.rc == 0, i
    assert i.out == _padded(read_range(images["small"], 1000, 3072))


@pytest.mark.divergence
def test_colon_output_is_plain_name(images, instar_bin, tmp_path):
    # Divergence: qemu fails with "Unknown protocol 'x'".
    i = run_dd(instar_bin, [f"if={images['tiny']}", "of=x:y.raw"], cwd=tmp_path)
    assert i.rc == 0, i
    assert listing(tmp_path) == ["x:y.raw"]
    with open(tmp_path / "x:y.raw", "rb") as f:
        assert f.read() == _padded(read_range(images["tiny"], 0, 1000))


@pytest.mark.divergence
def test_file_prefix_not_interpreted(images, instar_bin, tmp_path):
    # Divergence: qemu strips `file:` and reads small.raw; instar opens the
    # file literally named `file:small.raw` (here a copy of tiny).
    os.symlink(images["small"], tmp_path / "small.raw")
    os.symlink(images["tiny"], tmp_path / "file:small.raw")
    i = _run_in(instar_bin, str(tmp_path), ["if=file:small.raw", "of=out.raw"])
    assert i.rc == 0, i
    assert i.out == _padded(read_range(images["tiny"], 0, 1000))


@pytest.mark.divergence
@pytest.mark.parametrize("name", [
    "file:small.raw",
    'json:{"driver":"raw","file":{"driver":"file","filename":"small.raw"}}',
], ids=["file-prefix", "json"])
def test_prefixed_name_missing(name, images, instar_bin, tmp_path):
    # Divergence: qemu honours these prefixes (exit 0); for instar they are
    # plain names of files that do not exist here.
    os.symlink(images["small"], tmp_path / "small.raw")
    i = _run_in(instar_bin, str(tmp_path), [f"if={name}", "of=out.raw"])
    assert i.rc == 1 and i.stderr.strip(), i
    assert listing(tmp_path) == ["small.raw"]


@pytest.mark.divergence
@pytest.mark.parametrize("args", [
    ["if=@MISSING", "of=@OUT"], ["if=@IN", "of=@OUT", "bs=0"], ["bs=1", "foo=2"],
], ids=["missing-input", "bad-bs", "unknown-operand"])
def test_messages_have_instar_prefix(args, images, instar_bin, tmp_path):
    # Divergence by design: instar's messages start with `instar: `.
    i = run_dd(instar_bin, _subst(args, str(tmp_path), images["small"]))
    assert i.rc == 1
    first = i.stderr.splitlines()[0] if i.stderr else ""
    assert first.startswith("instar: "), i.stderr


# --- every input format, read back to raw ----------------------------------

FORMATS = ["qcow2", "vmdk", "vpc", "vhdx"]


@pytest.fixture(scope="session")
def format_inputs(images, qemu_img, tmp_path_factory):
    """mid.raw converted to each format with qemu-img convert."""
    d = tmp_path_factory.mktemp("formats")
    out = {}
    for fmt in FORMATS:
        p = str(d / f"mid.{fmt}")
        subprocess.run([qemu_img, "convert", "-f", "raw", "-O", fmt,
                        images["mid"], p], check=True)
        out[fmt] = p
    return out


@pytest.mark.parametrize("extra", [[], ["bs=1000", "skip=3", "count=700"]],
                         ids=["all", "bs1000-skip3-count700"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_input_format_parity(fmt, extra, format_inputs, instar_bin, qemu_img, dirs):
    qdir, idir = dirs
    q_out, i_out = os.path.join(qdir, "o"), os.path.join(idir, "o")
    q = run_dd(qemu_img, [f"if={format_inputs[fmt]}", f"of={q_out}", *extra], q_out)
    i = run_dd(instar_bin, [f"if={format_inputs[fmt]}", f"of={i_out}", *extra], i_out)
    assert q.rc == 0, q
    assert i.rc == 0, i
    assert i.out == q.out
