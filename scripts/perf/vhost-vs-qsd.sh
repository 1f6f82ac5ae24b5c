#!/usr/bin/env bash
# blockscope serve --vhost-user beside qemu-storage-daemon's vhost-user-blk export, on the
# same allocated QCOW2 and the same TCG guest (2 vCPUs, num-queues=2, 256 MiB memfd): a
# static io_uring load generator (scripts/perf/vhost-load.c) in the initramfs runs 4 KiB
# random read and write at QD32 and 128 KiB sequential write at QD32 against /dev/vda, each
# for SECONDS. Servers alternate round by round (ROUNDS of each); a fresh server and a
# fresh copy of the image per run. One line per job and server: `PERF <server> <job> iops mibs`.
#   scripts/perf/vhost-vs-qsd.sh [ROUNDS] [SECONDS]
# BLOCKSCOPE_BIN picks the binary (default: the release build); SERVERS the servers of each
# round, in order (default "blockscope qsd nbd"; nbd is blockscope's own NBD export of the
# image, `serve --write --socket`, attached through QEMU's NBD client as a virtio-blk-pci
# disk with num-queues=2, the same guest otherwise).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BLOCKSCOPE_BIN:-$ROOT/.build/release/blockscope}
ROUNDS=${1:-2}
SECS=${2:-10}

source "$ROOT/scripts/perf/vhost-guest.sh"
vhost_setup vhperf
vhost_guest_build "$W" "vhost-load /dev/vda randread 4096 32 $SECS 268435456
vhost-load /dev/vda randwrite 4096 32 $SECS 268435456
vhost-load /dev/vda seqwrite 131072 32 $SECS 268435456
echo PERF-DONE"

run() {
  local who=$1 sock=$W/vu.sock
  vhost_server "$who" "$sock" "$W/server.log"
  vhost_guest "$sock" "$W/console.log" || true
  kill -TERM $SERVER; wait $SERVER || true; SERVER=""
  tr -d "\r" < "$W/console.log" | grep -o "LOAD .*" | while read -r _ mode _ _ _ _ iops mibs; do
    echo "PERF $who $mode ${iops#iops=} ${mibs#mibs=}"
  done
  grep -q PERF-DONE "$W/console.log" || { echo "vhost-vs-qsd: the $who run did not finish" >&2; tail -20 "$W/console.log" >&2; }
}
echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) rounds $ROUNDS seconds $SECS"
for r in $(seq "$ROUNDS"); do
  for s in ${SERVERS:-blockscope qsd nbd}; do run "$s"; done
done
