#!/bin/bash
# A/B of two blockscope builds (or one build with extra flags) on tmpfs, where 4 KiB random
# writes are CPU-bound, so the engine's own cost shows in IOPS and in the job thread's user
# CPU per I/O. RAW and QCOW2 (preallocation=full), 300,000 writes QD32 (buffered: tmpfs has no
# O_DIRECT); the order alternates each round. Prints "round image A: IOPS user-ns/io B: ...".
#   Usage: [XA=flags] [XB=flags] [IMGS="ab.raw ab.qcow2"] N=8 bash scripts/perf/tmpfs-ab.sh BUILD_A BUILD_B
set -e
A=$(realpath "$1"); B=$(realpath "$2"); N=${N:-8}
D=${D:-/dev/shm/blockscope-ab}; mkdir -p "$D"; cd "$D"
[ -f ab.raw ] || fallocate -l 256M ab.raw
[ -f ab.qcow2 ] || qemu-img create -q -f qcow2 -o preallocation=full ab.qcow2 256M
printf '[w]\nrw=randwrite\nbs=4k\niodepth=32\nnumber_ios=300000\nsize=256M\nrandseed=1\n' > ab.fio
m() { "$@" --output=json 2>/dev/null | python3 -c "
import json,sys; j=json.load(sys.stdin)['jobs'][0]; b=j['blockscope']; print(round(j['write']['iops']), round(b['user_cpu_ns']/j['write']['total_ios'],1))"; }
for i in $(seq 1 $N); do
  for img in ${IMGS:-ab.raw ab.qcow2}; do
    if [ $((i % 2)) -eq 1 ]; then a=$(m $A run --write $img ab.fio $XA); b=$(m $B run --write $img ab.fio $XB)
    else b=$(m $B run --write $img ab.fio $XB); a=$(m $A run --write $img ab.fio $XA); fi
    echo "$i $img A: $a B: $b"
  done
done
