#!/usr/bin/env bash
# Builds the libFuzzer harness for one format (clang, ASan + UBSan) and
# runs it for SECONDS, seeded with images qemu-img makes.
#   tests/fuzz/run.sh FORMAT [SECONDS]     FORMAT: probe raw qcow2 vmdk vpc vhdx
# Crashers land in build-fuzz/FORMAT/crashes; turn each into a regression
# image under tests/fuzz/regressions/FORMAT/ once fixed.
set -euo pipefail
cd "$(dirname "$0")/../.."
fmt=${1:?format}; secs=${2:-60}
case $fmt in
  probe) n=0 ;; raw) n=1 ;; qcow2) n=2 ;; vmdk) n=3 ;; vpc) n=4 ;; vhdx) n=5 ;;
  *) echo "unknown format $fmt" >&2; exit 2 ;;
esac
out=build-fuzz/$fmt
mkdir -p "$out/corpus" "$out/crashes"
# Every guest source but the freestanding-only ones (libc provides them).
srcs=$(ls guest/err.c guest/rt/*.c guest/fmt/*.c | grep -v -e rt/mem.c -e rt/libc_glue.c)
clang -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -DFUZZ_FORMAT=$n \
    -Icalltable -Ishared -Iguest -Itests/support \
    tests/fuzz/fuzz_reader.c tests/support/ct_mem.c $srcs -lz \
    -o "$out/fuzz"
# Seeds: small images of the format, as qemu-img writes them.
if command -v qemu-img >/dev/null && [ -z "$(ls -A "$out/corpus")" ]; then
    t=$(mktemp -d)
    head -c 300000 /dev/urandom > "$t/r.raw"
    truncate -s 2M "$t/r.raw"
    case $fmt in
      qcow2) for o in "" "-c" "-o compat=0.10" "-o cluster_size=512" \
                       "-o extended_l2=on" "-o cluster_size=4096"; do
               qemu-img convert -O qcow2 $o "$t/r.raw" "$t/s.img"
               cp "$t/s.img" "$out/corpus/$(echo "x$o" | tr -c 'a-z0-9' _)"; done ;;
      vmdk) for o in monolithicSparse streamOptimized; do
               qemu-img convert -O vmdk -o subformat=$o "$t/r.raw" "$out/corpus/$o"; done ;;
      vpc) qemu-img convert -O vpc "$t/r.raw" "$out/corpus/dyn"
           qemu-img convert -O vpc -o subformat=fixed "$t/r.raw" "$out/corpus/fixed" ;;
      vhdx) qemu-img convert -O vhdx -o block_size=1M "$t/r.raw" "$out/corpus/dyn" ;;
      *) cp "$t/r.raw" "$out/corpus/raw" ;;
    esac
    rm -rf "$t"
fi
regress=tests/fuzz/regressions/$fmt
extra=()
[ -d "$regress" ] && extra=("$regress")
"$out/fuzz" -max_total_time="$secs" -max_len=4194304 -rss_limit_mb=2048 \
    -artifact_prefix="$out/crashes/" -print_final_stats=1 \
    "$out/corpus" "${extra[@]}" 2>&1 | tail -20
