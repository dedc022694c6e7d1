#!/usr/bin/python3
"""Benchmark `instar dd` against `qemu-img dd` on a patterned raw image.

For each block size, runs both programs with the same arguments,
alternating, --repeat times, and reports the median wall time, MB/s, the
speed ratio qemu_time / instar_time and each child's peak RSS (ru_maxrss
from os.wait4). Outputs are compared byte for byte. See bench/README.md.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "gen"))

import images  # noqa: E402

MiB = 1 << 20
IMAGE_VERSION = 1

# Targets printed next to the results.
TARGET_RATIO = {"512": 20.0, "1M": 1.0}
RSS_FLAT_SLACK_KIB = 16 * 1024  # instar's peak RSS may vary this much across bs


def parse_size(text):
    units = {"": 1, "k": 1 << 10, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip()
    suffix = t[-1] if t and t[-1] in units else ""
    return int(float(t[:len(t) - len(suffix)]) * units[suffix])


def build_image(workdir, size, zero_every=0):
    """A patterned raw image, cached: each 512-byte sector starts with its
    own offset, the rest is tests/gen/images.py's pattern. With zero_every
    N, every Nth MiB (from the second) is all zeros instead."""
    tag = f"-z{zero_every}" if zero_every else ""
    path = os.path.join(workdir, f"input-{size}{tag}.raw")
    stamp = path + ".ok"
    want = f"v{IMAGE_VERSION} {size} {zero_every}\n"
    if os.path.exists(stamp) and open(stamp).read() == want \
            and os.path.getsize(path) == size:
        return path
    print(f"building {path} ({size} bytes)...", file=sys.stderr)
    base = images.pattern(0, MiB)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        off = 0
        while off < size:
            n = min(MiB, size - off)
            if zero_every and (off // MiB) % zero_every == 1:
                f.write(bytes(n))
                off += n
                continue
            chunk = bytearray(base[:n])
            for s in range(0, n - 7, 512):
                struct.pack_into("<Q", chunk, s, off + s)
            f.write(chunk)
            off += n
    os.rename(tmp, path)
    with open(stamp, "w") as f:
        f.write(want)
    return path


# --input-format names: qemu-img convert's target and options.
INPUT_FORMATS = {
    "qcow2": ("qcow2", []),
    "qcow2c": ("qcow2", ["-c"]),
    "vmdk": ("vmdk", []),
    "vmdks": ("vmdk", ["-o", "subformat=streamOptimized"]),
    "vpc": ("vpc", []),
    "vhdx": ("vhdx", []),
}


def fragment_qcow2(qemu_img, raw, path):
    """A qcow2 as large as raw, with 4 KiB clusters written in a shuffled
    order (each filled with its own byte), so that consecutive virtual
    clusters lie scattered through the file: qemu-io allocates clusters in
    the order they are written."""
    import random
    size = os.path.getsize(raw)
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", "-o",
                    "cluster_size=4096", path, str(size)], check=True)
    order = list(range(size // 4096))
    random.Random(7).shuffle(order)
    cmds = "".join(f"write -q -P {(c * 131) % 255 + 1} {c * 4096} 4096\n"
                   for c in order)
    subprocess.run(["qemu-io", "-f", "qcow2", path], input=cmds.encode(),
                   stdout=subprocess.DEVNULL, check=True)


def convert_input(qemu_img, raw, fmt):
    """The patterned image in another format, made once with qemu-img."""
    path = f"{raw}.{fmt}"
    if not os.path.exists(path):
        print(f"converting to {fmt}...", file=sys.stderr)
        if fmt == "qcow2frag":
            fragment_qcow2(qemu_img, raw, path + ".tmp")
        else:
            target, opts = INPUT_FORMATS[fmt]
            subprocess.run([qemu_img, "convert", "-f", "raw", "-O", target,
                            *opts, raw, path + ".tmp"], check=True)
        os.rename(path + ".tmp", path)
    return path


def warm(path):
    with open(path, "rb") as f:
        while f.read(8 * MiB):
            pass


GNU_TIME = "/usr/bin/time"


def have_gnu_time():
    try:
        r = subprocess.run([GNU_TIME, "-f", "%M", "true"], capture_output=True, text=True)
    except OSError:
        return False
    return r.returncode == 0 and r.stderr.strip().isdigit()


def run_once(argv, out_path, use_time):
    """Wall time (s), peak RSS (KiB), exit code, stderr of one run.

    Peak RSS is ru_maxrss of the child from wait4. Linux carries the
    exec-ing process's old high-water mark into ru_maxrss, so a child
    spawned straight from this Python process never reports less than
    Python's own RSS. With GNU time available the child is spawned from
    that small process instead (time -f %M is the same wait4 ru_maxrss)."""
    if os.path.lexists(out_path):
        os.unlink(out_path)
    errf = open(out_path + ".stderr", "w+b")
    rss_file = out_path + ".rss"
    full = [GNU_TIME, "-f", "%M", "-o", rss_file] + argv if use_time else argv
    t0 = time.perf_counter()
    p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=errf)
    _, status, ru = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    maxrss = ru.ru_maxrss
    if use_time:
        with open(rss_file) as f:
            lines = f.read().split()
        os.unlink(rss_file)
        maxrss = int(lines[-1])
        if lines[0] == "Command":  # "Command exited with non-zero status N"
            p.returncode = int(lines[5])
    errf.seek(0)
    err = errf.read().decode(errors="replace")
    errf.close()
    os.unlink(out_path + ".stderr")
    return elapsed, maxrss, p.returncode, err


def python_floor_kib():
    p = subprocess.Popen(["true"])
    return os.wait4(p.pid, 0)[2].ru_maxrss


def same_files(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    if shutil.which("cmp"):
        return subprocess.run(["cmp", "-s", a, b]).returncode == 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(8 * MiB), fb.read(8 * MiB)
            if x != y:
                return False
            if not x:
                return True


def same_outputs(qemu_img, fmt, q, i):
    """raw and qcow2 outputs must be the same files; the others carry
    random fields (UUIDs, CID, timestamps): same size and same data."""
    if fmt in ("raw", "qcow2"):
        return same_files(q, i)
    if os.path.getsize(q) != os.path.getsize(i):
        return False
    return same_as_raw(qemu_img, fmt, q, i)


def same_as_raw(qemu_img, fmt, q, i):
    """Whether two images of format fmt hold the same data, converted
    back to raw by qemu-img."""
    raws = []
    for p in (q, i):
        subprocess.run([qemu_img, "convert", "-f", fmt, "-O", "raw", p,
                        p + ".raw"], check=True)
        raws.append(p + ".raw")
    same = same_files(*raws)
    for p in raws:
        os.unlink(p)
    return same


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instar", default=os.environ.get("INSTAR_BIN")
                    or os.path.join(REPO, "build", "instar"))
    ap.add_argument("--qemu-img", default=shutil.which("qemu-img") or "qemu-img")
    ap.add_argument("--workdir", default="/tmp/instar-bench")
    ap.add_argument("--size", default="1G", help="input size (default 1G)")
    ap.add_argument("--bs", action="append",
                    help="block size(s), repeatable or comma separated "
                         "(default 512,64k,1M)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="write results as JSON to this file")
    ap.add_argument("--no-gnu-time", action="store_true",
                    help="take ru_maxrss from wait4 directly (floored at this "
                         "Python's RSS)")
    ap.add_argument("--keep", action="store_true", help="keep the output files")
    ap.add_argument("--output-format", default="raw",
                    help="write this format (-O: qcow2, vmdk, vpc, vhdx) from "
                         "a raw input with every 4th MiB all zeros, and also "
                         "time `qemu-img convert -O FMT` of it; outputs are "
                         "compared as files (qcow2: byte for byte) and as "
                         "their data converted back to raw")
    ap.add_argument("--input-format", default="raw",
                    help="convert the patterned image to this format first "
                         "(qcow2, qcow2c = compressed qcow2, qcow2frag = "
                         "4 KiB clusters scattered through the file, vmdk, "
                         "vmdks = streamOptimized vmdk, vpc, vhdx) and also "
                         "time `qemu-img convert -O raw` of it")
    args = ap.parse_args()

    bs_list = [b for item in (args.bs or ["512,64k,1M"]) for b in item.split(",") if b]
    size = parse_size(args.size)
    for prog in (args.instar, args.qemu_img):
        if not shutil.which(prog):
            sys.exit(f"not found: {prog}")
    os.makedirs(args.workdir, exist_ok=True)
    ofmt = args.output_format
    fmt = args.input_format
    if ofmt != "raw" and fmt != "raw":
        sys.exit("--input-format and --output-format: one of them is raw")
    image = build_image(args.workdir, size, 4 if ofmt != "raw" else 0)
    if fmt != "raw":
        image = convert_input(args.qemu_img, image, fmt)
    warm(image)
    use_time = have_gnu_time() and not args.no_gnu_time
    floor = None if use_time else python_floor_kib()
    if floor:
        print(f"note: no GNU time; peak RSS below {floor} KiB (this Python's "
              f"own) reads as {floor}", file=sys.stderr)

    outs = {"qemu": os.path.join(args.workdir, f"out-qemu.{ofmt}"),
            "instar": os.path.join(args.workdir, f"out-instar.{ofmt}")}
    progs = {"qemu": args.qemu_img, "instar": args.instar}
    results = []
    convert_s = None
    if fmt != "raw" or ofmt != "raw":
        conv = []
        for r in range(args.repeat):
            argv = [args.qemu_img, "convert", "-O", ofmt, image, outs["qemu"]]
            t, _, rc, err = run_once(argv, outs["qemu"], use_time)
            if rc != 0:
                sys.exit(f"qemu-img convert failed: {err}")
            conv.append(t)
            print(f"  convert run {r + 1}: {t:.3f}s", file=sys.stderr)
        convert_s = statistics.median(conv)
    for bs in bs_list:
        cp_samples = [] if fmt == "raw" and ofmt == "raw" else None
        samples = {"qemu": [], "instar": []}
        rss = {"qemu": [], "instar": []}
        for r in range(args.repeat):
            order = ("qemu", "instar") if r % 2 == 0 else ("instar", "qemu")
            if cp_samples is not None:
                # cp (copy_file_range) in the same rotation: the kernel's
                # own copy is the limit instar's raw copy aims at.
                cp_out = outs["instar"] + ".cp"
                t, _, rc, err = run_once(["cp", "--reflink=never", image,
                                          cp_out], cp_out, use_time)
                if rc != 0:
                    sys.exit(f"cp failed: {err}")
                cp_samples.append(t)
                os.unlink(cp_out)
            for who in order:
                argv = [progs[who], "dd", "-O", ofmt, f"if={image}",
                        f"of={outs[who]}", f"bs={bs}"]
                t, maxrss, rc, err = run_once(argv, outs[who], use_time)
                if rc != 0:
                    sys.exit(f"{who} failed (exit {rc}): {' '.join(argv)}\n{err}")
                samples[who].append(t)
                rss[who].append(maxrss)
                print(f"  bs={bs} run {r + 1} {who}: {t:.3f}s rss {maxrss} KiB",
                      file=sys.stderr)
        identical = same_outputs(args.qemu_img, ofmt, outs["qemu"],
                                 outs["instar"])
        row = {"bs": bs, "repeat": args.repeat, "identical": identical,
               "output_bytes": {w: os.path.getsize(outs[w]) for w in outs}}
        for who in ("qemu", "instar"):
            med = statistics.median(samples[who])
            row[who] = {"median_s": med, "samples_s": samples[who],
                        "mb_per_s": size / med / 1e6 if med else None,
                        "peak_rss_kib": max(rss[who])}
        row["ratio"] = row["qemu"]["median_s"] / row["instar"]["median_s"]
        if cp_samples:
            row["cp_median_s"] = statistics.median(cp_samples)
            row["instar_vs_cp_throughput"] = (row["cp_median_s"] /
                                              row["instar"]["median_s"])
        if convert_s:
            row["convert_s"] = convert_s
            row["instar_vs_convert"] = row["instar"]["median_s"] / convert_s
        target = TARGET_RATIO.get(bs)
        row["target_ratio"] = target
        row["target_met"] = None if target is None else row["ratio"] >= target
        results.append(row)
    if not args.keep:
        for p in outs.values():
            if os.path.exists(p):
                os.unlink(p)

    instar_rss = [r["instar"]["peak_rss_kib"] for r in results]
    rss_flat = max(instar_rss) - min(instar_rss) <= RSS_FLAT_SLACK_KIB

    print(f"\ninput {image}: {size} bytes, output format {ofmt}; median of "
          f"{args.repeat} runs each\n")
    hdr = (f"{'bs':>6} {'qemu s':>8} {'qemu MB/s':>10} {'instar s':>9} "
           f"{'instar MB/s':>12} {'ratio':>7} {'target':>8} {'qemu RSS':>10} "
           f"{'instar RSS':>11} {'same':>5}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        q, i = r["qemu"], r["instar"]
        tgt = "-" if r["target_ratio"] is None else \
            f"{'ok' if r['target_met'] else 'MISS'} >={r['target_ratio']:g}x"
        print(f"{r['bs']:>6} {q['median_s']:8.3f} {q['mb_per_s']:10.1f} "
              f"{i['median_s']:9.3f} {i['mb_per_s']:12.1f} {r['ratio']:6.2f}x "
              f"{tgt:>8} {q['peak_rss_kib'] / 1024:8.1f}Mi {i['peak_rss_kib'] / 1024:9.1f}Mi "
              f"{'yes' if r['identical'] else 'NO':>5}")
    if any("cp_median_s" in r for r in results):
        print("\ncp (copy_file_range): " + ", ".join(
            f"bs={r['bs']} {r['cp_median_s']:.3f}s, instar at "
            f"{100 * r['instar_vs_cp_throughput']:.0f}% of cp's throughput"
            for r in results) + " (target >= 90%)")
    if ofmt != "raw":
        print("\noutput bytes (qemu-img dd / instar dd): " + ", ".join(
            f"bs={r['bs']} {r['output_bytes']['qemu']}/"
            f"{r['output_bytes']['instar']}" for r in results))
    if convert_s:
        print(f"\nqemu-img convert -O {ofmt}: {convert_s:.3f}s; instar dd / convert: "
              + ", ".join(f"bs={r['bs']} {r['instar_vs_convert']:.2f}x"
                          for r in results)
              + " (target <= 1.5x)")
    print(f"\ntargets: bs=512 >= 20x faster than qemu-img, bs=1M >= 1.0x, "
          f"instar RSS flat across bs (spread <= {RSS_FLAT_SLACK_KIB // 1024} MiB): "
          f"{'ok' if rss_flat else 'MISS'} "
          f"({min(instar_rss) / 1024:.1f}-{max(instar_rss) / 1024:.1f} MiB)")

    if args.json:
        doc = {"size": size, "image": image, "input_format": fmt,
               "output_format": ofmt,
               "qemu_img_convert_s": convert_s, "instar": args.instar,
               "qemu_img": args.qemu_img,
               "qemu_img_version": subprocess.run(
                   [args.qemu_img, "--version"], capture_output=True,
                   text=True).stdout.splitlines()[0],
               "host": f"{platform.node()} {platform.release()} "
                       f"{platform.machine()} cpus={os.cpu_count()}",
               "rss_method": "GNU time %M (wait4 ru_maxrss)" if use_time
               else f"os.wait4 ru_maxrss, floor {floor} KiB",
               "results": results, "instar_rss_flat": rss_flat}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    bad = [r["bs"] for r in results if not r["identical"]]
    if bad:
        print(f"OUTPUTS DIFFER for bs={','.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
