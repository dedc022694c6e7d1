"""instar convert against the live `qemu-img convert`, same arguments.

Raw outputs must be byte-identical and at least as sparse (allocated
blocks no more than qemu-img's, after both are synced). Structured outputs
must agree on format and virtual size, pass `qemu-img check` as qemu-img's
do, and convert back to the same raw bytes. Bad options and bad inputs give
the same exit status. Option-specific outputs (-o, -c) are tested in
test_convert_<fmt>.py.
"""
import json
import os
import subprocess

import pytest

from conftest import image_as_raw as _raw_of, listing

MiB = 1 << 20
FORMATS = ["qcow2", "vmdk", "vpc", "vhdx"]


def _run(prog, args, cwd=None, timeout=300):
    return subprocess.run([prog, "convert"] + list(args), capture_output=True,
                          cwd=cwd, timeout=timeout)


def _data_ranges(path):
    """[(start, end)] of the file's data (SEEK_DATA / SEEK_HOLE)."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size, off = os.fstat(fd).st_size, 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            off = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, off))
    finally:
        os.close(fd)
    return out


def _alloc(path):
    """Bytes of the file that are not holes: how sparse the file is,
    without the file system's own metadata (an extent tree block more or
    less depends on how the writes fell)."""
    return sum(end - start for start, end in _data_ranges(path))


def _info(qemu_img, path, fmt):
    r = subprocess.run([qemu_img, "info", "--output=json", "-f", fmt, path],
                       check=True, capture_output=True)
    return json.loads(r.stdout)


@pytest.fixture(scope="session")
def inputs(images, qemu_img, tmp_path_factory):
    """Raw images with data, written zeros and holes; every input format;
    a qcow2 chain."""
    d = tmp_path_factory.mktemp("convert-inputs")
    out = {"small": images["small"], "multi": images["multi"],
           "empty": images["empty"]}
    # 24 MiB: data, 1 MiB of written zeros, a 4 MiB hole, short zero runs.
    p = str(d / "zeros.raw")
    with open(p, "wb") as f:
        for i in range(24):
            if i % 5 == 1:
                f.write(bytes(MiB))
            elif i % 5 == 3:
                f.seek(MiB, os.SEEK_CUR)
            else:
                chunk = bytearray(bytes([(i * 7) % 255 + 1]) * MiB)
                for k in range(0, MiB, 8192):
                    chunk[k:k + 1536] = bytes(1536)  # short zero runs
                f.write(chunk)
        f.truncate(24 * MiB + 3000)
    out["zeros"] = p
    for fmt in FORMATS:
        q = str(d / f"zeros.{fmt}")
        subprocess.run([qemu_img, "convert", "-O", fmt, p, q], check=True)
        out[f"zeros-{fmt}"] = q
    top = str(d / "top.qcow2")
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", "-b",
                    out["zeros-qcow2"], "-F", "qcow2", top], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 1000 70000", top],
                   check=True, capture_output=True)
    out["chain"] = top
    return out


RAW_CASES = ["empty", "small", "multi", "zeros", "zeros-qcow2", "zeros-vmdk",
             "zeros-vpc", "zeros-vhdx", "chain"]


@pytest.mark.parametrize("sparse", [None, "0", "64k"],
                         ids=["default", "S0", "S64k"])
@pytest.mark.parametrize("src", RAW_CASES)
def test_raw_output_identical_and_as_sparse(src, sparse, inputs, instar_bin,
                                            qemu_img, tmp_path):
    args = ["-O", "raw"] + (["-S", sparse] if sparse else [])
    q_out, i_out = tmp_path / "q.raw", tmp_path / "i.raw"
    q = _run(qemu_img, args + [inputs[src], str(q_out)])
    i = _run(instar_bin, args + [inputs[src], str(i_out)])
    assert q.returncode == 0, q.stderr
    assert i.returncode == 0, i.stderr
    assert i_out.read_bytes() == q_out.read_bytes()
    assert _alloc(i_out) <= _alloc(q_out), \
        f"instar allocated {_alloc(i_out)}, qemu-img {_alloc(q_out)}"


@pytest.mark.parametrize("src", ["small", "multi", "zeros", "zeros-qcow2",
                                 "zeros-vhdx", "chain"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_structured_output_matches_qemu(fmt, src, inputs, instar_bin,
                                        qemu_img, tmp_path):
    q_out, i_out = str(tmp_path / f"q.{fmt}"), str(tmp_path / f"i.{fmt}")
    q = _run(qemu_img, ["-O", fmt, inputs[src], q_out])
    i = _run(instar_bin, ["-O", fmt, inputs[src], i_out])
    assert q.returncode == 0, q.stderr
    assert i.returncode == 0, i.stderr
    qi, ii = _info(qemu_img, q_out, fmt), _info(qemu_img, i_out, fmt)
    assert ii["format"] == qi["format"] == fmt
    assert ii["virtual-size"] == qi["virtual-size"]
    check = lambda p: subprocess.run([qemu_img, "check", "-f", fmt, p],
                                     capture_output=True).returncode
    assert check(i_out) == check(q_out) == (63 if fmt == "vpc" else 0)
    assert (_raw_of(qemu_img, i_out, fmt, str(tmp_path / "i.raw")) ==
            _raw_of(qemu_img, q_out, fmt, str(tmp_path / "q.raw")))
    # Sparse like qemu-img convert: no larger than its output.
    assert os.path.getsize(i_out) <= os.path.getsize(q_out)


def test_progress_like_qemu(inputs, instar_bin, tmp_path):
    i = _run(instar_bin, ["-p", "-O", "raw", inputs["multi"],
                          str(tmp_path / "o.raw")])
    assert i.returncode == 0, i.stderr
    out = i.stdout.decode()
    assert out.startswith("    (0.00/100%)\r"), repr(out)
    assert out.endswith("    (100.00/100%)\r\n"), repr(out)
    q = _run(instar_bin, ["-p", "-q", "-O", "raw", inputs["multi"],
                          str(tmp_path / "o2.raw")])
    assert q.returncode == 0 and q.stdout == b"", "-q silences -p"


@pytest.mark.parametrize("args", [
    ["-O", "qcow2", "-o", "foo=bar"],
    ["-O", "qcow2", "-o", "cluster_size=3k"],
    ["-O", "qcow2", "-o", "compat=2"],
    ["-O", "vpc", "-o", "subformat=foo"],
    ["-O", "vpc", "-o", "force_size=1"],
    ["-O", "vmdk", "-o", "adapter_type=foo"],
    ["-O", "vhdx", "-o", "block_size=3M"],
    ["-O", "raw", "-c"],
    ["-O", "vpc", "-c"],
    ["-S", "1000", "-O", "raw"],
    ["-O", "nosuch"],
    ["-f", "nosuch"],
], ids=["unknown-key", "cluster-size", "compat", "vpc-subformat",
        "force-size", "adapter", "block-size", "c-raw", "c-vpc", "S-1000",
        "O-unknown", "f-unknown"])
def test_bad_options_fail_like_qemu(args, inputs, instar_bin, qemu_img,
                                    tmp_path):
    q = _run(qemu_img, args + [inputs["small"], str(tmp_path / "q")])
    i = _run(instar_bin, args + [inputs["small"], str(tmp_path / "i")])
    assert q.returncode == 1, q
    assert i.returncode == 1, i
    assert i.stderr.strip(), "no message"
    assert not (tmp_path / "i").exists()


@pytest.mark.parametrize("fmt", ["qcow2", "vmdk", "vpc", "vhdx", "raw"])
def test_option_help_exits_zero(fmt, instar_bin, inputs, tmp_path):
    i = _run(instar_bin, ["-O", fmt, "-o", "help", inputs["small"],
                          str(tmp_path / "o")])
    assert i.returncode == 0
    assert i.stdout.startswith(b"Supported options:")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("args,what", [
    (["-B", "base.qcow2", "-O", "qcow2"], "-B"),
    (["-n"], "-n"),
    (["-m", "4"], "-m"),
    (["-W"], "-W"),
    (["--target-image-opts"], "--target-image-opts"),
    (["--image-opts"], "--image-opts"),
    (["--object", "secret,id=s,data=x"], "--object"),
    (["-s", "snap"], "snapshots"),
], ids=["B", "n", "m", "W", "target-image-opts", "image-opts", "object",
        "snapshot"])
def test_out_of_scope_options_are_refused(args, what, inputs, instar_bin,
                                          tmp_path):
    i = _run(instar_bin, args + [inputs["small"], str(tmp_path / "o")])
    assert i.returncode == 1
    assert what in i.stderr.decode(), i.stderr
    assert listing(tmp_path) == []


@pytest.mark.divergence
def test_several_inputs_are_refused(inputs, instar_bin, tmp_path):
    """qemu-img concatenates several inputs; instar takes one."""
    i = _run(instar_bin, [inputs["small"], inputs["multi"],
                          str(tmp_path / "o")])
    assert i.returncode == 1
    assert b"one input" in i.stderr
    assert listing(tmp_path) == []


def test_corrupt_input_refused_as_dd_refuses(instar_bin, tmp_path):
    bad = tmp_path / "bad.qcow2"
    bad.write_bytes(b"QFI\xfb" + bytes(508))
    out = tmp_path / "o.raw"
    out.write_bytes(b"existing")
    i = _run(instar_bin, [str(bad), str(out)])
    d = subprocess.run([instar_bin, "dd", f"if={bad}", f"of={tmp_path}/d.raw"],
                       capture_output=True)
    assert i.returncode == d.returncode == 1
    assert i.stderr == d.stderr.replace(b"d.raw", b"o.raw") or \
        i.stderr.split(b": ", 2)[-1] == d.stderr.split(b": ", 2)[-1]
    assert out.read_bytes() == b"existing"
