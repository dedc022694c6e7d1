"""instar vs what qemu-img dd produced from the stored images in
baselines/images/ (baselines/qemu-img-*-formats.json): exit status, size
and sha256 of the output. Needs no qemu-img. Re-record with
tests/gen/record_format_baselines.py."""
import glob
import gzip
import hashlib
import json
import os

import pytest

from conftest import REPO, run_dd

FILES = sorted(glob.glob(os.path.join(REPO, "baselines", "qemu-img-*-formats.json")))


def _params():
    out = []
    for path in FILES:
        doc = json.load(open(path))
        tag = os.path.basename(path)[:-len(".json")]
        for rec in doc["cases"]:
            win = "-".join(rec["args"]).replace("=", "") or "all"
            out.append(pytest.param(rec, id=f"{tag}-{rec['image']}-{win}"))
    return out


def test_format_baselines_present():
    assert FILES, "no baselines/qemu-img-*-formats.json"


@pytest.mark.parametrize("rec", _params())
def test_format_baseline(rec, instar_bin, tmp_path):
    with gzip.open(os.path.join(REPO, "baselines", "images", rec["image"] + ".gz")) as g:
        data = g.read()
    assert hashlib.sha256(data).hexdigest() == rec["image_sha256"]
    img = tmp_path / rec["image"]
    img.write_bytes(data)
    out = str(tmp_path / "out")
    args = (["-f", rec["force_format"]] if rec["force_format"] else [])
    r = run_dd(instar_bin, args + [f"if={img}", f"of={out}", *rec["args"]], out)
    assert r.rc == rec["exit"], r
    if rec["exit"] == 0:
        assert len(r.out) == rec["size"]
        assert hashlib.sha256(r.out).hexdigest() == rec["sha256"]
    else:
        assert not r.out_exists
