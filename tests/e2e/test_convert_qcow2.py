"""instar convert -O qcow2 with -o cluster_size, compat and -c against the
live `qemu-img convert` with the same arguments, on the inputs of
test_convert.py.

qemu-img writes no random field into a qcow2, so the outputs must be the
same files, byte for byte: header, refcount tables and blocks (grown
tables included), L1 and L2 tables, data, and with -c the compressed
clusters themselves (the same zlib, the same parameters). Each must also
pass `qemu-img check`, show the same `qemu-img info` and convert back to
the same raw bytes.
"""
import os
import subprocess

import pytest

from test_convert import _alloc, _info, _raw_of, _run, inputs  # noqa: F401

SIZES = ["512", "1k", "2k", "4k", "8k", "64k", "2M"]
SOURCES = ["empty", "small", "multi", "zeros", "zeros-qcow2", "zeros-vhdx",
           "chain"]

def _same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 24), fb.read(1 << 24)
            if x != y:
                return False
            if not x:
                return True


def _check(qemu_img, path):
    return subprocess.run([qemu_img, "check", "-f", "qcow2", path],
                          capture_output=True)


def _compare(args, src, inputs, instar_bin, qemu_img, tmp_path):  # noqa: F811
    q_out, i_out = str(tmp_path / "q.qcow2"), str(tmp_path / "i.qcow2")
    q = _run(qemu_img, args + [inputs[src], q_out])
    i = _run(instar_bin, args + [inputs[src], i_out])
    assert q.returncode == 0, q.stderr
    assert i.returncode == 0, i.stderr
    qi, ii = _info(qemu_img, q_out, "qcow2"), _info(qemu_img, i_out, "qcow2")
    for key in ("format", "virtual-size", "cluster-size", "format-specific"):
        assert ii.get(key) == qi.get(key), key
    qc, ic = _check(qemu_img, q_out), _check(qemu_img, i_out)
    assert qc.returncode == 0, qc.stdout
    assert ic.returncode == 0, ic.stdout + ic.stderr
    assert (_raw_of(qemu_img, i_out, "qcow2", str(tmp_path / "i.raw")) ==
            _raw_of(qemu_img, q_out, "qcow2", str(tmp_path / "q.raw")))
    assert os.path.getsize(i_out) <= os.path.getsize(q_out)
    # The same bytes, and no more of them allocated: qemu leaves the L1
    # table's last cluster a hole past its entries.
    assert _alloc(i_out) <= _alloc(q_out)
    assert _same_file(i_out, q_out), "not qemu-img's file"


@pytest.mark.parametrize("compat", ["0.10", "1.1"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("src", SOURCES)
def test_cluster_size_and_compat(src, size, compat, inputs,  # noqa: F811
                                 instar_bin, qemu_img, tmp_path):
    args = ["-O", "qcow2", "-o", f"cluster_size={size},compat={compat}"]
    _compare(args, src, inputs, instar_bin, qemu_img, tmp_path)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("src", SOURCES)
def test_compressed(src, size, inputs, instar_bin, qemu_img,  # noqa: F811
                    tmp_path):
    args = ["-c", "-O", "qcow2", "-o", f"cluster_size={size}"]
    _compare(args, src, inputs, instar_bin, qemu_img, tmp_path)


@pytest.mark.parametrize("extra", [["-S", "0"], ["-S", "64k"], ["-S", "3k"],
                                   ["-o", "compat=0.10"]],
                         ids=["S0", "S64k", "S3k", "v2"])
@pytest.mark.parametrize("size", ["512", "64k"])
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "c"])
def test_combinations(compress, size, extra, inputs, instar_bin,  # noqa: F811
                      qemu_img, tmp_path):
    args = (["-c"] if compress else []) + ["-O", "qcow2", "-o",
                                           f"cluster_size={size}"] + extra
    _compare(args, "zeros-qcow2", inputs, instar_bin, qemu_img, tmp_path)


@pytest.mark.parametrize("args", [
    ["-O", "qcow2", "-o", "cluster_size=256"],
    ["-O", "qcow2", "-o", "cluster_size=4M"],
    ["-O", "qcow2", "-o", "cluster_size=3k"],
    ["-O", "qcow2", "-o", "compat=0.9"],
])
def test_bad_values_fail_like_qemu(args, inputs, instar_bin,  # noqa: F811
                                   qemu_img, tmp_path):
    q = _run(qemu_img, args + [inputs["small"], str(tmp_path / "q.qcow2")])
    i = _run(instar_bin, args + [inputs["small"], str(tmp_path / "i.qcow2")])
    assert q.returncode == i.returncode == 1
    assert not (tmp_path / "i.qcow2").exists()
