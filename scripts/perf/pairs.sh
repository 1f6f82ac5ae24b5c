#!/bin/bash
# RAW and QCOW2 (allocated clusters) 4 KiB random write QD32 O_DIRECT: blockscope `run` vs
# fio on the same job file, in interleaved rounds; the order of the runs rotates each round so
# load drifts hit every variant alike. Prints each round's IOPS and ratios, then the medians.
#
#   B=path/to/blockscope            the build under test (release: swift build -c release --build-path .build-rel)
#   BASE=path/to/other/blockscope   optional: a second build (e.g. main) measured in the same rounds
#   REG=1                           optional: also run B with the hidden --inflight-registry=0
#                                   (every queue tracked, nobody looks) and =33 (a snapshot every 33 ms)
#   N=8 D=/tmp/perf-pairs           rounds and scratch directory
# Usage: B=.build-rel/release/blockscope BASE=/tmp/base/.build-rel/release/blockscope REG=1 N=8 bash scripts/perf/pairs.sh
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
B=${B:-.build-rel/release/blockscope}
N=${N:-8}
D=${D:-/tmp/perf-pairs}
B=$(realpath "$B"); [ -n "$BASE" ] && BASE=$(realpath "$BASE")
mkdir -p "$D"; cd "$D"
[ -f bench.raw ] || fallocate -l 1G bench.raw
[ -f alloc.qcow2 ] || qemu-img create -q -f qcow2 -o preallocation=full alloc.qcow2 1G
# One job file: blockscope reads it with filename= ignored (the image is the argument), fio
# runs it on the raw file. Random offsets over the whole GiB, 150,000 writes.
cat > job.fio <<J
[rw4k]
filename=$D/bench.raw
rw=randwrite
bs=4k
iodepth=32
direct=1
ioengine=io_uring
number_ios=150000
size=1G
norandommap
randrepeat=0
randseed=1
J
sync; sleep 3
iops() { python3 -c "import json,sys; d=json.load(sys.stdin); print(round(d['jobs'][0]['write']['iops']))"; }
variants=(fio new)
[ -n "$BASE" ] && variants+=(base)
[ -n "$REG" ] && variants+=(reg0 reg33)
declare -A all
measure() { if [ "$1" = fio ]; then fio job.fio --output-format=json | iops; else run_variant "$1" "$2" | iops; fi; }
report() {
  local line="round $1 $2:" v q
  for v in "${variants[@]}"; do line+=" $v=${r[$v]}"; done
  for v in "${variants[@]}"; do
    [ $v = fio ] && continue
    q=$(python3 -c "print(round(${r[$v]}/${r[fio]},3))"); all[$2.$v/fio]+="$q "; line+=" $v/fio=$q"
    if [ -n "$BASE" ] && [ $v != base ]; then
      q=$(python3 -c "print(round(${r[$v]}/${r[base]},3))"); all[$2.$v/base]+="$q "; line+=" $v/base=$q"
    fi
  done
  echo "$line load=$(cut -d' ' -f1 /proc/loadavg)"
}
source "$HERE/rounds.sh"
rounds
echo "medians over $N rounds:"
for key in $(echo "${!all[@]}" | tr ' ' '\n' | sort); do
  echo "  $key: $(python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(round(statistics.median(v),3), '(', min(v), '-', max(v), ')')" ${all[$key]})"
done
