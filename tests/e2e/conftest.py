"""Shared fixtures for the instar e2e tests.

Environment:
  INSTAR_BIN  the instar binary to test (default: <repo>/build/instar).
              For harness development a shim `exec qemu-img "$@"` works.
  QEMU_IMG    the reference qemu-img (default: qemu-img on PATH).
  CI          when "true", missing /dev/kvm, instar or qemu-img FAIL the
              tests instead of skipping them.
"""
import os
import shutil
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "gen"))
sys.path.insert(0, HERE)

import images as gen_images  # noqa: E402

IN_CI = os.environ.get("CI") == "true"
RUN_TIMEOUT = 120  # seconds for any single dd run


def skip_or_fail(message):
    """Missing prerequisites skip locally but fail in CI."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: not skipping)", pytrace=False)
    pytest.skip(message)


def kvm_problem():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"/dev/kvm cannot be opened read-write: {e}"
    os.close(fd)
    return None


@pytest.fixture(scope="session")
def instar_bin():
    """Path of instar; skips (fails in CI) without it or without /dev/kvm."""
    path = os.environ.get("INSTAR_BIN") or os.path.join(REPO, "build", "instar")
    problem = kvm_problem()
    if problem:
        skip_or_fail(f"instar needs KVM: {problem}")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        skip_or_fail(f"instar binary {path} not found (build it, or set INSTAR_BIN)")
    return os.path.abspath(path)


def find_qemu_img():
    path = os.environ.get("QEMU_IMG") or shutil.which("qemu-img")
    return path if path and os.access(path, os.X_OK) else None


@pytest.fixture(scope="session")
def qemu_img():
    path = find_qemu_img()
    if not path:
        skip_or_fail("qemu-img not installed (apt-get install qemu-utils)")
    return path


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    """name -> path of the generated patterned raw inputs (tests/gen/images.py)."""
    d = tmp_path_factory.mktemp("images")
    return gen_images.make_all(str(d))


class Result:
    def __init__(self, argv, proc, out_path, elapsed):
        self.argv = argv
        self.rc = proc.returncode
        self.stdout = proc.stdout.decode(errors="replace")
        self.stderr = proc.stderr.decode(errors="replace")
        self.out_path = out_path
        self.elapsed = elapsed
        self.out_exists = out_path is not None and os.path.lexists(out_path)
        self.out = None
        if self.out_exists and os.path.isfile(out_path):
            with open(out_path, "rb") as f:
                self.out = f.read()

    def __repr__(self):
        return (f"<rc={self.rc} argv={self.argv} stderr={self.stderr!r} "
                f"out={'none' if self.out is None else len(self.out)}>")


def run_dd(program, args, out_path=None, cwd=None, timeout=RUN_TIMEOUT,
           preexec_fn=None):
    """Run `program dd ARGS...`; returns a Result (output read back if
    out_path names a regular file afterwards). preexec_fn runs in the child
    before the exec (e.g. to set resource limits)."""
    argv = [program, "dd"] + list(args)
    t0 = time.monotonic()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=cwd, timeout=timeout,
                          preexec_fn=preexec_fn)
    return Result(argv, proc, out_path, time.monotonic() - t0)


def strip_prefix(message):
    """Drop the program prefix (`instar: ` / `qemu-img: `) of each line."""
    lines = []
    for line in message.splitlines():
        for p in ("instar: ", "qemu-img: "):
            if line.startswith(p):
                line = line[len(p):]
                break
        lines.append(line)
    return "\n".join(lines)


def read_range(path, start, end):
    """Bytes [start, end) of the input as a virtual disk: past EOF it reads
    zeros, as qemu's rounding of the size up to 512 does."""
    n = max(0, end - start)
    with open(path, "rb") as f:
        data = os.pread(f.fileno(), n, start)
    return data + bytes(n - len(data))


def image_as_raw(qemu_img, path, fmt, dest):
    """The image's data, as `qemu-img convert -O raw` gives it (dest is a
    scratch file, removed)."""
    subprocess.run([qemu_img, "convert", "-f", fmt, "-O", "raw", path, dest],
                   check=True, capture_output=True)
    with open(dest, "rb") as f:
        data = f.read()
    os.unlink(dest)
    return data


def listing(directory):
    return sorted(os.listdir(directory))


@pytest.fixture
def dirs(tmp_path):
    """Separate, initially empty output directories for qemu-img and instar."""
    q = tmp_path / "qemu"
    i = tmp_path / "instar"
    q.mkdir()
    i.mkdir()
    return str(q), str(i)
