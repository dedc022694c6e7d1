"""The red-team findings of the hardening issue, one test (or more) each.

Confinement of the files an image refers to, the process tree under
signals, leftovers after SIGKILL, closed standard fds, open-file limits,
long names, dmg, a full disk and the owner of a replaced output. Tests
that need root (mount namespaces, loop devices, chown) skip without it.
"""
import os
import resource
import shutil
import signal
import stat
import subprocess
import time

import pytest

from conftest import listing, run_dd
from test_input_qcow2 import _drop_backing_format

MiB = 1 << 20
IS_ROOT = os.geteuid() == 0
NOT_ALLOWED = "not found or not allowed"


def _run(*argv, cwd=None, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=cwd, **kw)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _padded(path):
    """What dd makes of a raw file: its bytes, zeros up to a multiple of
    512."""
    data = _read(path)
    return data + bytes(-len(data) % 512)


def _overlay(qemu_img, path, backing, backing_fmt="raw", size=4096):
    """A qcow2 naming `backing` (unchecked: it need not exist here)."""
    _run(qemu_img, "create", "-q", "-u", "-f", "qcow2", "-b", backing,
         "-F", backing_fmt, path, str(size))


def _need_root(what):
    if not IS_ROOT:
        pytest.skip(f"{what} needs root")


def _need_mount_namespace():
    _need_root("a private mount namespace")
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) not installed")
    r = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"unshare -m does not work here: {r.stderr!r}")


def _in_namespace(script, cwd=None, stdin=None):
    """Runs a shell script in a private mount namespace (mounts made there
    vanish with it and never reach the machine)."""
    return subprocess.run(["unshare", "-m", "--propagation", "private",
                           "sh", "-ec", script], cwd=cwd, stdin=stdin,
                          capture_output=True, timeout=120)


# ---- 1. the default allowlist ----------------------------------------------

# A secret in a private /dev/shm, and an overlay naming it the way an
# attacker would when the input's directory is /dev.
SHM_SETUP = """
mount -t tmpfs -o size=1m tmpfs /dev/shm
printf 'SECRET!!' > /dev/shm/instar-secret
truncate -s 4096 /dev/shm/instar-secret
"""


def test_stdin_input_cannot_reach_dev_shm(instar_bin, qemu_img, tmp_path):
    _need_mount_namespace()
    _overlay(qemu_img, tmp_path / "ov.qcow2", "shm/instar-secret")
    with open(tmp_path / "ov.qcow2", "rb") as stdin:
        r = _in_namespace(SHM_SETUP + f"""
exec {instar_bin} dd if=/dev/stdin of={tmp_path}/out.raw
""", stdin=stdin)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert NOT_ALLOWED in err and "shm/instar-secret" in err, err
    assert listing(tmp_path) == ["ov.qcow2"]


def test_stdin_input_with_backing_dir_is_explicit(instar_bin, qemu_img,
                                                  tmp_path):
    """The same name is read when the user allows the directory: the
    policy is about defaults, not about what can be asked for."""
    _need_mount_namespace()
    _overlay(qemu_img, tmp_path / "ov.qcow2", "/dev/shm/instar-secret")
    with open(tmp_path / "ov.qcow2", "rb") as stdin:
        r = _in_namespace(SHM_SETUP + f"""
exec {instar_bin} dd --backing-dir /dev/shm if=/dev/stdin \
    of={tmp_path}/out.raw
""", stdin=stdin)
    assert r.returncode == 0, r.stderr
    assert _read(tmp_path / "out.raw")[:8] == b"SECRET!!"


