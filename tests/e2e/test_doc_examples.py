"""Every example in the documentation is run, so a doc that drifts from the
code fails the suite.

An example is a fenced block marked by an `<!-- example -->` line just
before it:
- ```console: a transcript. Each `$ ` line is run with bash in a fresh
  directory of sample images; the lines after it up to the next `$ ` are
  its output (stdout and stderr together), compared exactly, except a
  `disk size:` line (it depends on the file system).
- ```sh: every line must succeed (bash -e).

Each example also runs a second time with `instar dd` and `instar convert`
replaced by `qemu-img dd` and `qemu-img convert` (instar's own options
dropped; `instar info` and the rest do nothing there), and the files both
runs leave must match: raw files byte for byte, images by format, virtual
size, `qemu-img check` and their data as raw.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import image_as_raw
from images import pattern

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DOCS = ["README.md", "docs/dd.md", "docs/convert.md", "docs/info.md"]
MiB = 1 << 20

BLOCK = re.compile(r"^(<!-- example -->\n)?```(console|sh)\n(.*?)^```$",
                   re.M | re.S)

QEMU_SHIM = r"""#!/bin/bash
# instar's examples with qemu-img: dd and convert run qemu-img, instar's
# own options dropped; everything else (info, --help) does nothing.
cmd=$1; shift
case "$cmd" in
dd|convert) ;;
*) exit 0 ;;
esac
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --backing-dir) shift ;;
    --backing-dir=*) ;;
    -p) [ "$cmd" = convert ] && args+=("$1") ;;
    *) args+=("$1") ;;
    esac
    shift
