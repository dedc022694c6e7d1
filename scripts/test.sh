#!/usr/bin/env bash
# Runs the whole test suite: criterion unit and VMM tests, then the pytest
# end-to-end parity tests against the live qemu-img. Ends with one line
# "N passed, N failed" summing every runner.
set -uo pipefail
cd "$(dirname "$0")/.."

[ -d build ] || meson setup build >/dev/null || exit 1
ninja -C build || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

for t in build/tests/unit/test_unit build/tests/vmm/test_vmm; do
    name=$(basename "$t")
    echo "== $name"
    "$t" --jobs 2 2>&1 | tee "$logdir/$name.log"
    rc=${PIPESTATUS[0]}
    line=$(grep -a 'Synthesis:' "$logdir/$name.log" | tail -1)
    p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line")
    f=$(sed -n 's/.*Failing: \([0-9]*\).*Crashing: \([0-9]*\).*/\1 \2/p' <<<"$line")
    if [ -z "$p" ]; then
        echo "$name: no criterion summary (exit $rc)"
        failed=$((failed + 1))
        continue
    fi
    passed=$((passed + p))
    for n in $f; do failed=$((failed + n)); done
    [ "$rc" -eq 0 ] || [ -n "$f" ] || failed=$((failed + 1))
done

# One e2e run, summed into the totals: name, then pytest arguments.
skipped=0
run_e2e() {
    local name=$1
    shift
    echo "== e2e ($name)"
    # --basetemp inside $logdir: pytest's temporary directories go with it
    # (pytest 7.2 otherwise keeps the last three in /tmp).
    INSTAR_BIN="$PWD/build/instar" /usr/bin/python3 -m pytest -q -rs \
        --basetemp="$logdir/pytest-$name" \
        --junitxml="$logdir/$name.xml" "$@"
    local prc=$?
    if [ ! -f "$logdir/$name.xml" ]; then
        failed=$((failed + 1))
        return
    fi
    read -r t f e s < <(/usr/bin/python3 - "$logdir/$name.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
suites = [r] if r.tag == 'testsuite' else list(r)
g = lambda k: sum(int(x.get(k, 0)) for x in suites)
print(g('tests'), g('failures'), g('errors'), g('skipped'))
PY
)
    passed=$((passed + t - f - e - s))
    failed=$((failed + f + e))
    skipped=$((skipped + s))
    [ "$prc" -eq 0 ] || [ "$prc" -eq 1 ] || [ "$f" -gt 0 ] || [ "$e" -gt 0 ] ||
        failed=$((failed + 1))
}

# tests/docs: links in the Markdown files, man pages (no KVM needed)
run_e2e e2e tests/e2e tests/docs
# The parity suites again with the host's kernel copies refused: the
# guest's own read-and-write path must give the same bytes.
INSTAR_NO_KERNEL_COPY=1 run_e2e e2e-guest-path \
    tests/e2e/test_dd_raw.py tests/e2e/test_input_qcow2.py \
    tests/e2e/test_input_vmdk.py tests/e2e/test_input_vpc.py \
    tests/e2e/test_input_vhdx.py tests/e2e/test_output_formats.py \
    tests/e2e/test_baselines.py tests/e2e/test_baselines_formats.py

echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ]
