#!/usr/bin/env bash
# Installs the Debian packages instar needs, builds it, and runs instar dd
# on a generated sample, checking the result against qemu-img dd.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
PKGS="build-essential meson ninja-build pkg-config linux-libc-dev zlib1g-dev
      libseccomp-dev libcriterion-dev python3 python3-pytest qemu-utils time
      xfsprogs groff-base git"
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $PKGS 2>/dev/null |
          awk '$NF != "installed" {print $1}' || true)
# dpkg-query prints nothing for packages it has never heard of.
for p in $PKGS; do dpkg-query -W "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "${missing// /}" ]; then
    echo "setup: installing:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

[ -d build ] || meson setup build
ninja -C build

# A sample: 3000 bytes of pattern, copied by both tools with a window.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -c "import sys; sys.stdout.buffer.write(bytes((i*7+1)&255 for i in range(3000)))" > "$tmp/sample.raw"
./build/instar dd if="$tmp/sample.raw" of="$tmp/instar.raw" bs=1000 skip=1
qemu-img dd if="$tmp/sample.raw" of="$tmp/qemu.raw" bs=1000 skip=1
cmp "$tmp/instar.raw" "$tmp/qemu.raw"
echo "setup: OK: instar dd and qemu-img dd produced identical $(stat -c %s "$tmp/instar.raw")-byte outputs"