done
exec "$QEMU_IMG" "$cmd" "${args[@]}"
"""


def examples():
    """(doc, index, kind, text) of every example; and blocks that run
    instar but are not marked."""
    found, unmarked = [], []
    for doc in DOCS:
        with open(os.path.join(ROOT, doc)) as f:
            text = f.read()
        n = 0
        for m in BLOCK.finditer(text):
            body = m.group(3)
            runs_instar = re.search(r"^(\$ )?instar ", body, re.M)
            if m.group(1):
                n += 1
                found.append((doc, n, m.group(2), body))
            elif runs_instar:
                unmarked.append(f"{doc}: {body.splitlines()[0]}")
    return found, unmarked


EXAMPLES, UNMARKED = examples()


def test_every_example_is_marked():
    assert not UNMARKED, "mark these with <!-- example -->: " + \
        "; ".join(UNMARKED)
    per_doc = {doc: sum(1 for e in EXAMPLES if e[0] == doc) for doc in DOCS}
    # dd.md's Examples section (whole image, -O qcow2, a window, a chain,
    # progress) and README's usage blocks; a lost marker fails here
    assert per_doc["docs/dd.md"] >= 5 and per_doc["README.md"] >= 2, per_doc


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def samples(tmp_path_factory, qemu_img):
    """The files the examples name."""
    d = str(tmp_path_factory.mktemp("samples"))
    q = lambda *a: subprocess.run([qemu_img] + list(a), cwd=d, check=True,
                                  capture_output=True)
    # 16 MiB: data, then a zero stretch, then data
    data = pattern(0, 16 * MiB)
    data = data[:6 * MiB] + bytes(2 * MiB) + data[8 * MiB:]
    _write(os.path.join(d, "disk.raw"), data)
    _write(os.path.join(d, "disk.img"), data)
    q("convert", "-f", "raw", "-O", "qcow2", "disk.raw", "disk.qcow2")
    q("convert", "-f", "raw", "-O", "vmdk", "disk.raw", "disk.vmdk")
    shutil.copy(os.path.join(d, "disk.qcow2"), os.path.join(d, "upload.qcow2"))
    shutil.copy(os.path.join(d, "disk.vmdk"), os.path.join(d, "upload.vmdk"))
    # base.qcow2 (10 MiB) and child.qcow2 on it, side by side
    _write(os.path.join(d, "base.raw"), data[:10 * MiB])
    q("convert", "-f", "raw", "-O", "qcow2", "base.raw", "base.qcow2")
    os.unlink(os.path.join(d, "base.raw"))
    q("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2",
      "child.qcow2")
    # uploads/child.qcow2 naming ../golden/base.qcow2
    os.mkdir(os.path.join(d, "golden"))
    os.mkdir(os.path.join(d, "uploads"))
    shutil.copy(os.path.join(d, "disk.qcow2"),
                os.path.join(d, "golden", "base.qcow2"))
    q("create", "-f", "qcow2", "-b", "../golden/base.qcow2", "-F", "qcow2",
      "uploads/child.qcow2")
    return d


def _tools(tmp, instar_bin):
    """bin dirs with `instar` as instar and as the qemu-img shim."""
    a = os.path.join(tmp, "bin-instar")
    q = os.path.join(tmp, "bin-qemu")
    os.mkdir(a)
    os.mkdir(q)
    os.symlink(os.path.abspath(instar_bin), os.path.join(a, "instar"))
    shim = os.path.join(q, "instar")
    with open(shim, "w") as f:
        f.write(QEMU_SHIM)
    os.chmod(shim, 0o755)
    return a, q


def _run(line, cwd, bindir, qemu_img, check=False):
    env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"],
               QEMU_IMG=qemu_img, LC_ALL="C")
    return subprocess.run(["bash", "-e" if check else "+e", "-c", line],
                          cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=300)


def _transcript(body):
    """[(command, expected output lines)]"""
    steps = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, "a transcript starts with a $ command"
            steps[-1][1].append(line)
    return steps


def _same_line(want, got):
    if want.startswith("disk size: ") and got.startswith("disk size: "):
        return True
    return want == got


def _files(top):
    out = {}
    for base, _, names in os.walk(top):
        for n in names:
            p = os.path.join(base, n)
            out[os.path.relpath(p, top)] = p
    return out


def _image(qemu_img, path):
    r = subprocess.run([qemu_img, "info", "--output=json", path],
                       capture_output=True, check=True)
    return json.loads(r.stdout)




def _compare(qemu_img, mine, theirs):
    a, q = _files(mine), _files(theirs)
    assert sorted(a) == sorted(q), "the example left different files"
    for name in a:
        with open(a[name], "rb") as f1, open(q[name], "rb") as f2:
            if f1.read() == f2.read():
                continue
        ia, iq = _image(qemu_img, a[name]), _image(qemu_img, q[name])
        fmt = ia["format"]
        assert fmt == iq["format"] and fmt != "raw", \
            f"{name}: {fmt} differs from qemu-img's {iq['format']}"
        assert ia["virtual-size"] == iq["virtual-size"], name
        check = lambda p: subprocess.run(
            [qemu_img, "check", "-f", fmt, p], capture_output=True).returncode
        assert check(a[name]) == check(q[name]), name
        assert image_as_raw(qemu_img, a[name], fmt, a[name] + ".raw") == \
            image_as_raw(qemu_img, q[name], fmt, q[name] + ".raw"), name


@pytest.mark.parametrize("doc,n,kind,body", EXAMPLES,
                         ids=[f"{e[0]}#{e[1]}" for e in EXAMPLES])
def test_example(doc, n, kind, body, samples, instar_bin, qemu_img, tmp_path):
    mine, theirs = str(tmp_path / "instar"), str(tmp_path / "qemu")
    shutil.copytree(samples, mine, symlinks=True)
    shutil.copytree(samples, theirs, symlinks=True)
    bin_a, bin_q = _tools(str(tmp_path), instar_bin)
    if kind == "sh":
        r = _run(body, mine, bin_a, qemu_img, check=True)
        assert r.returncode == 0, r.stdout.decode(errors="replace")
        q = _run(body, theirs, bin_q, qemu_img, check=True)
        assert q.returncode == 0, q.stdout.decode(errors="replace")
    else:
        for command, want in _transcript(body):
            r = _run(command, mine, bin_a, qemu_img)
            got = r.stdout.decode(errors="replace").splitlines()
            assert len(got) == len(want) and all(
                _same_line(w, g) for w, g in zip(want, got)), \
                f"$ {command}\nshown:\n" + "\n".join(want) + \
                "\ngot:\n" + "\n".join(got)
            _run(command, theirs, bin_q, qemu_img)
    _compare(qemu_img, mine, theirs)
