"""instar convert -O vmdk with -o subformat, -o adapter_type and -c against
the live `qemu-img convert` with the same arguments, on the inputs of
test_convert.py.

Each output is written under the same name in its own directory (the
extent line carries the name), and must be qemu-img's file byte for byte
except the descriptor's CID, which qemu draws at random. On top of that:
qemu-img info agrees (the CID aside), qemu-img check is clean, the data
converted back to raw by qemu-img and read back by `instar dd` is the
same, and the file is no larger.
"""
import os
import random
import re
import subprocess

import pytest

from conftest import strip_prefix
from test_convert import _info, _raw_of, _run, inputs  # noqa: F401

DESC = slice(512, 21 * 512)  # the embedded descriptor's 20 sectors
CID = re.compile(rb"\nCID=[0-9a-f]{1,8}\n")

SOURCES = ["small", "multi", "zeros", "zeros-qcow2", "zeros-vhdx", "chain"]
MiB = 1 << 20


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """70 MiB + 1536 over three grain tables: the pattern, with all-zero
    and hole stretches that straddle tables and 2 MiB batches, random
    (incompressible) data, and a partial last grain."""
    import images
    d = tmp_path_factory.mktemp("convert-vmdk")
    p = str(d / "tables.raw")
    with open(p, "wb") as f:
        f.write(images.pattern(0, 20 * MiB))
        f.write(bytes(13 * MiB + 4096))          # zeros over a table edge
        f.write(random.Random(7).randbytes(3 * MiB))  # incompressible
        f.seek(40 * MiB, os.SEEK_SET)            # a hole to 40 MiB
        f.write(images.pattern(40 * MiB, 30 * MiB + 1536))
    yield p
    os.unlink(p)


def _convert_both(qemu_img, instar_bin, args, src, tmp_path):
    """Runs both with args on src; the paths of qemu-img's and instar's
    outputs, both named out.vmdk."""
    outs = []
    for who, prog in (("q", qemu_img), ("i", instar_bin)):
        d = tmp_path / who
        d.mkdir()
        out = str(d / "out.vmdk")
        r = _run(prog, args + [src, out])
        assert r.returncode == 0, (who, r.stderr)
        outs.append(out)
    return outs


def _descriptor_without_cid(data):
    # Up to the first NUL: qemu rewrites the descriptor with a new CID at
    # the first write, and when that CID has fewer digits than the one it
    # was created with, the old text's last bytes stay behind the NUL.
    text = data[DESC].split(b"\0", 1)[0]
    assert CID.search(text), text
    return CID.sub(b"\nCID=\n", text)


def _same_but_cid(q_out, i_out):
    with open(q_out, "rb") as f:
        q = f.read()
    with open(i_out, "rb") as f:
        i = f.read()
    assert len(i) == len(q), f"instar {len(i)} bytes, qemu-img {len(q)}"
    assert _descriptor_without_cid(i) == _descriptor_without_cid(q)
    assert i[:DESC.start] == q[:DESC.start], "the header differs"
    assert i[DESC.stop:] == q[DESC.stop:], "tables or grains differ"


def _info_without_cid(qemu_img, path):
    info = _info(qemu_img, path, "vmdk")
    data = info["format-specific"]["data"]
    del data["cid"]
    for e in data["extents"]:
        e.pop("filename")
    return {k: info[k] for k in ("format", "virtual-size", "cluster-size",
                                 "format-specific", "dirty-flag")}