def test_loop_device_input_cannot_reach_dev_shm(instar_bin, qemu_img,
                                                tmp_path):
    _need_mount_namespace()
    if not shutil.which("losetup"):
        pytest.skip("losetup not installed")
    # The overlay padded to whole sectors is what the device shows.
    _overlay(qemu_img, tmp_path / "ov.qcow2", "shm/instar-secret")
    size = os.path.getsize(tmp_path / "ov.qcow2")
    os.truncate(tmp_path / "ov.qcow2", (size + 511) // 512 * 512)
    r = subprocess.run(["losetup", "-f", "--show", "-r",
                        str(tmp_path / "ov.qcow2")], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"no loop device here: {r.stderr!r}")
    dev = r.stdout.decode().strip()
    try:
        r = _in_namespace(SHM_SETUP + f"""
exec {instar_bin} dd if={dev} of={tmp_path}/out.raw
""")
    finally:
        subprocess.run(["losetup", "-d", dev])
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert NOT_ALLOWED in err, err
    assert listing(tmp_path) == ["ov.qcow2"]


def _chroot_script(root, instar_bin, extra=""):
    """Bind-mounts what instar needs into `root` and runs it there with the
    input directly in the chroot's /."""
    binds = "".join(
        f"mkdir -p {root}{d}; mount --bind {d} {root}{d}\n"
        for d in ("/usr", "/dev", "/proc") if os.path.isdir(d))
    links = "".join(
        f"ln -s {os.readlink(d).lstrip('/')} {root}{d}\n"
        if os.path.islink(d) else
        f"mkdir -p {root}{d}; mount --bind {d} {root}{d}\n"
        for d in ("/lib", "/lib64", "/bin") if os.path.exists(d))
    return binds + links + f"""
cp {instar_bin} {root}/instar
exec chroot {root} /instar dd {extra} if=/disk.qcow2 of=/out.raw
"""


@pytest.mark.parametrize("allowed", [False, True], ids=["default", "explicit"])
def test_input_in_the_root_directory(allowed, instar_bin, qemu_img, tmp_path):
    """An input directly in / (a container's mount) must not make the whole
    file system the allowed directory; --backing-dir / still can."""
    _need_mount_namespace()
    if not shutil.which("chroot"):
        pytest.skip("chroot not installed")
    root = tmp_path / "root"
    (root / "secretdir").mkdir(parents=True)
    _write(root / "secretdir" / "s", b"SECRET!!" + bytes(4088))
    _overlay(qemu_img, root / "disk.qcow2", "secretdir/s")
    r = _in_namespace(_chroot_script(root, instar_bin,
                                     "--backing-dir /" if allowed else ""))
    err = r.stderr.decode()
    if allowed:
        assert r.returncode == 0, err
        assert _read(root / "out.raw")[:8] == b"SECRET!!"
    else:
        assert r.returncode == 1, err
        assert NOT_ALLOWED in err, err
        assert not (root / "out.raw").exists()


# ---- 2, 3. signals, the process tree, leftovers -----------------------------

def _children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(d))
    return kids


