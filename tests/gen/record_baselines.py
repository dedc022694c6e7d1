#!/usr/bin/python3
"""Record what the live qemu-img dd produces for the fixed case matrix
(tests/e2e/cases.py: baseline_cases() and error_cases()) into
baselines/qemu-img-<major>.<minor>-raw.json, with the qemu-img version, the
input fingerprints and the command that made it.

    python3 tests/gen/record_baselines.py [--qemu-img PATH] [--out FILE]

tests/e2e/test_baselines.py then runs instar on the same matrix and compares
exit status, output size and sha256, so drift shows without qemu-img.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))

import cases  # noqa: E402
import images  # noqa: E402

FORMAT = "instar-baselines/1"


def qemu_version(qemu_img):
    text = subprocess.run([qemu_img, "--version"], capture_output=True,
                          text=True, check=True).stdout
    first = text.splitlines()[0].strip()
    m = re.search(r"version (\d+)\.(\d+)", first)
    if not m:
        sys.exit(f"cannot parse qemu-img version from {first!r}")
    return first, f"{m.group(1)}.{m.group(2)}"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qemu-img", default=shutil.which("qemu-img"))
    ap.add_argument("--out", help="default: baselines/qemu-img-X.Y-raw.json")
    ap.add_argument("--workdir", help="where to put inputs (default: a temp dir)")
    args = ap.parse_args()
    if not args.qemu_img:
        sys.exit("qemu-img not found (apt-get install qemu-utils)")
    version, short = qemu_version(args.qemu_img)
    out_file = args.out or os.path.join(REPO, "baselines", f"qemu-img-{short}-raw.json")

    tmp = tempfile.mkdtemp(prefix="instar-baselines-")
    try:
        img_dir = args.workdir or os.path.join(tmp, "images")
        paths = images.make_all(img_dir)
        records = []
        all_cases = cases.baseline_cases() + cases.error_cases()
        for n, case in enumerate(all_cases):
            wd = os.path.join(tmp, "run", str(n))
            os.makedirs(wd)
            rec = cases.run_case(args.qemu_img, case, wd, paths[case.input])
            shutil.rmtree(wd)
            records.append({"id": case.id, "input": case.input,
                            "args": case.template, **rec})
            if n % 50 == 0:
                print(f"{n}/{len(all_cases)} {case.id}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp)

    doc = {
        "format": FORMAT,
        "qemu_img": args.qemu_img,
        "qemu_img_version": version,
        "made_by": " ".join(["python3 tests/gen/record_baselines.py"]
                            + sys.argv[1:]),
        "recorded_at": datetime.datetime.now(datetime.timezone.utc)
                       .replace(microsecond=0).isoformat(),
        "host": f"{platform.system()} {platform.release()} {platform.machine()}",
        "notes": "args: @IN = input image, @OUT = output, @MISSING/@NODIR/@DIR "
                 "= paths in the run directory (see tests/e2e/cases.py); "
                 "stderr has the program prefix dropped and paths replaced by "
                 "@IN and @D (the run directory).",
        "pattern_version": images.PATTERN_VERSION,
        "inputs": {name: {"file": images.file_name(name), "size": spec[0],
                          "fingerprint": images.fingerprint(name)}
                   for name, spec in images.IMAGES.items()},
        "cases": records,
    }
    os.makedirs(os.path.dirname(out_file), exist_ok=True)
    with open(out_file + ".tmp", "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    os.rename(out_file + ".tmp", out_file)
    print(f"wrote {len(records)} cases to {out_file} ({version})")


if __name__ == "__main__":
    main()
