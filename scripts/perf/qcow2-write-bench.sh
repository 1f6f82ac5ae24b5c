#!/bin/bash
# QCOW2 write benchmarks for issue 5, side by side with fio (raw file, io_uring, O_DIRECT)
# and qemu-img bench (-i io_uring -t none). Each round runs every row once, alternating
# tools, so load changes hit all of them alike. Usage: N=5 bash bench-q.sh > results.txt
B=${B:-.build/release/blockscope}
N=${N:-5}
D=${D:-${TMPDIR:-/tmp}/blockscope-perf-q}; mkdir -p $D
cd $D
j() { python3 -c "import json,sys; d=json.load(sys.stdin); j=d['jobs'][0]; print($1)"; }
wiops="round(j['write']['iops'])"
miops="round(j['write']['iops']+j['read']['iops'])"
sp50="round(j['sync']['lat_ns']['percentile']['50.000000']/1000,1)"
sp99="round(j['sync']['lat_ns']['percentile']['99.000000']/1000,1)"
qb() { "$@" 2>&1 | python3 -c "
import sys,re
t=sys.stdin.read(); m=re.search(r'Run completed in ([0-9.]+) seconds',t); print(m.group(1) if m else 'NA')"; }
[ -f bench.raw ] || fallocate -l 1G bench.raw
mk() { rm -f $1; qemu-img create -q -f qcow2 $2 $1 1G; }
job() { # name rw bs qd extra
cat > $1 <<J
[$1]
rw=$2
bs=$3
iodepth=$4
direct=1
size=1G
$5
J
}
job r4k.fio randwrite 4k 32 "number_ios=150000
randseed=1"
job s4k.fio write 4k 32 "number_ios=100000"
job k4k.fio write:60k 4k 32 "number_ios=16000"
job s128k.fio write 128k 8 "number_ios=8000"
job mix.fio randrw 4k 32 "rwmixread=70
number_ios=150000"
job fs.fio randwrite 4k 1 "fsync=1
number_ios=3000"
fio_job() { # name rw bs qd extra
cat > f-$1 <<J
[$1]
filename=$D/bench.raw
ioengine=io_uring
rw=$2
bs=$3
iodepth=$4
direct=1
size=1G
norandommap
randrepeat=0
$5
J
}
fio_job r4k.fio randwrite 4k 32 "number_ios=150000"
fio_job s128k.fio write 128k 8 "number_ios=8000"
fio_job mix.fio randrw 4k 32 "rwmixread=70
number_ios=150000"
fio_job fs.fio randwrite 4k 1 "fdatasync=1
number_ios=3000"
# The host's fdatasync latency (the syscall start to end): fio's io_uring engine stamps its
# issue time after io_uring_enter returns, so its sync latency leaves the submit out.
sed 's/ioengine=io_uring/ioengine=psync/' f-fs.fio > f-fs-psync.fio
for i in $(seq 1 $N); do
  echo "== round $i load $(cut -d' ' -f1 /proc/loadavg)"
  # 4k random writes QD32, allocated clusters (preallocation=full: every cluster allocated and written)
  mk alloc.qcow2 "-o preallocation=full"
  a=$($B run --write alloc.qcow2 r4k.fio --output=json | j "$wiops")
  f=$(fio f-r4k.fio --output-format=json | j "$wiops")
  s=$($B run --write --engine sync alloc.qcow2 r4k.fio --output=json | j "$wiops")
  echo "r4k-allocated blockscope=$a fio-raw=$f ratio=$(python3 -c "print(round($a/$f,2))") sync=$s async/sync=$(python3 -c "print(round($a/$s,2))")"
  # 4k random writes QD32 that allocate (fresh image)
  mk fresh.qcow2 ""
  a=$($B run --write fresh.qcow2 r4k.fio --output=json | j "$wiops")
  mk fresh.qcow2 ""
  s=$($B run --write --engine sync fresh.qcow2 r4k.fio --output=json | j "$wiops")
  echo "r4k-fresh blockscope=$a sync=$s async/sync=$(python3 -c "print(round($a/$s,2))")"
  # 4k sequential writes QD32 on a fresh image: the pattern qemu-img bench writes
  mk fresh.qcow2 ""
  a=$($B run --write fresh.qcow2 s4k.fio --output=json | j "$wiops")
  mk fresh.qcow2 ""
  t=$(qb qemu-img bench -w -f qcow2 -t none -i io_uring -c 100000 -d 32 -s 4k fresh.qcow2)
  q=$(python3 -c "print(round(100000/$t))")
  echo "s4k-fresh blockscope=$a qemu-img-bench=$q ratio=$(python3 -c "print(round($a/$q,2))")"
  # 4k writes at every 64k QD32 on a fresh image: every write allocates a cluster (qemu-img bench -S 64k)
  mk fresh.qcow2 ""
  a=$($B run --write fresh.qcow2 k4k.fio --output=json | j "$wiops")
  mk fresh.qcow2 ""
  t=$(qb qemu-img bench -w -f qcow2 -t none -i io_uring -c 16000 -d 32 -s 4k -S 64k fresh.qcow2)
  q=$(python3 -c "print(round(16000/$t))")
  echo "k4k-fresh-every-cluster blockscope=$a qemu-img-bench=$q ratio=$(python3 -c "print(round($a/$q,2))")"
  # 128k sequential writes QD8 on a fresh image
  mk fresh.qcow2 ""
  a=$($B run --write fresh.qcow2 s128k.fio --output=json | j "$wiops")
  f=$(fio f-s128k.fio --output-format=json | j "$wiops")
  mk fresh.qcow2 ""
  t=$(qb qemu-img bench -w -f qcow2 -t none -i io_uring -c 8000 -d 8 -s 128k fresh.qcow2)
  q=$(python3 -c "print(round(8000/$t))")
  echo "s128k-fresh blockscope=$a fio-raw=$f ratio=$(python3 -c "print(round($a/$f,2))") qemu-img-bench=$q ratio=$(python3 -c "print(round($a/$q,2))")"
  # 70/30 random mix QD32 on allocated clusters
  mk alloc.qcow2 "-o preallocation=full"
  a=$($B run --write alloc.qcow2 mix.fio --output=json | j "$miops")
  f=$(fio f-mix.fio --output-format=json | j "$miops")
  echo "mix70-30 blockscope=$a fio-raw=$f ratio=$(python3 -c "print(round($a/$f,2))")"
  # fsync latency: 4k write + fsync QD1 on allocated clusters vs fio write + fdatasync on raw
  a=$($B run --write alloc.qcow2 fs.fio --output=json | j "($sp50, $sp99)")
  f=$(fio f-fs.fio --output-format=json | j "($sp50, $sp99)")
  h=$(fio f-fs-psync.fio --output-format=json | j "($sp50, $sp99)")
  mk fresh.qcow2 ""
  n=$($B run --write fresh.qcow2 fs.fio --output=json | j "($sp50, $sp99)")
  echo "fsync-us(p50,p99) blockscope-allocated=$a fio-raw=$f host-fdatasync(fio psync)=$h blockscope-fresh=$n"
done
