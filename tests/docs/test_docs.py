"""Checks on the documentation that need no KVM: every relative link in the
Markdown files resolves (the file exists, an anchor names a heading of
it), the man pages render without a groff warning, name every option the
matching --help lists, and `meson install` puts them into man1.

The build directory is the one holding INSTAR_BIN (default build/).
"""
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.path.dirname(os.path.abspath(
    os.environ.get("INSTAR_BIN") or os.path.join(ROOT, "build", "instar")))
PAGES = {"instar.1": [], "instar-dd.1": ["dd"],
         "instar-convert.1": ["convert"], "instar-info.1": ["info"]}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def markdown_files():
    """The repository's Markdown files: git's list, or (no git) every one
    outside build and hidden directories."""
    r = subprocess.run(["git", "ls-files", "--cached", "--others",
                        "--exclude-standard", "*.md"], cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode == 0:
        return sorted(r.stdout.split())
    found = []
    for base, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs
                   if not d.startswith((".", "build"))]
        found += [os.path.relpath(os.path.join(base, n), ROOT)
                  for n in names if n.endswith(".md")]
    return sorted(found)


def slug(heading):
    """A heading's anchor as GitHub makes it."""
    text = re.sub(r"`|\*\*?|__", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    with open(path) as f:
        text = FENCE.sub("", f.read())
    seen, out = {}, set()
    for h in HEADING.findall(text):
        s = slug(h)
        n = seen.get(s, 0)
        out.add(s if n == 0 else f"{s}-{n}")
        seen[s] = n + 1
    return out


def test_slug_rules():
    assert slug("`open_backing` policy (vmm/backing.c)") == \
        "open_backing-policy-vmmbackingc"
    assert slug("Output options (`convert -o`)") == "output-options-convert--o"


@pytest.mark.parametrize("doc", markdown_files())
def test_links_resolve(doc):
    with open(os.path.join(ROOT, doc)) as f:
        text = FENCE.sub("", f.read())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # a URL: not checked offline
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(ROOT, os.path.dirname(doc),
                                             path)) if path else \
            os.path.join(ROOT, doc)
        if not full.startswith(ROOT + os.sep) or not os.path.exists(full):
            broken.append(f"{target}: no such file in the repository")
        elif anchor and (not full.endswith(".md") or
                         anchor not in anchors(full)):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{doc}: " + "; ".join(broken)


def _page(name):
    path = os.path.join(BUILD, "man", name)
    assert os.path.isfile(path), f"{path} not built (ninja -C {BUILD})"
    return path


@pytest.mark.parametrize("name", sorted(PAGES))
def test_man_page_renders_without_warnings(name):
    r = subprocess.run(["groff", "-ww", "-man", "-Tutf8", "-z", _page(name)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    with open(_page(name)) as f:
        head = f.readline()
    assert "@" not in head, "version and date are filled in: " + head


@pytest.mark.parametrize("name", sorted(PAGES))
def test_man_page_has_every_option_of_help(name):
    text = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou",
                           _page(name)], capture_output=True, text=True,
                          check=True).stdout
    text = re.sub(r"-\n\s*", "-", text)  # words hyphenated across lines
    help_text = subprocess.run(
        [os.path.join(BUILD, "instar")] + PAGES[name] + ["--help"],
        capture_output=True, text=True, check=True).stdout
    options = set(re.findall(r"^\s+(-[-\w]+|[a-z]+=)", help_text, re.M))
    assert options, "the help lists options"
    missing = sorted(o for o in options if o not in text)
    assert not missing, f"{name} lacks {missing}"


def test_meson_install_puts_pages_in_man1(tmp_path):
    subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild",
                    "--destdir", str(tmp_path), "--quiet"],
                   check=True, capture_output=True)
    found = set()
    for base, _, names in os.walk(tmp_path):
        if os.path.basename(base) == "man1":
            found.update(names)
    assert set(PAGES) <= found, found
