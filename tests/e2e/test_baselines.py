"""instar vs the recorded qemu-img results in baselines/ (no qemu-img
needed): exit status, output size and sha256, the skip message, and for
failures that no output file is left. Regenerate the baselines with
tests/gen/record_baselines.py (see baselines/README.md)."""
import glob
import json
import os

import pytest

import cases
import images as gen_images
from conftest import REPO

BASELINE_FILES = sorted(glob.glob(os.path.join(REPO, "baselines", "qemu-img-*-raw.json")))


def _load():
    params = []
    for path in BASELINE_FILES:
        with open(path) as f:
            doc = json.load(f)
        tag = os.path.basename(path)[:-len(".json")]
        for rec in doc["cases"]:
            params.append(pytest.param(path, rec, id=f"{tag}-{rec['id']}"))
    return params


_DOCS = {}


def _doc(path):
    if path not in _DOCS:
        with open(path) as f:
            _DOCS[path] = json.load(f)
    return _DOCS[path]


def test_baselines_present():
    assert BASELINE_FILES, "no baselines/qemu-img-*-raw.json"


@pytest.mark.parametrize("path", BASELINE_FILES,
                         ids=[os.path.basename(p) for p in BASELINE_FILES])
def test_baseline_inputs_match_generator(path):
    doc = _doc(path)
    assert doc["pattern_version"] == gen_images.PATTERN_VERSION, \
        "tests/gen/images.py changed: re-record the baselines"
    for name, info in doc["inputs"].items():
        assert gen_images.fingerprint(name) == info["fingerprint"], \
            f"input {name} differs from the recorded one: re-record the baselines"


@pytest.mark.parametrize("path,rec", _load())
def test_baseline_case(path, rec, images, instar_bin, tmp_path):
    doc = _doc(path)
    if gen_images.fingerprint(rec["input"]) != doc["inputs"][rec["input"]]["fingerprint"]:
        pytest.fail(f"input {rec['input']} changed since {os.path.basename(path)} was recorded")
    case = cases.Case(rec["input"], rec["args"], rec["id"])
    wd = str(tmp_path / "run")
    got = cases.run_case(instar_bin, case, wd, images[rec["input"]])
    where = f"recorded by {doc['qemu_img_version']}"
    assert got["exit"] == rec["exit"], f"exit status ({where}); stderr: {got['stderr']}"
    if rec["exit"] == 0:
        assert got["output_size"] == rec["output_size"], where
        assert got["output_sha256"] == rec["output_sha256"], where
        assert got["skip_message"] == rec["skip_message"], f"{where}: {got['stderr']}"
        assert got["files"] == rec["files"], "unexpected files beside the output"
    else:
        assert got["stderr"].strip(), "no message"
        assert got["output_size"] is None, "instar left an output behind"
        assert got["files"] == ["adir"], "instar left files behind"
