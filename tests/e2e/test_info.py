"""instar info beyond the per-format parity tests (test_input_*.py run
info_parity.compare on every image the dd tests make):

- the command line against qemu-img info's messages and exit statuses;
- the safety verdict: one crafted image per rule, each flagged with its
  reason; the clean images safe; --check-safe's exit status;
- the malformed images of tests/gen: info fails as dd fails (exit 1, the
  same message), except where info deliberately does not go (files an
  image refers to are not opened, data is not read);
- what info opens: nothing an image refers to without --backing-chain;
- VHD/VHDX parents, which qemu 7.2 does not report (a divergence).
"""
import json
import os
import shutil
import struct
import subprocess

import pytest

from conftest import run_dd, strip_prefix
from info_parity import compare, run_info, safety

import malformed_qcow2
import malformed_vhdx
import malformed_vmdk
import malformed_vpc

MiB = 1 << 20


def _run(*argv, cwd=None):
    subprocess.run(argv, check=True, capture_output=True, cwd=cwd)


def _json(instar_bin, path, *args, cwd=None):
    r = run_info(instar_bin, ["--output=json", *args, path], cwd=cwd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _set_be64(path, off, value, mask=False):
    with open(path, "r+b") as f:
        f.seek(off)
        old = struct.unpack(">Q", f.read(8))[0]
        f.seek(off)
        f.write(struct.pack(">Q", old | value if mask else value))


# --- the command line -----------------------------------------------------

@pytest.mark.parametrize("args", [
    [], ["a.raw", "b.raw"], ["--output=xml", "a.raw"], ["-f", "qed2", "a.raw"],
    ["missing.raw"], ["-x", "a.raw"], ["--output"], ["."],
], ids=["none", "two", "bad-output", "bad-format", "missing", "bad-option",
        "output-no-arg", "directory"])
def test_command_line_errors_like_qemu(args, qemu_img, instar_bin, tmp_path):
    (tmp_path / "a.raw").write_bytes(b"x" * 512)
    (tmp_path / "b.raw").write_bytes(b"x" * 512)
    q = run_info(qemu_img, args, cwd=tmp_path)
    i = run_info(instar_bin, args, cwd=tmp_path)
    assert i.returncode == q.returncode == 1, (q, i)
    assert i.stdout == b""
    qm, im = strip_prefix(q.stderr.decode()), strip_prefix(i.stderr.decode())
    if args in (["missing.raw"], ["."]):
        # the same first words; the reason is the host's (regular file)
        assert im.split(":")[0] == qm.split(":")[0], (qm, im)
    else:
        assert im.replace("instar", "qemu-img") == qm, (qm, im)


def test_help_lists_info(instar_bin):
    r = subprocess.run([instar_bin, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "\n  info " in r.stdout, r.stdout
    r = subprocess.run([instar_bin, "info", "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "--check-safe" in r.stdout, r.stdout


def test_an_output_that_cannot_be_written(instar_bin, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    p = tmp_path / "a.raw"
    p.write_bytes(b"x" * 512)
    with open("/dev/full", "wb") as full:
        r = subprocess.run([instar_bin, "info", str(p)], stdout=full,
                           stderr=subprocess.PIPE)
    assert r.returncode == 1
    assert r.stderr == b"instar: error writing the output: No space left " \
        b"on device\n"


@pytest.mark.parametrize("name", ["empty", "tiny", "small", "mid", "multi",
                                  "huge"])
def test_raw_inputs_like_qemu(name, images, qemu_img, instar_bin):
    """The raw inputs of the dd tests (0 B to a sparse 5 GiB file)."""
    compare(qemu_img, instar_bin, images[name])
    compare(qemu_img, instar_bin, images[name], ["--backing-chain"])


def test_options_may_follow_the_name_and_U_is_accepted(qemu_img, instar_bin,
                                                       tmp_path):
    p = str(tmp_path / "a.raw")
    with open(p, "wb") as f:
        f.write(b"x" * 3000)
    compare(qemu_img, instar_bin, p, ["-U", "-f", "raw"])
    j = _json(instar_bin, p, "--output", "json", "--output=json")
    assert j["virtual-size"] == 3072


# --- the safety verdict -----------------------------------------------------

@pytest.fixture(scope="module")
def safety_images(images, qemu_img, tmp_path_factory):
    """name -> (path, extra info args, rules expected)."""
    d = tmp_path_factory.mktemp("safety")
    out = {}

    def p(name):
        return str(d / name)

    def convert(name, fmt, *opts, src="mid"):
        _run(qemu_img, "convert", "-f", "raw", "-O", fmt, *opts, images[src],
             p(name))
        return p(name)

    # clean images of every format
    out["clean-qcow2"] = (convert("clean.qcow2", "qcow2"), [], [])
    out["clean-qcow2-v2"] = (convert("v2.qcow2", "qcow2", "-o", "compat=0.10"),
                             [], [])
    out["clean-qcow2-compressed"] = (convert("c.qcow2", "qcow2", "-c"), [], [])
    out["clean-raw"] = (convert("clean.raw", "raw"), [], [])
    out["clean-monolithicSparse"] = (convert("ms.vmdk", "vmdk"), [], [])
    out["clean-streamOptimized"] = (
        convert("so.vmdk", "vmdk", "-o", "subformat=streamOptimized"), [], [])
    out["clean-vpc"] = (convert("clean.vpc", "vpc"), [], [])
    out["clean-vpc-fixed"] = (
        convert("fixed.vpc", "vpc", "-o", "subformat=fixed"), ["-f", "vpc"],
        [])
    out["clean-vhdx"] = (convert("clean.vhdx", "vhdx"), [], [])
    out["clean-empty-qcow2"] = (convert("empty.qcow2", "qcow2", src="empty"),
                                [], [])

    # one per rule
    _run(qemu_img, "create", "-f", "qcow2", "-b", "clean.qcow2", "-F",
         "qcow2", p("ov.qcow2"), cwd=str(d))
    out["backing-file"] = (p("ov.qcow2"), [], ["backing-file"])
    _run(qemu_img, "create", "-f", "vmdk", "-b", "ms.vmdk", "-F", "vmdk",
         p("ov.vmdk"), cwd=str(d))
    out["backing-file-vmdk"] = (p("ov.vmdk"), [], ["backing-file"])
    _run(qemu_img, "create", "-f", "qcow2", "-o", "data_file=df.data",
         p("df.qcow2"), "1M", cwd=str(d))
    out["data-file"] = (p("df.qcow2"), [], ["data-file"])
    out["vmdk-create-type"] = (
        convert("flat.vmdk", "vmdk", "-o", "subformat=monolithicFlat"), [],
        ["vmdk-create-type", "vmdk-extent-file"])
    out["vmdk-extent-file"] = (
        convert("split.vmdk", "vmdk", "-o", "subformat=twoGbMaxExtentSparse"),
        [], ["vmdk-create-type", "vmdk-extent-file"])
    shutil.copyfile(p("clean.qcow2"), p("dirty.qcow2"))
    _set_be64(p("dirty.qcow2"), 72, 1, mask=True)
    out["dirty"] = (p("dirty.qcow2"), [], ["dirty"])
    shutil.copyfile(p("clean.qcow2"), p("corrupt.qcow2"))
    _set_be64(p("corrupt.qcow2"), 72, 2, mask=True)
    out["corrupt"] = (p("corrupt.qcow2"), [], ["corrupt"])

    def qcow2(nclusters=9):
        """malformed_qcow2's image with a real (empty) refcount table in
        its last cluster."""
        img = malformed_qcow2.Image(nclusters=nclusters)
        last = (nclusters - 1) * malformed_qcow2.CS
        img.d[last:] = bytes(malformed_qcow2.CS)
        img.be64(48, last)
        return img

    # metadata: a data cluster inside the L1 table (qemu and dd read it)
    img = qcow2()
    img.l2(1, malformed_qcow2.CS | malformed_qcow2.COPIED)
    with open(p("data-in-l1.qcow2"), "wb") as f:
        f.write(img.bytes())
    out["metadata-data-in-l1"] = (p("data-in-l1.qcow2"), [], ["metadata"])
    # metadata: an L2 table that is also a data cluster
    img = qcow2()
    img.l2(0, 2 * malformed_qcow2.CS | malformed_qcow2.COPIED)
    with open(p("data-in-l2.qcow2"), "wb") as f:
        f.write(img.bytes())
    out["metadata-data-in-l2"] = (p("data-in-l2.qcow2"), [], ["metadata"])
    # metadata: a refcount block past the end of the file (no read uses it)
    img = qcow2()
    img.be64(8 * malformed_qcow2.CS, 1 << 40)      # a block far away
    with open(p("refblock-past-eof.qcow2"), "wb") as f:
        f.write(img.bytes())
    out["metadata-refblock"] = (p("refblock-past-eof.qcow2"), [],
                                ["metadata"])
    # metadata: a vmdk grain inside a grain table (overHead says 1 sector)
    data = malformed_vmdk.pattern(256 * 1024)
    v = bytearray(malformed_vmdk.sparse(data))
    gd = struct.unpack_from("<Q", v, 56)[0]
    gt = struct.unpack_from("<I", v, gd * 512)[0]
    struct.pack_into("<Q", v, 64, 1)                # overHead
    struct.pack_into("<I", v, gt * 512 + 4, gt)      # grain 1 -> its GT
    with open(p("grain-in-gt.vmdk"), "wb") as f:
        f.write(v)
    out["metadata-vmdk"] = (p("grain-in-gt.vmdk"), [], ["metadata"])

    # format confusion: a fixed VHD probed as raw (its footer at the end);
    # -f raw on a qcow2; a qcow2 that is also an ISO 9660 volume
    out["confusion-vhd-footer"] = (p("fixed.vpc"), [], ["format-confusion"])
    out["confusion-forced-raw"] = (p("clean.qcow2"), ["-f", "raw"],
                                   ["format-confusion"])
    img = qcow2(12)
    img.d[0x8001:0x8006] = b"CD001"
    with open(p("iso.qcow2"), "wb") as f:
        f.write(img.bytes())
    out["confusion-iso"] = (p("iso.qcow2"), [], ["format-confusion"])

    # a VHD parent and a VHDX parent (instar's own report)
    shutil.copyfile(p("clean.vpc"), p("base.vpc"))
    pchs, puid = malformed_vpc.read_footer_fields(p("base.vpc"))
    s = malformed_vpc.Sparse(pchs, block_size=64 << 10,
                             disk_type=malformed_vpc.DIFF, uid=b"\x71" * 16,
                             parent_uuid=puid)
    s.locators = [(b"W2ru", malformed_vpc.utf16(".\\base.vpc"))]
    with open(p("diff.vhd"), "wb") as f:
        f.write(s.build())
    out["parent-vpc"] = (p("diff.vhd"), [], ["parent"])
    link = malformed_vhdx.guid_text(malformed_vhdx.data_write_guid(
        p("clean.vhdx")))
    c = malformed_vhdx.Image(2 * MiB, parent=[("parent_linkage", link),
                                              ("relative_path",
                                               ".\\clean.vhdx")])
    with open(p("diff.vhdx"), "wb") as f:
        f.write(c.build())
    out["parent-vhdx"] = (p("diff.vhdx"), [], ["parent"])

    # --backing-chain: a backing file outside the allowed directory
    sub = d / "sub"
    sub.mkdir()
    _run(qemu_img, "create", "-f", "qcow2", "-b", "../clean.qcow2", "-F",
         "qcow2", str(sub / "up.qcow2"), cwd=str(sub))
    out["backing-refused"] = (str(sub / "up.qcow2"), ["--backing-chain"],
                              ["backing-file", "backing-refused"])
    return out


RULE_CASES = [
    "backing-file", "backing-file-vmdk", "data-file", "vmdk-create-type",
    "vmdk-extent-file", "dirty", "corrupt", "metadata-data-in-l1",
    "metadata-data-in-l2", "metadata-refblock", "metadata-vmdk",
    "confusion-vhd-footer", "confusion-forced-raw", "confusion-iso",
    "parent-vpc", "parent-vhdx", "backing-refused",
]
CLEAN_CASES = [
    "clean-qcow2", "clean-qcow2-v2", "clean-qcow2-compressed", "clean-raw",
    "clean-monolithicSparse", "clean-streamOptimized", "clean-vpc",
    "clean-vpc-fixed", "clean-vhdx", "clean-empty-qcow2",
]


@pytest.mark.parametrize("case", CLEAN_CASES + RULE_CASES)
def test_safety_verdict(case, safety_images, instar_bin):
    path, args, rules = safety_images[case]
    safe, got = safety(_json(instar_bin, path, *args))
    assert got == rules, got
    assert safe == (not rules)
    # the text output says the same, last
    r = run_info(instar_bin, [*args, path])
    last = r.stdout.decode(errors="replace").rstrip("\n").split("\n")[-1]
    assert last.startswith("instar safety: " + ("unsafe: " if rules
                                                else "safe")), last
    # --check-safe: nothing on stdout; 0, or 1 with one line a reason
    c = run_info(instar_bin, ["--check-safe", *args, path])
    assert c.stdout == b""
    assert c.returncode == (1 if rules else 0), c
    lines = c.stderr.decode(errors="replace").splitlines()
    assert len(lines) == len(rules), lines
    assert all(": not safe: " in l for l in lines), lines


def test_metadata_reasons_name_what_they_found(safety_images, instar_bin):
    msgs = {}
    for case in ("metadata-data-in-l1", "metadata-data-in-l2",
                 "metadata-refblock", "metadata-vmdk"):
        path, args, _ = safety_images[case]
        j = _json(instar_bin, path, *args)
        msgs[case] = j["instar-safety"]["reasons"][0]["message"]
    assert "lies inside the L1 table at offset 4096" in \
        msgs["metadata-data-in-l1"]
    assert "L2 table" in msgs["metadata-data-in-l2"]
    assert "refcount block offset 1099511627776 is past the end of the " \
        "file" in msgs["metadata-refblock"]
    assert "lies inside the grain table" in msgs["metadata-vmdk"]


def test_refused_backing_ends_the_chain(safety_images, instar_bin,
                                        qemu_img):
    path, args, _ = safety_images["backing-refused"]
    j = _json(instar_bin, path, *args)
    assert isinstance(j, list) and len(j) == 1, j
    assert j[0]["backing-filename"] == "../clean.qcow2"
    msg = j[0]["instar-safety"]["reasons"][1]["message"]
    assert "refused by the host" in msg and "not followed" in msg, msg
    # with the directory allowed, the chain is followed as qemu follows it
    compare(qemu_img, instar_bin, path, ["--backing-chain"],
            instar_args=["--backing-dir",
                         os.path.dirname(os.path.dirname(path))])


def test_refused_images_are_not_safe(instar_bin, tmp_path):
    """What the readers refuse (an unknown incompatible feature, a vhdx log
    to replay) fails info as it fails dd: --check-safe exits 1 too."""
    img = malformed_qcow2.Image()
    img.be64(72, 1 << 9)
    p = tmp_path / "unknown.qcow2"
    p.write_bytes(img.bytes())
    r = run_info(instar_bin, ["--check-safe", str(p)])
    assert r.returncode == 1
    assert b"incompatible feature bits 0x200 not supported" in r.stderr


def test_huge_images_are_checked_quickly(images, qemu_img, instar_bin,
                                         tmp_path):
    """The metadata check walks tables, not data: a 5 GiB image and a
    64 TiB empty one take moments."""
    p = str(tmp_path / "huge.qcow2")
    _run(qemu_img, "convert", "-f", "raw", "-O", "qcow2", images["huge"], p)
    e = str(tmp_path / "empty.qcow2")
    _run(qemu_img, "create", "-f", "qcow2", e, "64T")
    for path in (p, e):
        r = run_info(instar_bin, ["--check-safe", path])
        assert r.returncode == 0, r.stderr


# --- malformed images: info fails as dd fails -------------------------------

def _dd_message(instar_bin, path, args, tmp_path):
    out = str(tmp_path / "out.raw")
    r = run_dd(instar_bin, [*args, f"if={path}", f"of={out}"], out,
               timeout=20)
    assert r.rc == 1, r
    return r.stderr


# Cases info does not fail: files an image refers to are not opened
# without --backing-chain (a reason instead), and data is not read.
QCOW2_NOT_OPENED = {"data-file-escape": "data-file",
                    "backing-parent-dir": "backing-file",
                    "backing-absolute": "backing-file",
                    "backing-missing": "backing-file",
                    "backing-self": "backing-file",
                    "backing-json": "backing-file",
                    "backing-corrupt": "backing-file",
                    "backing-loop": "backing-file",
                    "backing-too-deep": "backing-file"}
QCOW2_DATA = {"compressed-garbage"}


@pytest.mark.parametrize("case", malformed_qcow2.cases(),
                         ids=[c[0] for c in malformed_qcow2.cases()])
def test_malformed_qcow2(case, instar_bin, tmp_path):
    path, args = malformed_qcow2.write_case(str(tmp_path), case)
    _malformed(instar_bin, path, args, tmp_path, case[0] in QCOW2_DATA,
               QCOW2_NOT_OPENED.get(case[0]))


@pytest.mark.parametrize("name", sorted(n for n, r in QCOW2_NOT_OPENED.items()
                                         if r == "backing-file"))
def test_malformed_qcow2_chain(name, instar_bin, tmp_path):
    """--backing-chain opens what the image names through the host policy:
    a refused file ends the chain with a reason; a backing file that is
    itself corrupt fails as dd fails."""
    case = next(c for c in malformed_qcow2.cases() if c[0] == name)
    path, args = malformed_qcow2.write_case(str(tmp_path), case)
    i = run_info(instar_bin, ["--output=json", "--backing-chain", *args, path])
    if name == "backing-corrupt":
        assert i.returncode == 1
        assert i.stderr.decode() == _dd_message(instar_bin, path, args,
                                                tmp_path)
        return
    assert i.returncode == 0, i.stderr
    chain = json.loads(i.stdout)
    # a loop ends where the host refuses an ancestor, a deep chain at the
    # host's depth limit (16 below the input)
    assert len(chain) == {"backing-loop": 2, "backing-too-deep": 17}.get(
        name, 1), len(chain)
    rules = [r["rule"] for r in chain[-1]["instar-safety"]["reasons"]]
    assert rules[-1] == "backing-refused", rules


def _malformed(instar_bin, path, args, tmp_path, data_only, not_opened):
    before = sorted(os.listdir(tmp_path))
    i = run_info(instar_bin, [*args, path])
    assert sorted(os.listdir(tmp_path)) == before, "info wrote a file"
    if not_opened:
        assert i.returncode == 0, i.stderr
        assert not_opened in i.stdout.decode(errors="replace") or \
            not_opened.replace("-", " ") in i.stdout.decode(
                errors="replace"), i.stdout
        return
    if data_only:
        assert i.returncode == 0, i.stderr
        return
    dd = _dd_message(instar_bin, path, args, tmp_path)
    assert i.returncode == 1, (i.stdout, dd)
    assert i.stdout == b""
    assert i.stderr.decode() == dd, (i.stderr, dd)


VMDK_NOT_OPENED = {"parent-escape-dotdot", "parent-escape-abs",
                   "parent-missing", "parent-self", "cycle-a", "cycle-b",
                   "parent-not-vmdk"}
VMDK_DATA = {"compressed-garbage", "compressed-size-huge"}


def test_malformed_vmdk(instar_bin, tmp_path, images):
    d = tmp_path / "vmdk"
    d.mkdir()
    shutil.copy(images["mid"], d / "flat.bin")
    shutil.copy(images["mid"], d / "base.vmdk")
    for name, path, _ in malformed_vmdk.cases(str(d / "cases")):
        i = run_info(instar_bin, [path])
        if name in VMDK_DATA:
            assert i.returncode == 0, (name, i.stderr)
            continue
        if name in VMDK_NOT_OPENED:
            assert i.returncode == 0, (name, i.stderr)
            assert b"instar safety: unsafe: backing file" in i.stdout
            continue
        dd = _dd_message(instar_bin, path, [], tmp_path)
        assert i.returncode == 1, (name, i.stdout)
        assert i.stderr.decode() == dd, (name, i.stderr, dd)


def test_malformed_vpc(instar_bin, tmp_path):
    cases = malformed_vpc.make_all(str(tmp_path / "vpc"))
    for name, (path, extra) in sorted(cases.items()):
        i = run_info(instar_bin, [*extra, path])
        if i.returncode == 0:
            # only a parent info does not open
            assert b"parent image" in i.stdout, (name, i.stdout)
            continue
        dd = _dd_message(instar_bin, path, extra, tmp_path)
        assert i.stderr.decode() == dd, (name, i.stderr, dd)


def test_malformed_vhdx(instar_bin, tmp_path):
    paths = malformed_vhdx.write_malformed(str(tmp_path / "vhdx"))
    for name, path in sorted(paths.items()):
        i = run_info(instar_bin, [path])
        if i.returncode == 0:
            assert b"parent image" in i.stdout, (name, i.stdout)
            continue
        dd = _dd_message(instar_bin, path, [], tmp_path)
        assert i.stderr.decode() == dd, (name, i.stderr, dd)


# --- what info opens ---------------------------------------------------------

def test_nothing_referenced_is_opened(instar_bin, tmp_path):
    """Without --backing-chain the host is never asked for a file: a
    backing file and a data file named by the image stay unopened (their
    names are reported), even inside the allowed directory."""
    strace = shutil.which("strace")
    if not strace:
        pytest.skip("strace not installed")
    img = malformed_qcow2.Image()
    img.be64(72, 4)
    img.ext(malformed_qcow2.EXT_DATA_FILE, b"secret-data.raw")
    img.backing("secret-backing.raw", "raw")
    p = tmp_path / "refs.qcow2"
    p.write_bytes(img.bytes())
    (tmp_path / "secret-backing.raw").write_bytes(b"b" * 4096)
    (tmp_path / "secret-data.raw").write_bytes(b"d" * 4096)
    log = tmp_path / "trace"
    r = subprocess.run([strace, "-f", "-o", str(log), "-e",
                        "trace=open,openat,openat2", instar_bin, "info",
                        "--output=json", str(p)], capture_output=True)
    trace = log.read_text()
    log.unlink()
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["backing-filename"] == "secret-backing.raw"
    assert j["format-specific"]["data"]["data-file"] == "secret-data.raw"
    assert "secret" not in trace, trace


# --- VHD and VHDX parents (qemu 7.2 does not report them) ------------------

@pytest.mark.divergence
def test_vhd_parent_reported_where_qemu_reports_none(safety_images,
                                                     instar_bin, qemu_img):
    path, _, _ = safety_images["parent-vpc"]
    q = json.loads(run_info(qemu_img, ["--output=json", path]).stdout)
    i = _json(instar_bin, path)
    assert "backing-filename" not in q
    assert i["backing-filename"] == "./base.vpc"
    assert i["backing-filename-format"] == "vpc"
    assert i["full-backing-filename"] == os.path.join(os.path.dirname(path),
                                                      "./base.vpc")
    # everything else as qemu says it
    for k in q:
        assert i[k] == q[k], k
    chain = _json(instar_bin, path, "--backing-chain")
    assert [c["format"] for c in chain] == ["vpc", "vpc"]
    assert chain[1]["filename"].endswith("/./base.vpc")


@pytest.mark.divergence
def test_vhdx_parent_reported_where_qemu_cannot_open(safety_images,
                                                     instar_bin, qemu_img):
    path, _, _ = safety_images["parent-vhdx"]
    assert run_info(qemu_img, [path]).returncode == 1
    i = _json(instar_bin, path)
    assert i["backing-filename"] == "./clean.vhdx"
    chain = _json(instar_bin, path, "--backing-chain")
    assert [c["format"] for c in chain] == ["vhdx", "vhdx"]
    assert chain[1]["instar-safety"]["safe"] is True


# --- internal snapshots and bitmaps (qcow2) ---------------------------------

def _snapshot_entry(l1_off, l1_size, sid, name, sec, nsec, clock, state,
                    extra=b""):
    e = struct.pack(">QIHHIIQII", l1_off, l1_size, len(sid), len(name), sec,
                    nsec, clock, state, len(extra)) + extra + sid + name
    return e + bytes(-len(e) % 8)


def test_snapshot_table_like_qemu(qemu_img, instar_bin, tmp_path):
    """Snapshots qemu-img cannot make: long IDs and names, no extra data
    (no icount, the 32-bit VM state size), a VM clock of days; and the
    extra data of qemu 7.2 (64-bit VM state size, icount)."""
    p = str(tmp_path / "snap.qcow2")
    _run(qemu_img, "create", "-f", "qcow2", p, "1M")
    with open(p, "r+b") as f:
        head = f.read(104)
        l1_off = struct.unpack(">Q", head[40:48])[0]
        l1_size = struct.unpack(">I", head[36:40])[0]
        f.seek(0, os.SEEK_END)
        at = (f.tell() + 65535) // 65536 * 65536
        table = b"".join([
            _snapshot_entry(l1_off, l1_size, b"1234567890123",
                            b"a name of more than sixteen bytes", 1700000000,
                            5, 100 * 3600 * 10**9 + 7 * 10**6, 5 << 20),
            _snapshot_entry(l1_off, l1_size, b"7", b"", 0, 999999999, 0, 0,
                            struct.pack(">QQQ", 3 << 30, 1 << 20, 42)),
            _snapshot_entry(l1_off, l1_size, b"x" * 9, b"y" * 16, 86399, 0,
                            59 * 10**9 + 999 * 10**6, 1000),
        ])
        f.seek(at)
        f.write(table + bytes(-len(table) % 65536))
        f.seek(60)
        f.write(struct.pack(">IQ", 3, at))
    j = compare(qemu_img, instar_bin, p)
    assert [s["id"] for s in j["snapshots"]] == ["1234567890123", "7",
                                                 "x" * 9]


def test_bitmaps_like_qemu(qemu_img, instar_bin, tmp_path):
    p = str(tmp_path / "bm.qcow2")
    _run(qemu_img, "create", "-f", "qcow2", p, "10M")
    _run(qemu_img, "bitmap", "--add", p, "b0")
    _run(qemu_img, "bitmap", "--add", "-g", "128k", "--disable", p, "b1")
    _run(qemu_img, "bitmap", "--add", "-g", "1M", p, "third")
    compare(qemu_img, instar_bin, p)


def test_snapshot_table_past_the_end_like_qemu(qemu_img, instar_bin,
                                               tmp_path):
    """qemu reads a snapshot table past the end of the file as zeros and
    lists a snapshot of zeros; so does instar, and says it is unsafe."""
    p = str(tmp_path / "s.qcow2")
    _run(qemu_img, "create", "-f", "qcow2", p, "1M")
    with open(p, "r+b") as f:
        f.seek(60)
        f.write(struct.pack(">IQ", 1, 1 << 30))
    j = compare(qemu_img, instar_bin, p)
    assert safety(j) == (False, ["metadata"])
    assert "snapshot table at offset 1073741824" in \
        j["instar-safety"]["reasons"][0]["message"]


def test_bitmap_directory_qemu_refuses(qemu_img, instar_bin, tmp_path):
    p = str(tmp_path / "b.qcow2")
    _run(qemu_img, "create", "-f", "qcow2", p, "1M")
    _run(qemu_img, "bitmap", "--add", p, "b0")
    with open(p, "r+b") as f:
        d = f.read(65536)
        i = d.find(bytes.fromhex("23852875"))
        f.seek(i + 8 + 16)
        f.write(struct.pack(">Q", 1 << 30))    # the directory: far away
    assert run_info(qemu_img, [p]).returncode == 1
    r = run_info(instar_bin, [p])
    assert r.returncode == 1
    assert b"bitmap directory entry 0 at offset 1073741824 does not satisfy"\
        in r.stderr, r.stderr
