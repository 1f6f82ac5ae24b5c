#!/bin/bash
# Writes build-support/link-order.txt: the functions a release blockscope runs for start-up,
# --help, info/check/map on QCOW2, VHDX, VHD and RAW images made by qemu-img, and the TUI's
# first frame, in the order callgrind first saw them. The release link lays these out first
# and together (lld --symbol-ordering-file; docs/adr/0013-release-link-layout.md), so those
# commands fault in a few MB of code instead of pieces of the whole 17 MB text.
# A stale list only costs memory: names that no longer exist are skipped by the linker.
# Usage: bash scripts/perf/link-order.sh [path/to/release/blockscope]   (needs valgrind, qemu-img)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-$ROOT/.build/release/blockscope}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cg() { valgrind --tool=callgrind --demangle=no --dump-instr=no --callgrind-out-file="$W/cg.$1" "${@:2}" > /dev/null 2>> "$W/valgrind.log"; }
# Images: a QCOW2 with data, a compressed cluster, a zeroed range and a snapshot; VHDX, VHD, RAW.
qemu-img create -q -f qcow2 "$W/a.qcow2" 256M
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -c -P 0x22 4M 64k' -c 'write -z 8M 1M' "$W/a.qcow2" > /dev/null
qemu-img snapshot -c s1 "$W/a.qcow2" > /dev/null
qemu-io -f qcow2 -c 'write -P 0x33 0 64k' "$W/a.qcow2" > /dev/null
for f in vhdx vpc raw; do
  qemu-img create -q -f $f "$W/a.$f" 256M
  qemu-io -f $f -c 'write -P 0x44 0 3M' "$W/a.$f" > /dev/null
done
n=0
cg $((n++)) "$B" --help
for img in "$W/a.qcow2" "$W/a.vhdx" "$W/a.vpc" "$W/a.raw"; do
  cg $((n++)) "$B" info "$img"
  cg $((n++)) "$B" check "$img"
  cg $((n++)) "$B" map --output=json "$img"
done
for img in "$W/a.qcow2" "$W/a.vhdx"; do
  FF_TIMEOUT=120 python3 "$ROOT/scripts/perf/first-frame.py" -n 1 -m "q quit" -- valgrind --tool=callgrind \
    --demangle=no --dump-instr=no --log-file="$W/valgrind.tui.log" --callgrind-out-file="$W/cg.$((n++))" "$B" tui "$img" > /dev/null
done
files=(); for i in $(seq 0 $((n - 1))); do [ -s "$W/cg.$i" ] && files+=("$W/cg.$i"); done
python3 "$ROOT/scripts/perf/callgrind-funcs.py" "${files[@]}" > "$ROOT/build-support/link-order.txt"
echo "link-order: $(wc -l < "$ROOT/build-support/link-order.txt") functions from ${#files[@]} runs"
# SwiftPM does not track the list as a link input: relink by hand.
echo "link-order: relink with: rm -f .build/release/blockscope && swift build -c release"
