"""instar info vs what qemu-img info printed for the stored images in
baselines/images/ (baselines/qemu-img-*-info.json): JSON (order included)
and text, save the disk size, which depends on the file system. Needs no
qemu-img. Re-record with tests/gen/record_info_baselines.py."""
import glob
import gzip
import json
import os

import pytest

from conftest import REPO
from info_parity import human_lines, run_info, strip_safety

FILES = sorted(glob.glob(os.path.join(REPO, "baselines",
                                      "qemu-img-*-info.json")))


def _params():
    out = []
    for path in FILES:
        tag = os.path.basename(path)[:-len(".json")]
        for rec in json.load(open(path))["cases"]:
            out.append(pytest.param(rec, id=f"{tag}-{rec['image']}-"
                                    f"{rec['force_format'] or 'probed'}"))
    return out


def test_info_baselines_present():
    assert FILES, "no baselines/qemu-img-*-info.json"


@pytest.mark.parametrize("rec", _params())
def test_info_baseline(rec, instar_bin, tmp_path):
    with gzip.open(os.path.join(REPO, "baselines", "images",
                                rec["image"] + ".gz")) as g:
        data = g.read()
    img = str(tmp_path / rec["image"])
    with open(img, "wb") as f:
        f.write(data)
    args = ["-f", rec["force_format"]] if rec["force_format"] else []
    j = run_info(instar_bin, ["--output=json", *args, img])
    assert j.returncode == 0, j.stderr
    doc = strip_safety(json.loads(j.stdout))
    doc.pop("actual-size")
    got = json.loads(json.dumps(doc).replace(img, "@IMG"))
    assert json.dumps(got) == json.dumps(rec["json"])
    t = run_info(instar_bin, [*args, img])
    lines = [l.decode().replace(img, "@IMG") for l in human_lines(t.stdout)
             if not l.startswith(b"disk size:")]
    assert lines == rec["text"]