def _alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _locked_down(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "Seccomp:\t2" in f.read()
    except OSError:
        return False


def _wait_until(cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


KILL_SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                signal.SIGUSR1, signal.SIGALRM, signal.SIGPIPE,
                signal.SIGXFSZ]


@pytest.mark.parametrize("sig", KILL_SIGNALS, ids=[s.name for s in KILL_SIGNALS])
def test_signal_to_parent_ends_the_run_and_leaves_nothing(sig, instar_bin,
                                                          tmp_path):
    """The sandbox dies with its parent, whatever the signal, and neither
    the old output nor any temporary file is disturbed. The sandbox is
    stopped first, so it cannot finish the copy before the parent dies."""
    src = tmp_path / "in.raw"
    with open(src, "wb") as f:
        f.truncate(8 << 30)
    out = tmp_path / "out"
    out.mkdir()
    _write(out / "out.raw", b"old content")
    # The host's kernel copies allocate the holes of a sparse input in
    # milliseconds, before the sandbox is seen locked down; through the
    # guest (the suite's second pass) 8 GiB of zeros take seconds.
    env = dict(os.environ, INSTAR_NO_KERNEL_COPY="1")
    p = subprocess.Popen([instar_bin, "dd", f"if={src}",
                          f"of={out}/out.raw", "bs=1M"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    child = None
    try:
        assert _wait_until(lambda: _children(p.pid), 10), "no sandbox seen"
        child = _children(p.pid)[0]
        # Stopped only once locked down: a child frozen between fork and
        # asking to die with its parent would wait for a SIGCONT forever
        # (unfrozen, it sees its parent gone and quits).
        assert _wait_until(lambda: _locked_down(child), 10)
        os.kill(child, signal.SIGSTOP)
        # While the run goes on, the output has no name in the directory.
        assert listing(out) == ["out.raw"]
        os.kill(p.pid, sig)
        p.wait(timeout=10)
        assert p.returncode == -sig
        assert _wait_until(lambda: not _alive(child), 5), \
            "the sandbox outlived its parent"
        assert listing(out) == ["out.raw"]
        assert _read(out / "out.raw") == b"old content"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)


# ---- 4. closed standard fds --------------------------------------------------

def test_closed_std_fds_keep_notices_out_of_the_output(instar_bin, qemu_img,
                                                       images, tmp_path):
    """With 0-2 closed, the input and output would be opened on them and
    the skip notice written to stderr would land in the output."""
    src = images["small"]
    args = f"if={src} of={tmp_path}/out.raw bs=1M skip=1000"
    r = subprocess.run(["sh", "-c",
                        f"exec {instar_bin} dd {args} 0<&- 1>&- 2>&-"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0
    q = run_dd(qemu_img, [f"if={src}", f"of={tmp_path}/q.raw", "bs=1M",
                          "skip=1000"])
    assert q.rc == 0
    assert _read(tmp_path / "out.raw") == _read(tmp_path / "q.raw") == b""


# ---- 5. open-file limits -------------------------------------------------------

def _limit_nofile(n):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def _qcow2_chain(qemu_img, d, depth):
    """base.raw <- c1.qcow2 <- ... <- c{depth}.qcow2; returns the top."""
    _write(os.path.join(d, "base.raw"), bytes(range(256)) * 16)
    prev, fmt = "base.raw", "raw"
    for i in range(1, depth + 1):
        name = f"c{i}.qcow2"
        _overlay(qemu_img, os.path.join(d, name), prev, fmt)
        prev, fmt = name, "qcow2"
    return os.path.join(d, prev)


def test_low_open_file_limit_still_runs(instar_bin, images, tmp_path):
    """A hard limit far below what the sandbox used to ask for: the run
    lowers it to what it needs instead of failing to raise it."""
    r = subprocess.run([instar_bin, "dd", f"if={images['small']}",
                        f"of={tmp_path}/out.raw"], capture_output=True,
                       preexec_fn=_limit_nofile(64), timeout=60)
    assert r.returncode == 0, r.stderr
    assert _read(tmp_path / "out.raw") == _padded(images["small"])


def test_chain_beyond_the_open_file_limit_says_so(instar_bin, qemu_img,
                                                  tmp_path):
    top = _qcow2_chain(qemu_img, str(tmp_path), 15)
    r = subprocess.run([instar_bin, "dd", f"if={top}",
                        f"of={tmp_path}/out.raw"], capture_output=True,
                       preexec_fn=_limit_nofile(20), timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 1
    assert "too many files referenced" in err and NOT_ALLOWED not in err, err
    assert not (tmp_path / "out.raw").exists()
    # The same chain under the same limit, but short enough, works.
    top = os.path.join(tmp_path, "c3.qcow2")
    r = subprocess.run([instar_bin, "dd", f"if={top}",
                        f"of={tmp_path}/out.raw"], capture_output=True,
                       preexec_fn=_limit_nofile(20), timeout=60)
    assert r.returncode == 0, r.stderr


# ---- 8. long output names ----------------------------------------------------

@pytest.mark.parametrize("length", [240, 241, 250, 255])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_long_output_names(length, existing, instar_bin, qemu_img, images,
                           tmp_path):
    name = "o" * length
    if existing:
        _write(tmp_path / name, b"old")
    i = run_dd(instar_bin, [f"if={images['small']}", f"of={name}"],
               cwd=tmp_path)
    assert i.rc == 0, i.stderr
    q = run_dd(qemu_img, [f"if={images['small']}", "of=q.raw"], cwd=tmp_path)
    assert q.rc == 0
    assert _read(tmp_path / name) == _read(tmp_path / "q.raw")
    assert sorted(listing(tmp_path)) == sorted([name, "q.raw"])


def test_too_long_output_name_fails_before_work(instar_bin, qemu_img, images,
                                                tmp_path):
    name = "o" * 256
    q = run_dd(qemu_img, [f"if={images['small']}", f"of={name}"],
               cwd=tmp_path)
    i = run_dd(instar_bin, [f"if={images['small']}", f"of={name}"],
               cwd=tmp_path)
    assert q.rc == i.rc == 1
    assert i.stderr.rstrip().endswith("File name too long"), i.stderr
    assert listing(tmp_path) == []


def test_message_reason_is_never_cut(instar_bin, images, tmp_path):
    """A 4000-byte path that does not exist: the reason still ends the
    message."""
    deep = "/".join(["d" * 200] * 19) + "/out.raw"
    i = run_dd(instar_bin, [f"if={images['small']}", f"of={deep}"],
               cwd=tmp_path)
    assert i.rc == 1
    assert i.stderr.rstrip().endswith("No such file or directory"), i.stderr


# ---- 9. dmg ---------------------------------------------------------------------

def _koly(data):
    """data with a 512-byte UDIF trailer ("koly") appended."""
    trailer = bytearray(512)
    trailer[0:4] = b"koly"
    trailer[4:8] = (4).to_bytes(4, "big")
    trailer[8:12] = (512).to_bytes(4, "big")
    return data + bytes(trailer)


def test_dmg_name_is_refused_as_qemu_fails(instar_bin, qemu_img, images,
                                           tmp_path):
    shutil.copy(images["small"], tmp_path / "disk.dmg")
    q = run_dd(qemu_img, ["if=disk.dmg", "of=q.raw"], cwd=tmp_path)
    i = run_dd(instar_bin, ["if=disk.dmg", "of=i.raw"], cwd=tmp_path)
    assert q.rc == i.rc == 1
    assert "dmg image: format not supported by instar" in i.stderr, i.stderr
    assert not (tmp_path / "i.raw").exists()


def test_dmg_name_with_f_raw_is_raw(instar_bin, qemu_img, images, tmp_path):
    shutil.copy(images["small"], tmp_path / "disk.dmg")
    q = run_dd(qemu_img, ["-f", "raw", "if=disk.dmg", "of=q.raw"],
               cwd=tmp_path)
    i = run_dd(instar_bin, ["-f", "raw", "if=disk.dmg", "of=i.raw"],
               cwd=tmp_path)
    assert q.rc == i.rc == 0
    assert _read(tmp_path / "i.raw") == _read(tmp_path / "q.raw")


def test_qcow2_named_dmg_is_qcow2(instar_bin, qemu_img, tmp_path):
    _run(qemu_img, "create", "-q", "-f", "qcow2", str(tmp_path / "q.dmg"),
         "1M")
    q = run_dd(qemu_img, ["if=q.dmg", "of=q.raw"], cwd=tmp_path)
    i = run_dd(instar_bin, ["if=q.dmg", "of=i.raw"], cwd=tmp_path)
    assert q.rc == i.rc == 0
    assert _read(tmp_path / "i.raw") == _read(tmp_path / "q.raw")


@pytest.mark.divergence
def test_koly_trailer_is_refused_whatever_the_name(instar_bin, images,
                                                   tmp_path):
    """qemu would read this as raw (it chooses dmg by name only); instar
    refuses a file that carries a DMG trailer rather than copy the
    container."""
    _write(tmp_path / "disk.img", _koly(_read(images["small"])))
    i = run_dd(instar_bin, ["if=disk.img", "of=i.raw"], cwd=tmp_path)
    assert i.rc == 1
    assert "dmg image: format not supported by instar" in i.stderr
    assert not (tmp_path / "i.raw").exists()


def test_backing_file_named_dmg_without_format(instar_bin, qemu_img, images,
                                               tmp_path):
    """A backing file with no recorded format is probed, name included."""
    shutil.copy(images["small"], tmp_path / "base.dmg")
    size = os.path.getsize(tmp_path / "base.dmg")
    _overlay(qemu_img, tmp_path / "ov.qcow2", "base.dmg", size=size)
    _drop_backing_format(tmp_path / "ov.qcow2")
    q = run_dd(qemu_img, ["if=ov.qcow2", "of=q.raw"], cwd=tmp_path)
    i = run_dd(instar_bin, ["if=ov.qcow2", "of=i.raw"], cwd=tmp_path)
    assert q.rc == i.rc == 1, (q, i)
    assert "dmg image: format not supported by instar" in i.stderr, i.stderr


# ---- 13. a full disk -----------------------------------------------------------

# dd fills the output in the kernel; convert's writes are write-behinds,
# whose failure the host reports at the next wait (ABI 10).
@pytest.mark.parametrize("command", [
    "dd if={src} of={out} bs=1M",
    "convert -O raw {src} {out}",
    "convert -O qcow2 {src} {out}",
])
def test_disk_full_names_the_output_and_the_cause(instar_bin, qemu_img,
                                                  images, tmp_path, command):
    _need_mount_namespace()
    src = tmp_path / "in.raw"
    _write(src, bytes(range(256)) * (12 * MiB // 256))
    mnt = tmp_path / "small"
    mnt.mkdir()
    run = command.format(src=src, out=f"{mnt}/out.raw")
    r = _in_namespace(f"""
mount -t tmpfs -o size=1m tmpfs {mnt}
set +e
{instar_bin} {run}
echo "rc=$?" >&2
ls -A {mnt} >&2
""")
    err = r.stderr.decode()
    assert "rc=1" in err, err
    assert (f"error while writing to output image file '{mnt}/out.raw': "
            "No space left on device") in err, err
    assert "out.raw" not in err.split("rc=1", 1)[1], "output left behind"


# ---- 14. owner and mode of a replaced output ------------------------------------

def test_replaced_output_keeps_owner_and_drops_set_id(instar_bin, images,
                                                      tmp_path):
    _need_root("chown to another user")
    out = tmp_path / "out.raw"
    _write(out, b"old")
    os.chown(out, 1234, 1235)
    os.chmod(out, 0o6755)
    i = run_dd(instar_bin, [f"if={images['small']}", f"of={out}"])
    assert i.rc == 0, i.stderr
    st = os.stat(out)
    assert (st.st_uid, st.st_gid) == (1234, 1235)
    assert stat.S_IMODE(st.st_mode) == 0o755


def test_hard_link_keeps_the_old_data(instar_bin, images, tmp_path):
    """A documented divergence: the output is a new file, so a hard link to
    the old one keeps the old bytes (qemu rewrites in place)."""
    out = tmp_path / "out.raw"
    _write(out, b"old")
    os.link(out, tmp_path / "link.raw")
    i = run_dd(instar_bin, [f"if={images['small']}", f"of={out}"])
    assert i.rc == 0
    assert _read(tmp_path / "link.raw") == b"old"
    assert _read(out) == _padded(images["small"])