def _check_like_qemu(qemu_img, instar_bin, q_out, i_out, tmp_path):
    assert _info_without_cid(qemu_img, i_out) == \
        _info_without_cid(qemu_img, q_out)
    r = subprocess.run([qemu_img, "check", "-f", "vmdk", i_out],
                       capture_output=True)
    assert r.returncode == 0, r.stdout + r.stderr
    want = _raw_of(qemu_img, q_out, "vmdk", str(tmp_path / "q.raw"))
    assert _raw_of(qemu_img, i_out, "vmdk", str(tmp_path / "i.raw")) == want
    # The project's own reader: instar dd of instar's output.
    back = tmp_path / "back.raw"
    r = subprocess.run([instar_bin, "dd", "-f", "vmdk", "-O", "raw",
                        f"if={i_out}", f"of={back}", "bs=1M"],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    assert back.read_bytes() == want
    back.unlink()
    assert os.path.getsize(i_out) <= os.path.getsize(q_out)


@pytest.mark.parametrize("sparse", [None, "0", "1M"],
                         ids=["default", "S0", "S1M"])
@pytest.mark.parametrize("src", SOURCES + ["tables"])
def test_stream_optimized_is_qemus_file(src, sparse, inputs, tables,
                                        instar_bin, qemu_img, tmp_path):
    args = ["-O", "vmdk", "-o", "subformat=streamOptimized"] + \
        (["-S", sparse] if sparse else [])
    path = tables if src == "tables" else inputs[src]
    q_out, i_out = _convert_both(qemu_img, instar_bin, args, path, tmp_path)
    _same_but_cid(q_out, i_out)
    _check_like_qemu(qemu_img, instar_bin, q_out, i_out, tmp_path)


@pytest.mark.parametrize("args", [
    ["-c"],
    ["-c", "-S", "1M"],
    ["-c", "-S", "0"],
    ["-c", "-o", "subformat=streamOptimized"],
    ["-c", "-o", "subformat=monolithicSparse"],
], ids=["c", "c-S1M", "c-S0", "c-stream", "c-sparse"])
@pytest.mark.parametrize("src", ["multi", "zeros", "chain", "tables"])
def test_compressed_is_qemus_file(src, args, inputs, tables, instar_bin,
                                  qemu_img, tmp_path):
    path = tables if src == "tables" else inputs[src]
    q_out, i_out = _convert_both(qemu_img, instar_bin, ["-O", "vmdk"] + args,
                                 path, tmp_path)
    _same_but_cid(q_out, i_out)
    _check_like_qemu(qemu_img, instar_bin, q_out, i_out, tmp_path)


@pytest.mark.parametrize("subformat", ["monolithicSparse", "streamOptimized"])
@pytest.mark.parametrize("adapter", ["ide", "buslogic", "lsilogic",
                                     "legacyESX"])
def test_adapter_type_is_qemus_file(adapter, subformat, inputs, instar_bin,
                                    qemu_img, tmp_path):
    args = ["-O", "vmdk", "-o", f"adapter_type={adapter},subformat={subformat}"]
    q_out, i_out = _convert_both(qemu_img, instar_bin, args, inputs["zeros"],
                                 tmp_path)
    _same_but_cid(q_out, i_out)
    _check_like_qemu(qemu_img, instar_bin, q_out, i_out, tmp_path)
    with open(i_out, "rb") as f:
        text = f.read()[DESC]
    assert f'ddb.adapterType = "{adapter}"'.encode() in text
    heads = b"16" if adapter == "ide" else b"255"
    assert b'ddb.geometry.heads = "' + heads + b'"' in text


@pytest.mark.parametrize("value", ["IDE", "scsi", "", "streamoptimized"])
def test_bad_values_fail_like_qemu(value, inputs, instar_bin, qemu_img,
                                   tmp_path):
    key = "subformat" if value == "streamoptimized" else "adapter_type"
    args = ["-O", "vmdk", "-o", f"{key}={value}"]
    q = _run(qemu_img, args + [inputs["small"], str(tmp_path / "q")])
    i = _run(instar_bin, args + [inputs["small"], str(tmp_path / "i")])
    assert q.returncode == i.returncode == 1
    assert strip_prefix(i.stderr.decode()) == strip_prefix(
        q.stderr.decode().replace(str(tmp_path / "q"), str(tmp_path / "i")))
    assert not (tmp_path / "i").exists()
