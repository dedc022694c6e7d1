"""The kernel data path: plain input ranges are copied by the host kernel
(copy_file_range), straight from the input file into the output.

- On a file system that shares extents (XFS with reflink) a raw copy is a
  metadata operation: no data is written, the output shares the input's
  extents.
- Where the kernel cannot copy (input and output on different file
  systems), the guest's own path takes over and the bytes are the same.

Both need root (a loop device, mounts in a private mount namespace) and
skip without it. The rest of the suite runs twice in scripts/test.sh: once
with the copy path, once with INSTAR_NO_KERNEL_COPY=1.
"""
import os
import shutil
import subprocess

import pytest

from conftest import run_dd

MiB = 1 << 20


def _need_root_namespace():
    if os.geteuid() != 0:
        pytest.skip("needs root (loop devices and mounts)")
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) not installed")
    r = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"unshare -m does not work here: {r.stderr!r}")


def _in_namespace(script):
    return subprocess.run(["unshare", "-m", "--propagation", "private",
                           "sh", "-ec", script], capture_output=True,
                          timeout=300)


def test_reflink_copy_on_xfs_writes_no_data(instar_bin, qemu_img, tmp_path):
    """1 GiB raw on a reflink-capable XFS: instar's output shares the
    input's extents (the file system's used space barely moves), while
    qemu-img dd writes every byte; both outputs are the same bytes."""
    _need_root_namespace()
    if not shutil.which("mkfs.xfs") or not shutil.which("xfs_io"):
        pytest.skip("xfsprogs not installed")
    img = tmp_path / "xfs.img"
    with open(img, "wb") as f:
        f.truncate(3 << 30)
    mk = subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(img)],
                        capture_output=True)
    if mk.returncode != 0:
        pytest.skip(f"mkfs.xfs: {mk.stderr!r}")
    m = tmp_path / "m"
    m.mkdir()
    # 256 MiB of pattern, shared four times: 1 GiB of data in 256 MiB.
    r = _in_namespace(f"""
mount -o loop {img} {m} || exit 77
xfs_io -f -c "pwrite -q -S 0x5a 0 256m" -c "pwrite -q -S 0xa5 100m 1m" \
    {m}/in.raw
for i in 1 2 3; do
    xfs_io -c "reflink {m}/in.raw 0 $((i * 256))m 256m" {m}/in.raw >/dev/null
done
sync
before=$(df -k --output=used {m} | tail -1)
{instar_bin} dd if={m}/in.raw of={m}/out.raw bs=1M
sync
after=$(df -k --output=used {m} | tail -1)
echo "used_kib_delta=$((after - before))"
{qemu_img} dd if={m}/in.raw of={m}/q.raw bs=1M
cmp {m}/out.raw {m}/q.raw && echo same
umount {m}
""")
    out = r.stdout.decode()
    if r.returncode == 77:
        pytest.skip(f"cannot mount a loop device here: {r.stderr!r}")
    assert r.returncode == 0, r.stderr
    assert "same" in out, out
    delta = int(out.split("used_kib_delta=")[1].split()[0])
    assert delta < 16 * 1024, f"instar's copy used {delta} KiB: no reflink"


def test_copy_across_file_systems_falls_back(instar_bin, qemu_img, images,
                                             tmp_path):
    """Input on a tmpfs, output on the test directory's file system: the
    kernel refuses to copy between them (EXDEV), the guest reads and
    writes instead, and the output is qemu-img's, byte for byte."""
    _need_root_namespace()
    shm = tmp_path / "shm"
    shm.mkdir()
    src = images["multi"]
    r = _in_namespace(f"""
mount -t tmpfs -o size=64m tmpfs {shm}
cp {src} {shm}/in.raw
{instar_bin} dd if={shm}/in.raw of={tmp_path}/i.raw bs=1000 skip=3
{qemu_img} dd if={shm}/in.raw of={tmp_path}/q.raw bs=1000 skip=3
""")
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "i.raw", "rb") as a, open(tmp_path / "q.raw", "rb") as b:
        assert a.read() == b.read()


@pytest.mark.parametrize("fmt", ["qcow2", "vpc", "vmdk"])
def test_plain_clusters_are_copied_not_read(fmt, instar_bin, images,
                                            qemu_img, tmp_path):
    """An uncompressed image's data reaches the output without passing
    through the guest: the same bytes with the copy path on and off."""
    src = tmp_path / f"in.{fmt}"
    subprocess.run([qemu_img, "convert", "-f", "raw", "-O", fmt,
                    images["multi"], str(src)], check=True)
    outs = []
    for no_copy in ("0", "1"):
        out = tmp_path / f"o{no_copy}.raw"
        env = dict(os.environ, INSTAR_NO_KERNEL_COPY=no_copy)
        p = subprocess.run([instar_bin, "dd", f"if={src}", f"of={out}",
                            "bs=4096", "skip=3"], env=env,
                           capture_output=True, timeout=120)
        assert p.returncode == 0, p.stderr
        outs.append(out.read_bytes())
    q = run_dd(qemu_img, [f"if={src}", f"of={tmp_path}/q.raw", "bs=4096",
                          "skip=3"], str(tmp_path / "q.raw"))
    assert outs[0] == outs[1] == q.out
