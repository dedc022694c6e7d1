#!/usr/bin/python3
"""Record what the live `qemu-img info` prints for the stored images of
baselines/images/ (made by record_format_baselines.py), probed and with
the format forced, as JSON and text, into baselines/qemu-img-X.Y-info.json.
tests/e2e/test_info_baselines.py compares instar info with it where no
qemu-img is installed.

The disk size depends on the file system the image is written to, and the
file name on where: `actual-size` and the `disk size:` line are dropped,
the name is recorded as @IMG.

    /usr/bin/python3 tests/gen/record_info_baselines.py [--qemu-img PATH]
"""
import argparse
import glob
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from record_baselines import qemu_version  # noqa: E402
from record_format_baselines import VARIANTS  # noqa: E402


def scrub_json(doc, path):
    """The JSON without what depends on where the image was written."""
    doc.pop("actual-size", None)
    return json.loads(json.dumps(doc).replace(json.dumps(path)[1:-1],
                                              "@IMG"))


def scrub_text(text, path):
    return [l.replace(path, "@IMG") for l in text.split("\n")
            if not l.startswith("disk size:")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu-img", default="qemu-img")
    args = ap.parse_args()
    cases = []
    with tempfile.TemporaryDirectory() as d:
        for gz in sorted(glob.glob(os.path.join(REPO, "baselines", "images",
                                                "*.gz"))):
            name = os.path.basename(gz)[:-3]
            path = os.path.join(d, name)
            with gzip.open(gz) as g, open(path, "wb") as f:
                f.write(g.read())
            force = VARIANTS[name][2] or VARIANTS[name][0]
            for fmt in (None, force):
                argv = [args.qemu_img, "info"] + (["-f", fmt] if fmt else [])
                j = subprocess.run(argv + ["--output=json", path],
                                   capture_output=True, text=True, check=True)
                t = subprocess.run(argv + [path], capture_output=True,
                                   text=True, check=True)
                cases.append({"image": name, "force_format": fmt,
                              "json": scrub_json(json.loads(j.stdout), path),
                              "text": scrub_text(t.stdout, path)})
    version, short = qemu_version(args.qemu_img)
    doc = {"format": "instar-info-baselines/1",
           "qemu_img_version": version,
           "made_by": "python3 tests/gen/record_info_baselines.py",
           "recorded_at": time.strftime("%Y-%m-%d"), "cases": cases}
    out = os.path.join(REPO, "baselines", f"qemu-img-{short}-info.json")
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(out)


if __name__ == "__main__":
    main()
