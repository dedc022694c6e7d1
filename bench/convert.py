#!/usr/bin/env python3
"""Benchmark `instar convert` against `qemu-img convert`, same arguments.

The input is bench.py's patterned raw image with every 4th MiB all zeros
(so sparse output matters). For each case both programs run alternately
(qemu first on odd repeats), each writing a fresh output; the report
gives the median wall time of each, the ratio instar_time / qemu_time
(< 1 means instar is faster; the targets are time ratios), each output's
apparent and allocated size, each child's peak RSS, and whether the
outputs hold the same data (raw: the same bytes; others: the same bytes
once converted back to raw by qemu-img, and `qemu-img check` clean).
See bench/README.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

from bench import (MiB, build_image, convert_input, have_gnu_time,
                   parse_size, run_once, same_as_raw, same_files, warm)

# name: (input format for convert_input, or None for the raw image),
#       arguments after `convert`, output format, target time ratio
CASES = {
    "qcow2-raw": ("qcow2", ["-f", "qcow2", "-O", "raw"], "raw", 1.0),
    "raw-qcow2": (None, ["-f", "raw", "-O", "qcow2"], "qcow2", 1.0),
    "raw-vmdks": (None, ["-f", "raw", "-O", "vmdk", "-o",
                         "subformat=streamOptimized"], "vmdk", 1.0),
    "raw-vpcfixed": (None, ["-f", "raw", "-O", "vpc", "-o",
                            "subformat=fixed"], "vpc", 1.0),
    "raw-qcow2c": (None, ["-f", "raw", "-O", "qcow2", "-c"], "qcow2", 0.6),
}
RSS_MAX_KIB = 64 * 1024


def allocated(path):
    return os.stat(path).st_blocks * 512


def same_data(qemu_img, fmt, q, i):
    """Same bytes (raw) or the same data back as raw, and check clean."""
    if fmt == "raw":
        return same_files(q, i)
    if subprocess.run([qemu_img, "check", "-f", fmt, i],
                      capture_output=True).returncode not in (0, 63):
        return False  # 63: qemu-img cannot check this format (vpc)
    return same_as_raw(qemu_img, fmt, q, i)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instar", default=os.environ.get("INSTAR_BIN") or
                    os.path.join(os.path.dirname(os.path.dirname(
                        os.path.abspath(__file__))), "build", "instar"))
    ap.add_argument("--qemu-img", default="qemu-img")
    ap.add_argument("--workdir", default="/tmp/instar-bench")
    ap.add_argument("--size", default="1G")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES),
                    help="comma separated: " + ", ".join(CASES))
    ap.add_argument("--json", help="write results as JSON to this file")
    a = ap.parse_args()

    os.makedirs(a.workdir, exist_ok=True)
    size = parse_size(a.size)
    raw = build_image(a.workdir, size, zero_every=4)
    use_time = have_gnu_time()
    results, ok = [], True
    print(f"input {raw}: {size} bytes, every 4th MiB zero; median of "
          f"{a.repeat} runs each\n")
    head = (f"{'case':>13} {'qemu s':>8} {'instar s':>8} {'ratio':>6} "
            f"{'target':>7} {'qemu MiB':>9} {'instar MiB':>10} "
            f"{'qemu RSS':>9} {'inst RSS':>9} same")
    print(head)
    print("-" * len(head))
    for name in a.cases.split(","):
        src_fmt, args, out_fmt, target = CASES[name]
        src = convert_input(a.qemu_img, raw, src_fmt) if src_fmt else raw
        warm(src)
        outs = {t: os.path.join(a.workdir, f"out-{name}-{t}")
                for t in ("qemu", "instar")}
        argv = {"qemu": [a.qemu_img, "convert"] + args + [src, outs["qemu"]],
                "instar": [a.instar, "convert"] + args + [src, outs["instar"]]}
        times = {"qemu": [], "instar": []}
        rss = {"qemu": [], "instar": []}
        for r in range(a.repeat):
            order = ("qemu", "instar") if r % 2 == 0 else ("instar", "qemu")
            for tool in order:
                t, m, rc, err = run_once(argv[tool], outs[tool], use_time)
                if rc != 0:
                    sys.exit(f"{tool} {name} failed ({rc}): {err}")
                times[tool].append(t)
                rss[tool].append(m)
        med = {t: statistics.median(times[t]) for t in times}
        ratio = med["instar"] / med["qemu"]
        sizes = {t: (os.path.getsize(outs[t]), allocated(outs[t]))
                 for t in outs}
        same = same_data(a.qemu_img, out_fmt, outs["qemu"], outs["instar"])
        peak = {t: max(rss[t]) for t in rss}
        good = (same and ratio <= target and peak["instar"] <= RSS_MAX_KIB
                and sizes["instar"][1] <= sizes["qemu"][1])
        ok = ok and good
        print(f"{name:>13} {med['qemu']:8.3f} {med['instar']:8.3f} "
              f"{ratio:6.2f} {'<=' + str(target):>7} "
              f"{sizes['qemu'][1] / MiB:9.1f} {sizes['instar'][1] / MiB:10.1f} "
              f"{peak['qemu'] / 1024:8.1f}M {peak['instar'] / 1024:8.1f}M "
              f"{'yes' if same else 'NO'}{'' if good else '  (target missed)'}")
        results.append({"case": name, "args": args, "qemu_s": times["qemu"],
                        "instar_s": times["instar"], "ratio": ratio,
                        "target": target, "sizes": sizes, "rss_kib": rss,
                        "same": same})
        for p in outs.values():
            os.unlink(p)
    print(f"\ntargets: time ratio <= 1.0 (-c: <= 0.6), allocated size no "
          f"larger than qemu-img's, instar peak RSS <= 64 MiB: "
          f"{'ok' if ok else 'MISSED'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"size": size, "repeat": a.repeat, "results": results},
                      f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
