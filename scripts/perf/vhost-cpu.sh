#!/usr/bin/env bash
# Server CPU time per request on the vhost-user-blk path, blockscope beside
# qemu-storage-daemon: the same TCG guest and image as scripts/perf/vhost-vs-qsd.sh, one job
# (vhost-load JOB 4 KiB QD32 by default) per boot. The guest prints a mark, waits a second
# and runs the job; the host reads the server's utime + stime (/proc/PID/stat, all threads)
# at the mark and after the guest powers off, and divides by the requests the guest
# completed (its LOAD line). CPU per request hardly depends on how busy the machine is,
# unlike IOPS, so it can be compared on a shared machine. One line per run:
#   CPU <server> <job> ios=<N> user_us=<per request> sys_us=<per request> total_us=<per request>
#   scripts/perf/vhost-cpu.sh [ROUNDS] [SECONDS] [JOB] [BS]
# BLOCKSCOPE_BIN picks the binary (default: the release build); SERVERS="blockscope qsd" the
# servers run in each round, in that order; with BASE_BIN=another blockscope build, the
# server "base" runs it (SERVERS="base blockscope qsd" compares a change with its base).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BLOCKSCOPE_BIN:-$ROOT/.build/release/blockscope}
ROUNDS=${1:-3}
SECS=${2:-10}
JOB=${3:-randread}
BS=${4:-4096}
SERVERS=${SERVERS:-"blockscope qsd"}
TCK=$(getconf CLK_TCK)

source "$ROOT/scripts/perf/vhost-guest.sh"
vhost_setup vhcpu
vhost_guest_build "$W" "echo CPU-MARK
sleep 1
vhost-load /dev/vda $JOB $BS 32 $SECS 268435456
echo PERF-DONE"

cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }
run() {
  local who=$1 sock=$W/vu.sock
  rm -f "$W/console.log"
  vhost_server "$who" "$sock" "$W/server.log"
  vhost_guest "$sock" "$W/console.log" &
  local vm=$! before="" after
  while kill -0 $vm 2>/dev/null; do
    if [ -z "$before" ] && grep -q CPU-MARK "$W/console.log" 2>/dev/null; then before=$(cpu $SERVER); fi
    sleep 0.01
  done
  wait $vm || true
  after=$(cpu $SERVER)
  kill -TERM $SERVER; wait $SERVER || true; SERVER=""
  local ios
  ios=$(tr -d "\r" < "$W/console.log" | sed -n 's/.*LOAD .* ios=\([0-9]*\) .*/\1/p')
  if [ -z "$before" ] || [ -z "$ios" ]; then echo "vhost-cpu: the $who run did not finish" >&2; tail -5 "$W/console.log" >&2; return; fi
  python3 - "$who" "$JOB" "$ios" "$TCK" $before $after <<'PY'
import sys
who, job, ios, tck = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
u0, s0, u1, s1 = map(int, sys.argv[5:9])
us = lambda ticks: ticks * 1e6 / tck / ios
print(f"CPU {who} {job} ios={ios} user_us={us(u1 - u0):.2f} sys_us={us(s1 - s0):.2f} total_us={us(u1 - u0 + s1 - s0):.2f}")
PY
}
echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) rounds $ROUNDS seconds $SECS job $JOB bs $BS"
for r in $(seq "$ROUNDS"); do
  for s in $SERVERS; do run "$s"; done
done
