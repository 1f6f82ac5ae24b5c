#!/bin/bash
# 4k random writes QD32 O_DIRECT on allocated QCOW2 clusters vs fio on a raw file (and
# blockscope on the same raw file), images created once and synced before timing; the order
# rotates each round. Usage: N=8 bash pairs-alloc.sh
B=${B:-.build/release/blockscope}
N=${N:-8}
D=${D:-${TMPDIR:-/tmp}/blockscope-perf-q}; mkdir -p $D; cd $D; [ -f bench.raw ] || fallocate -l 1G bench.raw; [ -f r4k.fio ] || { echo "run qcow2-write-bench.sh first (it writes the job files)"; exit 1; }
j() { python3 -c "import json,sys; d=json.load(sys.stdin); j=d['jobs'][0]; print(round(j['write']['iops']))"; }
rm -f pa.qcow2; qemu-img create -q -f qcow2 -o preallocation=full pa.qcow2 1G; sync; sleep 5
for i in $(seq 1 $N); do
  declare -A r
  order=(q f r); [ $((i % 3)) -eq 1 ] && order=(f r q); [ $((i % 3)) -eq 2 ] && order=(r q f)
  for k in "${order[@]}"; do
    case $k in
      q) r[q]=$($B run --write pa.qcow2 r4k.fio --output=json | j) ;;
      f) r[f]=$(fio f-r4k.fio --output-format=json | j) ;;
      r) r[r]=$($B run --write bench.raw r4k.fio --output=json | j) ;;
    esac
  done
  echo "round $i qcow2=${r[q]} fio-raw=${r[f]} bs-raw=${r[r]} qcow2/fio=$(python3 -c "print(round(${r[q]}/${r[f]},2))") bs-raw/fio=$(python3 -c "print(round(${r[r]}/${r[f]},2))") load=$(cut -d' ' -f1 /proc/loadavg)"
done
