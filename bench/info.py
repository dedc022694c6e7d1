#!/usr/bin/python3
"""Benchmark `instar info` against `qemu-img info` (see bench/README.md).

Builds a patterned raw image (tests/gen/images.py's pattern, sparse
regions every few MiB so the tables are not trivial), converts it once to
each format with qemu-img, then runs both programs alternately --repeat
times per format and output mode and reports the median wall time and the
ratio instar / qemu-img (the target is <= 1.5: info is a few reads; the
VM start is the cost). The outputs are compared as the e2e tests compare
them (instar's safety verdict set aside).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "gen"))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))

import images  # noqa: E402
from info_parity import strip_safety  # noqa: E402

MiB = 1 << 20
TARGET = 1.5
# name -> (qemu-img format, convert options)
FORMATS = {"qcow2": ("qcow2", []), "qcow2c": ("qcow2", ["-c"]),
           "vmdk": ("vmdk", []),
           "vmdk-stream": ("vmdk", ["-o", "subformat=streamOptimized"]),
           "vpc": ("vpc", []), "vhdx": ("vhdx", [])}


def build_raw(workdir, size):
    """Every other 4 MiB holds the pattern, the rest is a hole: a real
    mapping, built without writing the whole size."""
    path = os.path.join(workdir, f"info-{size}.raw")
    if os.path.exists(path) and os.path.getsize(path) == size:
        return path
    chunk = images.pattern(0, 4 * MiB)
    with open(path + ".tmp", "wb") as f:
        f.truncate(size)
        for off in range(0, size, 8 * MiB):
            f.seek(off)
            f.write(chunk[:min(4 * MiB, size - off)])
    os.rename(path + ".tmp", path)
    return path


def convert(qemu_img, raw, name):
    fmt, opts = FORMATS[name]
    path = f"{raw}.{name}"
    if not os.path.exists(path):
        print(f"converting to {name}...", file=sys.stderr)
        subprocess.run([qemu_img, "convert", "-f", "raw", "-O", fmt, *opts,
                        raw, path], check=True)
    return path


def timed(argv):
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True)
    dt = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"{argv} failed: {r.stderr.decode()}")
    return dt, r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instar", default=os.environ.get("INSTAR_BIN") or
                    os.path.join(REPO, "build", "instar"))
    ap.add_argument("--qemu-img", default="qemu-img")
    ap.add_argument("--workdir", default="/tmp/instar-bench")
    ap.add_argument("--size", default=1 << 30, type=int)
    ap.add_argument("--repeat", default=11, type=int)
    ap.add_argument("--formats", default="qcow2,vmdk")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    raw = build_raw(args.workdir, args.size)
    rows, ok = [], True
    print(f"{'format':<12} {'output':<6} {'qemu-img':>9} {'instar':>9} "
          f"{'ratio':>6}  same")
    for name in args.formats.split(","):
        path = convert(args.qemu_img, raw, name)
        for mode in ("human", "json"):
            q_t, i_t = [], []
            for k in range(args.repeat):
                order = [("q", args.qemu_img), ("i", args.instar)]
                if k % 2:
                    order.reverse()  # interleaved, each first in turn
                for who, prog in order:
                    dt, out = timed([prog, "info", f"--output={mode}", path])
                    (q_t if who == "q" else i_t).append(dt)
                    if who == "q":
                        q_out = out
                    else:
                        i_out = out
            if mode == "json":
                same = json.loads(q_out) == strip_safety(json.loads(i_out))
            else:
                same = q_out.split(b"\n") == [
                    l for l in i_out.split(b"\n")
                    if not l.startswith(b"instar safety:")]
            q, i = statistics.median(q_t), statistics.median(i_t)
            ok &= same and i / q <= TARGET
            rows.append({"format": name, "output": mode, "qemu_s": q,
                         "instar_s": i, "ratio": i / q, "same": same})
            print(f"{name:<12} {mode:<6} {q * 1000:>7.1f}ms {i * 1000:>7.1f}ms "
                  f"{i / q:>6.2f}  {'yes' if same else 'NO'}")
    print(f"target: instar / qemu-img <= {TARGET}: "
          f"{'met' if ok else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": args.size, "repeat": args.repeat,
                       "rows": rows}, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
