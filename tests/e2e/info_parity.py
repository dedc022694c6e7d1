"""instar info against the live qemu-img info: JSON key by key (keys, order
and values) and the text output line by line, instar's own safety verdict
set aside (it is checked by the tests that care about it).

Used by the per-format input tests (their image fixtures) and test_info.py.
"""
import json
import subprocess

RUN_TIMEOUT = 120


def run_info(program, args, cwd=None):
    """`program info ARGS...` -> CompletedProcess with bytes output."""
    return subprocess.run([program, "info", *args], stdin=subprocess.DEVNULL,
                          capture_output=True, cwd=cwd, timeout=RUN_TIMEOUT)


def strip_safety(doc):
    """qemu's document: instar's with its instar-safety objects removed."""
    if isinstance(doc, list):
        return [strip_safety(d) for d in doc]
    return {k: v for k, v in doc.items() if k != "instar-safety"}


def human_lines(out):
    """The text output as lines, instar's safety lines removed."""
    return [l for l in out.split(b"\n") if not l.startswith(b"instar safety:")]


def _same(path, q, i):
    """Compares two JSON values key by key, in order; returns the first
    difference as a string, or None."""
    if isinstance(q, dict) and isinstance(i, dict):
        if list(q) != list(i):
            return f"{path}: keys {list(i)} != qemu's {list(q)}"
        for k in q:
            d = _same(f"{path}.{k}", q[k], i[k])
            if d:
                return d
        return None
    if isinstance(q, list) and isinstance(i, list):
        if len(q) != len(i):
            return f"{path}: {len(i)} items != qemu's {len(q)}"
        for n, (a, b) in enumerate(zip(q, i)):
            d = _same(f"{path}[{n}]", a, b)
            if d:
                return d
        return None
    if q != i or type(q) is not type(i):
        return f"{path}: {i!r} != qemu's {q!r}"
    return None


def compare(qemu_img, instar_bin, path, args=(), cwd=None, instar_args=()):
    """Runs both tools on path (same arguments, same name as given; instar
    also gets instar_args) and asserts the same exit status, the same JSON
    and the same text. Returns instar's JSON document (safety included)."""
    args = list(args)
    iargs = [*instar_args, *args]
    q = run_info(qemu_img, ["--output=json", *args, path], cwd=cwd)
    i = run_info(instar_bin, ["--output=json", *iargs, path], cwd=cwd)
    assert q.returncode == 0, q.stderr
    assert i.returncode == 0, i.stderr
    qj = json.loads(q.stdout)
    ij = json.loads(i.stdout)
    diff = _same("", qj, strip_safety(ij))
    assert diff is None, diff
    # the same text, byte for byte, as a whole (order of keys included)
    assert json.dumps(qj) == json.dumps(strip_safety(ij))
    qh = run_info(qemu_img, [*args, path], cwd=cwd)
    ih = run_info(instar_bin, [*iargs, path], cwd=cwd)
    assert qh.returncode == 0 and ih.returncode == 0, (qh.stderr, ih.stderr)
    ql, il = qh.stdout.split(b"\n"), human_lines(ih.stdout)
    for n, (a, b) in enumerate(zip(ql, il)):
        assert a == b, f"line {n + 1}: {b!r} != qemu's {a!r}"
    assert len(ql) == len(il), (ql, il)
    return ij


def safety(doc):
    """(safe, [rule, ...]) of a single image's document or a chain's
    first."""
    d = doc[0] if isinstance(doc, list) else doc
    s = d["instar-safety"]
    return s["safe"], [r["rule"] for r in s["reasons"]]
