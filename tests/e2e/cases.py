"""The raw-to-raw window matrix shared by test_dd_raw.py, test_baselines.py
and tests/gen/record_baselines.py.

A case is (input name, argv template). In the template `@IN` and `@OUT` stand
for the input and output paths; everything else is passed as is.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "gen"))

import images  # noqa: E402
from qemu_model import INT64_MAX, BS_MAX, round_up, window  # noqa: E402

# qemu-img dd does one read and one write per block (~20 us each here), so
# bound the blocks a live comparison may copy: keeps the suite fast.
MAX_BLOCKS = 12000

BS_VALUES = [("1", 1), ("3", 3), ("512", 512), ("1000", 1000),
             ("4096", 4096), ("65536", 65536), ("1M", 1 << 20),
             ("2147483647", BS_MAX)]
MATRIX_INPUTS = ["empty", "tiny", "small", "mid", "multi"]


class Case:
    def __init__(self, input_name, template, case_id=None):
        self.input = input_name
        self.template = list(template)
        self.id = case_id or make_id(input_name, template)

    def argv(self, in_path, out_path):
        return [a.replace("@IN", in_path).replace("@OUT", out_path)
                for a in self.template]

    def operands(self):
        """The bs/count/skip operands, for the model."""
        return [a for a in self.template if "@" not in a and "=" in a]

    def __repr__(self):
        return f"Case({self.id})"


def make_id(input_name, template):
    t = list(template)
    if t[:2] == ["if=@IN", "of=@OUT"]:
        t = t[2:]
    parts = [input_name]
    for a in t:
        a = a.replace("@IN", "").replace("@OUT", "")
        parts.append(a.replace("=", "").replace(" ", "_") or "EMPTY")
    return "-".join(parts)


def _combos(size, bs):
    """(count, skip) pairs; None = operand absent."""
    vsize = round_up(size)
    end_blocks = -(-vsize // bs)  # blocks to cover the (rounded) input
    full = vsize // bs            # whole blocks inside it
    out = [
        (None, None), (0, None), (1, None), (3, None),
        (end_blocks, None), (max(end_blocks - 1, 0), None), (end_blocks + 1, None),
        (None, 1), (None, 3), (None, full), (None, end_blocks),
        (None, end_blocks + 1), (None, end_blocks + 7),
        (5, 2), (9, 3), (2, 5), (1, 1), (end_blocks, max(end_blocks - 1, 0)),
        (INT64_MAX, None), (None, INT64_MAX), (INT64_MAX, 1),
    ]
    if bs > 1:
        over = INT64_MAX // bs + 1          # count*bs > INT64_MAX
        out += [(over, None), (None, over), (over, 1)]
        wrap = (1 << 64) // bs + 1          # count*bs wraps to a small number
        if wrap <= INT64_MAX:
            out += [(wrap, None), (None, wrap), (wrap, 1)]
    seen, result = set(), []
    for c in out:
        if c not in seen:
            seen.add(c)
            result.append(c)
    return result


def _template(bs_text, count, skip):
    t = ["if=@IN", "of=@OUT", f"bs={bs_text}"]
    if count is not None:
        t.append(f"count={count}")
    if skip is not None:
        t.append(f"skip={skip}")
    return t


def matrix_cases():
    cases = []
    for name in MATRIX_INPUTS:
        size = images.IMAGES[name][0]
        for bs_text, bs in BS_VALUES:
            if name == "empty" and bs not in (1, 512, BS_MAX):
                continue
            for count, skip in _combos(size, bs):
                w = window(size, bs, count, skip)
                if w.length // bs > MAX_BLOCKS:
                    continue
                cases.append(Case(name, _template(bs_text, count, skip)))
    return cases


# Windows across the 2 GiB and 4 GiB boundaries of the sparse 5 GiB image,
# and at its end. All produce small outputs.
HUGE_WINDOWS = [
    ["bs=1", "skip=4294967295", "count=4294967297"],
    ["bs=1", "skip=2147483647", "count=2147483649"],
    ["bs=3", "skip=1431655765", "count=1431655766"],
    ["bs=512", "skip=8388607", "count=8388609"],
    ["bs=512", "skip=4194303", "count=4194305"],
    ["bs=1000", "skip=4294967", "count=4294968"],
    ["bs=4096", "skip=1048575", "count=1048577"],
    ["bs=4096", "skip=524287", "count=524289"],
    ["bs=65536", "skip=32767", "count=32769"],
    ["bs=65536", "skip=65535", "count=65537"],
    ["bs=1M", "skip=2047", "count=2049"],
    ["bs=1M", "skip=4095", "count=4097"],
    ["bs=1M", "skip=5119"],
    ["bs=1M", "skip=5120"],
    ["bs=1M", "skip=5121"],
    ["bs=1G", "skip=6"],
    ["bs=1", "skip=5368709119"],
    ["bs=1", "count=1000", "skip=2147483000"],  # skip past count: empty
    ["bs=1", "count=2147484000", "skip=2147483000"],
    ["bs=2147483647", "skip=2", "count=2"],   # skip*bs == size: empty, silent
    ["bs=2147483647", "skip=3"],              # past the end
    ["bs=1k", "skip=36028797018963968"],
    ["bs=1", "count=513", "skip=4294967040"],
]


def huge_cases():
    return [Case("huge", ["if=@IN", "of=@OUT"] + w) for w in HUGE_WINDOWS]


# Successful rows of parity.md (operand syntax, repeats, option placement),
# raw to raw. Templates are complete argument lists.
PARITY_ROWS = [
    ("small", ["if=@IN", "of=@OUT", "bs=1"]),
    ("small", ["if=@IN", "of=@OUT", "bs=3"]),
    ("small", ["if=@IN", "of=@OUT", "bs=2147483647"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1k"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1K"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1M"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1G"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1b", "count=600"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1B", "count=600"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1.5k"]),
    ("small", ["if=@IN", "of=@OUT", "bs=0.5k"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1.k"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1.0"]),
    ("small", ["if=@IN", "of=@OUT", "bs=0x200"]),
    ("small", ["if=@IN", "of=@OUT", "bs=0x1k"]),   # qemu warns (deprecated)
    ("small", ["if=@IN", "of=@OUT", "bs=+512"]),
    ("small", ["if=@IN", "of=@OUT", "bs= 512"]),
    ("small", ["if=@IN", "of=@OUT", "bs=007"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1.5k", "count=2", "skip=1"]),
    ("mid", ["if=@IN", "of=@OUT", "count=0"]),
    ("mid", ["if=@IN", "of=@OUT", "count=1"]),
    ("mid", ["if=@IN", "of=@OUT", "bs=1", "count=1k"]),
    ("mid", ["if=@IN", "of=@OUT", "bs=1", "count=0.5k"]),
    ("mid", ["if=@IN", "of=@OUT", "count=100000"]),
    ("mid", ["if=@IN", "of=@OUT", "count=9223372036854775807"]),
    ("mid", ["if=@IN", "of=@OUT", "count=7E"]),
    ("mid", ["if=@IN", "of=@OUT", "bs=1k", "count=36028797018963968"]),
    ("mid", ["if=@IN", "of=@OUT", "bs=64k", "count=0x11", "skip=0x3"]),
    ("small", ["if=@IN", "of=@OUT", "skip=1"]),
    ("small", ["if=@IN", "of=@OUT", "bs=512", "skip=6"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1000", "skip=3"]),
    ("small", ["if=@IN", "of=@OUT", "bs=512", "skip=7"]),
    ("small", ["if=@IN", "of=@OUT", "skip=9223372036854775807"]),
    ("small", ["if=@IN", "of=@OUT", "skip=1E"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1k", "skip=36028797018963968"]),
    ("small", ["if=@IN", "of=@OUT", "bs=512", "skip=2", "count=5"]),
    ("small", ["if=@IN", "of=@OUT", "bs=512", "skip=5", "count=5"]),
    ("small", ["if=@IN", "of=@OUT", "bs=512", "skip=5", "count=2"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1000", "skip=2", "count=1"]),
    ("small", ["if=@IN", "of=@OUT", "count=9", "skip=3", "bs=700"]),
    ("small", ["if=@IN", "of=@OUT", "bs=3", "count=100"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1000", "skip=1", "count=3"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1000", "skip=4"]),
    ("small", ["if=@IN", "of=@OUT", "bs=1", "bs=1k", "count=1"]),
    ("small", ["count=3", "bs=1000", "of=@OUT", "if=@IN"]),
    ("small", ["--", "if=@IN", "of=@OUT"]),
    ("small", ["if=@IN", "of=@OUT", "-O", "raw"]),
    ("small", ["-O", "raw", "if=@IN", "of=@OUT"]),
    ("small", ["-O", "qcow2", "-O", "raw", "if=@IN", "of=@OUT"]),
    ("small", ["-f", "raw", "if=@IN", "of=@OUT"]),
    ("small", ["-f", "raw", "-O", "raw", "if=@IN", "of=@OUT", "bs=1k", "skip=1"]),
    ("small", ["-U", "if=@IN", "of=@OUT"]),
    ("empty", ["if=@IN", "of=@OUT"]),
    ("empty", ["if=@IN", "of=@OUT", "skip=1"]),
    ("tiny", ["if=@IN", "of=@OUT"]),
    ("multi", ["if=@IN", "of=@OUT", "bs=1M"]),
    ("multi", ["if=@IN", "of=@OUT", "bs=4194816", "count=1"]),
    ("multi", ["if=@IN", "of=@OUT", "bs=34817", "count=3", "skip=1"]),
]


def parity_cases():
    return [Case(name, t, "parity-" + make_id(name, t)) for name, t in PARITY_ROWS]


def all_cases():
    out, seen = [], set()
    for c in parity_cases() + huge_cases() + matrix_cases():
        key = (c.input, tuple(c.template))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def baseline_cases():
    """The fixed subset recorded in baselines/: every parity row and huge
    window, and the matrix for three inputs and four block sizes."""
    keep_bs = {"bs=1", "bs=512", "bs=1000", "bs=1M", "bs=2147483647"}
    return [c for c in all_cases()
            if not c.id.startswith(tuple(MATRIX_INPUTS))
            or (c.input in ("tiny", "small", "mid")
                and keep_bs & set(c.template))]


# (id, input name, argv template, substring instar's message must contain)
# @IN input, @OUT output, @MISSING a missing input, @NODIR an output in a
# missing directory, @DIR an existing directory.
ERROR_ROWS = [
    # operand values (parity.md rows 11, 12)
    ("bs0", "small", ["if=@IN", "of=@OUT", "bs=0"], "bs"),
    ("bs2147483648", "small", ["if=@IN", "of=@OUT", "bs=2147483648"], "bs"),
    ("bs2G", "small", ["if=@IN", "of=@OUT", "bs=2G"], "bs"),
    ("bs1T", "small", ["if=@IN", "of=@OUT", "bs=1T"], "bs"),
    ("bs.5k", "small", ["if=@IN", "of=@OUT", "bs=.5k"], "bs"),
    ("bs1.5", "small", ["if=@IN", "of=@OUT", "bs=1.5"], "bs"),
    ("bs512-trailing-space", "small", ["if=@IN", "of=@OUT", "bs=512 "], "bs"),
    ("bs12x", "small", ["if=@IN", "of=@OUT", "bs=12x"], "bs"),
    ("bs-empty", "small", ["if=@IN", "of=@OUT", "bs="], "bs"),
    ("bs1kB", "small", ["if=@IN", "of=@OUT", "bs=1kB"], "bs"),
    ("bs1KiB", "small", ["if=@IN", "of=@OUT", "bs=1KiB"], "bs"),
    ("bs1e3", "small", ["if=@IN", "of=@OUT", "bs=1e3"], "bs"),
    ("bs-1", "small", ["if=@IN", "of=@OUT", "bs=-1"], "bs"),
    ("bs-0", "small", ["if=@IN", "of=@OUT", "bs=-0"], "bs"),
    ("bs==5", "small", ["if=@IN", "of=@OUT", "bs==5"], "bs"),
    ("bs0x", "small", ["if=@IN", "of=@OUT", "bs=0x"], "bs"),
    ("count1.5", "mid", ["if=@IN", "of=@OUT", "count=1.5"], "count"),
    ("count2^63", "mid", ["if=@IN", "of=@OUT", "count=9223372036854775808"], "count"),
    ("count2^64-1", "mid", ["if=@IN", "of=@OUT", "count=18446744073709551615"], "count"),
    ("count2^64", "mid", ["if=@IN", "of=@OUT", "count=18446744073709551616"], "count"),
    ("count8E", "mid", ["if=@IN", "of=@OUT", "count=8E"], "count"),
    ("count-1", "mid", ["if=@IN", "of=@OUT", "count=-1"], "count"),
    ("count-0", "mid", ["if=@IN", "of=@OUT", "count=-0"], "count"),
    ("count12x", "mid", ["if=@IN", "of=@OUT", "count=12x"], "count"),
    ("skip-1", "small", ["if=@IN", "of=@OUT", "skip=-1"], "skip"),
    ("skip8E", "small", ["if=@IN", "of=@OUT", "skip=8E"], "skip"),
    ("skip2^64", "small", ["if=@IN", "of=@OUT", "skip=18446744073709551616"], "skip"),
    ("skip1x", "small", ["if=@IN", "of=@OUT", "skip=1x"], "skip"),
    # command line structure (rows 13, 14, 15)
    ("no-if", "small", ["of=@OUT"], None),
    ("no-of", "small", ["if=@IN"], None),
    ("no-operands", "small", [], None),
    ("unknown-foo", "small", ["if=@IN", "of=@OUT", "foo=1"], "foo"),
    ("unknown-seek", "small", ["if=@IN", "of=@OUT", "seek=1"], "seek"),
    ("unknown-conv", "small", ["if=@IN", "of=@OUT", "conv=notrunc"], "conv"),
    ("upper-BS", "small", ["if=@IN", "of=@OUT", "BS=512"], "BS"),
    ("word-bs", "small", ["if=@IN", "of=@OUT", "bs"], "bs"),
    ("empty-key", "small", ["if=@IN", "of=@OUT", "=5"], None),
    ("bad-before-missing-if", "small", ["bs=0", "if=@MISSING", "of=@OUT"], "bs"),
    ("bad-after-good", "small", ["if=@IN", "of=@OUT", "bs=1k", "count=1", "skip=x"], "skip"),
    ("if-empty", "small", ["if=", "of=@OUT"], None),
    ("of-empty", "small", ["if=@IN", "of="], None),
    ("option-x", "small", ["-x", "if=@IN", "of=@OUT"], None),
    ("O-missing-arg", "small", ["if=@IN", "of=@OUT", "-O"], None),
    ("O-bogus", "small", ["-O", "bogus", "if=@IN", "of=@OUT"], None),
    ("O-RAW", "small", ["-O", "RAW", "if=@IN", "of=@OUT"], None),
    ("O-bogus-missing-if", "small", ["-O", "bogus", "if=@MISSING", "of=@OUT"], None),
    ("f-bogus", "small", ["-f", "bogus", "if=@IN", "of=@OUT"], None),
    ("f-qcow2-on-raw", "small", ["-f", "qcow2", "if=@IN", "of=@OUT"], None),
    ("f-vmdk-on-raw", "small", ["-f", "vmdk", "if=@IN", "of=@OUT"], None),
    ("f-raw-f-qcow2", "small", ["-f", "raw", "-f", "qcow2", "if=@IN", "of=@OUT"], None),
    ("f-missing-arg", "small", ["if=@IN", "of=@OUT", "-f"], None),
    # files (row 15 and the Files table)
    ("missing-input", "small", ["if=@MISSING", "of=@OUT"], "missing.raw"),
    ("input-is-dir", "small", ["if=@DIR", "of=@OUT"], None),
    ("output-dir-missing", "small", ["if=@IN", "of=@NODIR"], None),
    ("output-is-dir", "small", ["if=@IN", "of=@DIR"], None),
]


def subst_error_template(template, d, in_path):
    m = {"@IN": in_path, "@OUT": os.path.join(d, "out.raw"),
         "@MISSING": os.path.join(d, "missing.raw"),
         "@NODIR": os.path.join(d, "no", "such", "dir", "out.img"),
         "@DIR": os.path.join(d, "adir")}
    out = []
    for a in template:
        for k, v in m.items():
            a = a.replace(k, v)
        out.append(a)
    return out


def error_cases():
    return [Case(name, t, 'error-' + rid) for rid, name, t, _ in ERROR_ROWS]


SKIP_MSG = "cannot skip to specified offset"


def run_case(program, case, workdir, in_path, timeout=120):
    """Run `program dd` for a case in an empty `workdir`; return what a
    baseline records: exit status, output size and sha256 (None when no
    output file), whether the skip message appeared, and stderr with the
    program prefix dropped and paths replaced by @IN/@D."""
    import hashlib
    import subprocess
    os.makedirs(os.path.join(workdir, "adir"))
    out = os.path.join(workdir, "out.raw")
    argv = [program, "dd"] + subst_error_template(case.template, workdir, in_path)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       cwd=workdir, timeout=timeout)
    err = p.stderr.decode(errors="replace")
    lines = []
    for line in err.splitlines():
        for prefix in ("instar: ", "qemu-img: "):
            if line.startswith(prefix):
                line = line[len(prefix):]
        lines.append(line.replace(in_path, "@IN").replace(workdir, "@D"))
    rec = {"exit": p.returncode, "output_size": None, "output_sha256": None,
           "skip_message": SKIP_MSG in err, "stderr": "\n".join(lines)}
    if os.path.isfile(out):
        h = hashlib.sha256()
        with open(out, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        rec["output_size"] = os.path.getsize(out)
        rec["output_sha256"] = h.hexdigest()
    rec["files"] = sorted(os.listdir(workdir))
    return rec
