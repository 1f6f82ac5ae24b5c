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
KERNEL=${VM_KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -1)}
KVER=${KERNEL#/boot/vmlinuz-}
MODDIR=/lib/modules/$KVER/kernel/drivers
W=$(mktemp -d /tmp/blockscope-vhcpu.XXXXXX)
SERVER=""
cleanup() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi; rm -rf "$W"; }
trap cleanup EXIT
TCK=$(getconf CLK_TCK)

qemu-img create -q -f qcow2 "$W/master.qcow2" 256M
qemu-io -f qcow2 -c "write -P 0x11 0 256M" "$W/master.qcow2" >/dev/null   # every cluster allocated

I=$W/initramfs
mkdir -p "$I"/{bin,dev,proc,sys,tmp,mod}
cp /bin/busybox "$I/bin/busybox"
for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_modern_dev virtio/virtio_pci_legacy_dev virtio/virtio_pci block/virtio_blk; do
  cp "$MODDIR/$m.ko" "$I/mod/"
done
${CC:-cc} -static -O2 -o "$I/bin/vhost-load" "$ROOT/scripts/perf/vhost-load.c" -luring
cat > "$I/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do insmod /mod/\$m.ko; done
n=0; while [ ! -b /dev/vda ] && [ \$n -lt 600 ]; do sleep 0.1; n=\$((n+1)); done
echo CPU-MARK
sleep 1
vhost-load /dev/vda $JOB $BS 32 $SECS 268435456
echo PERF-DONE
poweroff -f
INIT
chmod +x "$I/init"
(cd "$I" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$W/initrd.gz"

cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }
run() {
  local who=$1 sock=$W/vu.sock
  cp "$W/master.qcow2" "$W/disk.qcow2"
  rm -f "$sock" "$W/console.log"
  if [ "$who" = qsd ]; then
    qemu-storage-daemon --blockdev driver=file,node-name=f,filename="$W/disk.qcow2",aio=io_uring,cache.direct=off \
      --blockdev driver=qcow2,node-name=q,file=f,discard=unmap \
      --export type=vhost-user-blk,id=e,node-name=q,addr.type=unix,addr.path="$sock",writable=on,num-queues=2 2> "$W/server.log" &
  else
    local bin=$BIN
    [ "$who" = base ] && bin=$BASE_BIN
    "$bin" serve "$W/disk.qcow2" --write --vhost-user "$sock" --queues 2 2> "$W/server.log" &
  fi
  SERVER=$!
  for _ in $(seq 600); do [ -S "$sock" ] && break; sleep 0.05; done
  timeout 600 qemu-system-x86_64 -accel tcg -m 256 -smp 2 -nographic -no-reboot \
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
    -chardev socket,id=c0,path="$sock" -device vhost-user-blk-pci,chardev=c0,num-queues=2 \
    -kernel "$KERNEL" -initrd "$W/initrd.gz" -append "console=ttyS0 panic=-1 quiet" > "$W/console.log" 2>&1 &
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
