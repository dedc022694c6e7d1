#!/usr/bin/env bash
# Runs bench.py over the whole matrix the issues ask for, one JSON file
# per row in OUTDIR: every input format -> raw, raw -> every output
# format, raw -> raw with cp, on the work directory given (tmpfs or disk).
#   bench/matrix.sh WORKDIR OUTDIR [SIZE] [REPEAT] [BS]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:?workdir} out=${2:?outdir} size=${3:-1G} repeat=${4:-5} bs=${5:-64k,1M}
mkdir -p "$out"
run() {
    local name=$1
    shift
    echo "== $name" >&2
    /usr/bin/python3 bench/bench.py --workdir "$work" --size "$size" \
        --repeat "$repeat" --bs "$bs" --json "$out/$name.json" "$@" |
        tee "$out/$name.txt"
}
run raw-raw
for f in qcow2 qcow2c qcow2frag vmdk vmdks vpc vhdx; do
    run "$f-raw" --input-format "$f"
done
for f in qcow2 vmdk vpc vhdx; do
    run "raw-$f" --output-format "$f"
done
