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

echo "== e2e (pytest)"
# --basetemp inside $logdir: pytest's temporary directories go with it
# (pytest 7.2 otherwise keeps the last three in /tmp).
INSTAR_BIN="$PWD/build/instar" /usr/bin/python3 -m pytest -q -rs \
    --basetemp="$logdir/pytest" --junitxml="$logdir/e2e.xml" tests/e2e
prc=$?
if [ -f "$logdir/e2e.xml" ]; then
    read -r t f e s < <(/usr/bin/python3 - "$logdir/e2e.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
suites = [r] if r.tag == 'testsuite' else list(r)
g = lambda k: sum(int(x.get(k, 0)) for x in suites)
print(g('tests'), g('failures'), g('errors'), g('skipped'))
PY
)
    passed=$((passed + t - f - e - s))
    failed=$((failed + f + e))
    skipped=$s
else
    failed=$((failed + 1))
    skipped=0
fi
[ "$prc" -eq 0 ] || [ "$prc" -eq 1 ] || [ "$failed" -gt 0 ] || failed=$((failed + 1))

echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ]
