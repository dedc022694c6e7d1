#!/usr/bin/python3
"""Record, for a fixed set of small images in every input format, the
images themselves (gzipped, in baselines/images/) and what the live
`qemu-img dd` produced from them (baselines/qemu-img-X.Y-formats.json).
tests/e2e/test_baselines_formats.py replays them through instar without
needing qemu-img, so drift in either tool shows.

    python3 tests/gen/record_format_baselines.py [--qemu-img PATH]
"""
import argparse
import datetime
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import images  # noqa: E402
from record_baselines import qemu_version  # noqa: E402

# name -> (qemu-img convert -O FMT, extra options, -f for dd or None)
VARIANTS = {
    "qcow2": ("qcow2", [], None),
    "qcow2-v2": ("qcow2", ["-o", "compat=0.10"], None),
    "qcow2-compressed": ("qcow2", ["-c"], None),
    "qcow2-512": ("qcow2", ["-o", "cluster_size=512"], None),
    "qcow2-extl2": ("qcow2", ["-o", "extended_l2=on"], None),
    "vmdk-sparse": ("vmdk", [], None),
    "vmdk-stream": ("vmdk", ["-o", "subformat=streamOptimized"], None),
    "vpc-dynamic": ("vpc", [], None),
    "vpc-fixed": ("vpc", ["-o", "subformat=fixed"], "vpc"),
    "vhdx-dynamic": ("vhdx", [], None),
    "vhdx-fixed": ("vhdx", ["-o", "subformat=fixed"], None),
}
WINDOWS = [[], ["bs=1000", "skip=3", "count=700"], ["bs=4096", "skip=33"],
           ["bs=1", "skip=70000", "count=70001"]]
SIZE = 160 * 1024 + 1536  # small, but spans several clusters and grains


def source():
    """Pattern data in every third 4 KiB block, zeros elsewhere: allocated
    and unallocated clusters, and images that gzip well."""
    data = bytearray(SIZE)
    for off in range(0, SIZE, 3 * 4096):
        n = min(4096, SIZE - off)
        data[off:off + n] = images.pattern(off, n)
    return bytes(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qemu-img", default=shutil.which("qemu-img"))
    args = ap.parse_args()
    if not args.qemu_img:
        sys.exit("qemu-img not found (apt-get install qemu-utils)")
    version, short = qemu_version(args.qemu_img)
    img_dir = os.path.join(REPO, "baselines", "images")
    os.makedirs(img_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="instar-fmt-baselines-")
    records = []
    try:
        raw = os.path.join(tmp, "src.raw")
        with open(raw, "wb") as f:
            f.write(source())
        for name, (fmt, opts, force) in VARIANTS.items():
            img = os.path.join(tmp, name)
            subprocess.run([args.qemu_img, "convert", "-f", "raw", "-O", fmt,
                            *opts, raw, img], check=True)
            data = open(img, "rb").read()
            with gzip.GzipFile(os.path.join(img_dir, name + ".gz"), "wb",
                               mtime=0) as g:
                g.write(data)
            for win in WINDOWS:
                out = os.path.join(tmp, "out")
                if os.path.exists(out):
                    os.unlink(out)
                argv = [args.qemu_img, "dd"] + (["-f", force] if force else [])
                argv += [f"if={img}", f"of={out}", *win]
                p = subprocess.run(argv, capture_output=True)
                rec = {"image": name, "image_sha256": hashlib.sha256(data).hexdigest(),
                       "force_format": force, "args": win, "exit": p.returncode}
                if p.returncode == 0:
                    body = open(out, "rb").read()
                    rec["size"] = len(body)
                    rec["sha256"] = hashlib.sha256(body).hexdigest()
                records.append(rec)
    finally:
        shutil.rmtree(tmp)
    doc = {"format": "instar-format-baselines/1", "qemu_img_version": version,
           "made_by": "python3 tests/gen/record_format_baselines.py",
           "recorded_at": datetime.datetime.now(datetime.timezone.utc)
           .strftime("%Y-%m-%d"),
           "source_size": SIZE, "pattern_version": images.PATTERN_VERSION,
           "cases": records}
    path = os.path.join(REPO, "baselines", f"qemu-img-{short}-formats.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {path}: {len(records)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
