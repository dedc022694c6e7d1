"""instar dd -p (instar's own option): progress on stderr, in qemu-img
convert -p's format; stdout, the exit status and the output's bytes are
what they are without -p (and what qemu-img dd writes)."""
import os
import re

import pytest

from conftest import run_dd

LINE = re.compile(r"    \((\d+)\.(\d\d)/100%\)\r")


def progress_of(stderr):
    """The percentages shown, in hundredths; the text left over."""
    shown = [int(a) * 100 + int(b) for a, b in LINE.findall(stderr)]
    return shown, LINE.sub("", stderr)


@pytest.fixture
def big_input(tmp_path):
    path = str(tmp_path / "in.raw")
    with open(path, "wb") as f:
        for i in range(48):
            f.write(bytes([i + 1]) * (1 << 20))
    return path


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_progress_on_stderr_only(instar_bin, qemu_img, big_input, tmp_path,
                                 fmt):
    args = ["-O", fmt, "if=" + big_input, "bs=64k", "skip=3"]
    with_p = run_dd(instar_bin, ["-p"] + args + ["of=" + str(tmp_path / "p")],
                    str(tmp_path / "p"))
    without = run_dd(instar_bin, args + ["of=" + str(tmp_path / "n")],
                     str(tmp_path / "n"))
    qemu = run_dd(qemu_img, args + ["of=" + str(tmp_path / "q")],
                  str(tmp_path / "q"))
    assert with_p.rc == without.rc == qemu.rc == 0, with_p
    assert with_p.stdout == without.stdout == ""
    shown, rest = progress_of(with_p.stderr)
    assert shown[0] == 0 and shown[-1] == 10000, with_p.stderr
    assert shown == sorted(shown), "progress never goes back"
    assert rest == "\n", "nothing on stderr but progress and its newline"
    assert without.stderr == ""
    assert with_p.out == without.out
    if fmt == "raw":
        assert with_p.out == qemu.out


def test_progress_keeps_notices_and_errors(instar_bin, big_input, tmp_path):
    # skip past the end: the notice, an empty output, exit 0
    out = str(tmp_path / "o")
    r = run_dd(instar_bin, ["-p", "if=" + big_input, "of=" + out,
                            "bs=1M", "skip=100"], out)
    assert r.rc == 0 and r.out == b"" and r.stdout == ""
    _, rest = progress_of(r.stderr)
    plain = run_dd(instar_bin, ["if=" + big_input, "of=" + out,
                                "bs=1M", "skip=100"], out)
    assert rest.strip() == plain.stderr.strip()
    # a failure still fails, with its message and no output
    missing = str(tmp_path / "missing")
    f = run_dd(instar_bin, ["-p", "if=" + missing, "of=" + out + "2"],
               out + "2")
    assert f.rc == 1 and not f.out_exists and f.stdout == ""
    assert "missing" in f.stderr
