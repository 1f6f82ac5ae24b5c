#!/bin/bash
# blockscope serve vs qemu-nbd --aio=io_uring: the same image, the same fio nbd job,
# interleaved rounds (the server order alternates each round), medians of IOPS.
# CACHE=writeback (default): both servers use the page cache (qemu-nbd --cache=writeback,
# blockscope --cache writeback); CACHE=none: O_DIRECT in both (--cache=none / --cache none).
# Each measurement starts a fresh server; "fresh" images are recreated first.
#   N=3 RUNTIME=8 bash scripts/perf/nbd-vs-qemu-nbd.sh
#   CACHE=none N=3 RUNTIME=8 bash scripts/perf/nbd-vs-qemu-nbd.sh
#   ONLY="fresh.qcow2 randwrite 4k" N=7 bash scripts/perf/nbd-vs-qemu-nbd.sh
# Needs a release build (swift build -c release), fio with ioengine=nbd, qemu-nbd.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-$ROOT/.build/release/blockscope}
N=${N:-3}
RUNTIME=${RUNTIME:-8}
SIZE=${SIZE:-1G}
D=${D:-/var/tmp/blockscope-nbd-perf}
CACHE=${CACHE:-writeback}
mkdir -p "$D"; cd "$D" || exit 1
S=$D/s.sock
SERVER=""
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null' EXIT

make_image() { # name
  case $1 in
    alloc.qcow2) [ -f alloc.qcow2 ] || qemu-img create -q -f qcow2 -o preallocation=full alloc.qcow2 $SIZE ;;
    fresh.qcow2) rm -f fresh.qcow2; qemu-img create -q -f qcow2 fresh.qcow2 $SIZE ;;
    fixed.vhdx)  [ -f fixed.vhdx ] || qemu-img create -q -f vhdx -o subformat=fixed fixed.vhdx $SIZE ;;
  esac
}
fmt() { case $1 in *.qcow2) echo qcow2 ;; *.vhdx) echo vhdx ;; *) echo raw ;; esac; }

start() { # server image
  rm -f "$S"
  if [ "$1" = qemu ]; then qemu-nbd -f "$(fmt "$2")" -t -k "$S" --aio=io_uring --cache=$CACHE "$2" 2>/dev/null &
  else "$B" serve "$2" --write --cache $CACHE --socket "$S" 2>/dev/null &
  fi
  SERVER=$!
  for _ in $(seq 400); do [ -S "$S" ] && return 0; sleep 0.025; done
  echo "server $1 did not start" >&2; return 1
}
stop() { kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; SERVER=""; }

job() { # rw bs -> IOPS
  fio --name=j --ioengine=nbd --uri="nbd+unix:///?socket=$S" --rw=$1 --bs=$2 --iodepth=32 --size=$SIZE \
      --time_based --runtime=$RUNTIME --randrepeat=0 --output-format=json --output="$D/fio.json" >/dev/null 2>&1
  python3 -c "import json; j=json.load(open('$D/fio.json'))['jobs'][0]; print(round(j['read']['iops'] + j['write']['iops']))"
}

cases=(
  "alloc.qcow2 randread 4k"
  "alloc.qcow2 randwrite 4k"
  "alloc.qcow2 write 128k"
  "fresh.qcow2 randwrite 4k"
  "fresh.qcow2 write 128k"
  "fixed.vhdx randread 4k"
  "fixed.vhdx randwrite 4k"
  "fixed.vhdx write 128k"
)
# ONLY="fresh.qcow2 randwrite 4k" runs one case.
[ -n "${ONLY:-}" ] && cases=("$ONLY")
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "cache=$CACHE rounds=$N runtime=${RUNTIME}s size=$SIZE"
printf '| image | job (QD32) | qemu-nbd IOPS | blockscope IOPS | ratio | rounds (q/b) |\n|---|---|---|---|---|---|\n'
for c in "${cases[@]}"; do
  set -- $c; img=$1 rw=$2 bs=$3
  qs=(); bs_=()
  for i in $(seq 1 $N); do
    order=(qemu blockscope); [ $((i % 2)) -eq 0 ] && order=(blockscope qemu)
    for srv in "${order[@]}"; do
      make_image "$img"; sync
      start $srv "$D/$img" || exit 1
      v=$(job $rw $bs)
      stop
      if [ $srv = qemu ]; then qs+=($v); else bs_+=($v); fi
    done
  done
  mq=$(median "${qs[@]}"); mb=$(median "${bs_[@]}")
  ratio=$(python3 -c "print(round($mb/$mq, 2) if $mq else 0)")
  printf '| %s | %s %s | %s | %s | %sx | %s / %s |\n' "$img" "$rw" "$bs" "$mq" "$mb" "$ratio" "${qs[*]}" "${bs_[*]}"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
