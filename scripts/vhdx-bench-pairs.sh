#!/bin/bash
# Interleaved VHDX/RAW write benchmark rounds (docs/PERFORMANCE.md, VHDX section).
# Usage: scripts/vhdx-bench-pairs.sh ROUNDS OUT.jsonl [DIR]
# Each configuration is one `blockscope bench` run; even rounds run them in reverse order,
# so drift in the machine's load falls on both sides of each ratio. One JSON line per run
# with the 1-minute load average. fio rows give the device's QD8/QD1 ceiling for 128 KiB.
B=${B:-.build-vhdx/release/blockscope}
ROUNDS=${1:-6}; OUT=${2:-vhdx-pairs.jsonl}; D=${3:-${TMPDIR:-/tmp}/blockscope-vhdx-bench}
WL=4k-randwrite-qd32,128k-seqwrite-qd8
mkdir -p "$D"
run() {
  local name=$1; shift
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  local j; j=$($B bench "$D" --ios 100000 --workloads $WL --output json "$@" 2>/dev/null | jq -c .)
  echo "{\"round\":$r,\"config\":\"$name\",\"load1\":$load,\"bench\":${j:-null}}" >> "$OUT"
}
fiorun() { # name, iodepth
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  [ -f "$D/fio.raw" ] || { fallocate -l 1G "$D/fio.raw"; dd if=/dev/urandom of="$D/fio.raw" bs=1M count=1024 oflag=direct status=none; }
  printf '[f]\nfilename=%s\nrw=write\nbs=128k\niodepth=%s\ndirect=1\nioengine=io_uring\nnumber_ios=6250\nsize=1G\n' "$D/fio.raw" "$2" > "$D/f.fio"
  local iops; iops=$(fio "$D/f.fio" --output-format=json | jq '.jobs[0].write.iops')
  echo "{\"round\":$r,\"config\":\"$1\",\"load1\":$load,\"fio_iops\":$iops}" >> "$OUT"
}
CONFIGS=(
 "raw-uring-prefill --formats raw --engines uring --prefill --no-peers"
 "vhdx-uring-prefill --formats vhdx --engines uring --prefill"
 "vhdx-sync-prefill --formats vhdx --engines sync --prefill --no-peers"
 "fio-128k-qd8"
 "fio-128k-qd1"
 "vhdx-fixed-uring --formats vhdx --engines uring --create-options subformat=fixed,block_state_zero=off"
 "vhdx-fixed-sync --formats vhdx --engines sync --create-options subformat=fixed,block_state_zero=off --no-peers"
 "raw-uring-fresh --formats raw --engines uring --no-peers"
 "vhdx-uring-fresh --formats vhdx --engines uring"
 "vhdx-sync-fresh --formats vhdx --engines sync --no-peers"
)
for r in $(seq 1 "$ROUNDS"); do
  idx=$(seq 0 $((${#CONFIGS[@]} - 1))); [ $((r % 2)) = 0 ] && idx=$(seq $((${#CONFIGS[@]} - 1)) -1 0)
  for i in $idx; do
    set -- ${CONFIGS[$i]}
    case $1 in
      fio-128k-qd8) fiorun "$1" 8 ;;
      fio-128k-qd1) fiorun "$1" 1 ;;
      *) name=$1; shift; run "$name" "$@" ;;
    esac
  done
done
rm -f "$D/fio.raw" "$D/f.fio"
