#!/usr/bin/env bash
# blockscope serve --vhost-user beside qemu-storage-daemon's vhost-user-blk export, on the
# same allocated QCOW2 and the same TCG guest (2 vCPUs, num-queues=2, 256 MiB memfd): a
# static io_uring load generator (scripts/perf/vhost-load.c) in the initramfs runs 4 KiB
# random read and write at QD32 and 128 KiB sequential write at QD32 against /dev/vda, each
# for SECONDS. Servers alternate round by round (ROUNDS of each); a fresh server and a
# fresh copy of the image per run. One line per job and server: `PERF <server> <job> iops mibs`.
#   scripts/perf/vhost-vs-qsd.sh [ROUNDS] [SECONDS]
# BLOCKSCOPE_BIN picks the binary (default: the release build).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BLOCKSCOPE_BIN:-$ROOT/.build/release/blockscope}
ROUNDS=${1:-2}
SECS=${2:-10}
KERNEL=${VM_KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -1)}
KVER=${KERNEL#/boot/vmlinuz-}
MODDIR=/lib/modules/$KVER/kernel/drivers
W=$(mktemp -d /tmp/blockscope-vhperf.XXXXXX)
SERVER=""
cleanup() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi; rm -rf "$W"; }
trap cleanup EXIT

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
vhost-load /dev/vda randread 4096 32 $SECS 268435456
vhost-load /dev/vda randwrite 4096 32 $SECS 268435456
vhost-load /dev/vda seqwrite 131072 32 $SECS 268435456
echo PERF-DONE
poweroff -f
INIT
chmod +x "$I/init"
(cd "$I" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$W/initrd.gz"

run() {
  local who=$1 sock=$W/vu.sock
  cp "$W/master.qcow2" "$W/disk.qcow2"
  rm -f "$sock"
  if [ "$who" = qsd ]; then
    qemu-storage-daemon --blockdev driver=file,node-name=f,filename="$W/disk.qcow2",aio=io_uring,cache.direct=off \
      --blockdev driver=qcow2,node-name=q,file=f,discard=unmap \
      --export type=vhost-user-blk,id=e,node-name=q,addr.type=unix,addr.path="$sock",writable=on,num-queues=2 2> "$W/server.log" &
  else
    "$BIN" serve "$W/disk.qcow2" --write --vhost-user "$sock" --queues 2 2> "$W/server.log" &
  fi
  SERVER=$!
  for _ in $(seq 600); do [ -S "$sock" ] && break; sleep 0.05; done
  timeout 600 qemu-system-x86_64 -accel tcg -m 256 -smp 2 -nographic -no-reboot \
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
    -chardev socket,id=c0,path="$sock" -device vhost-user-blk-pci,chardev=c0,num-queues=2 \
    -kernel "$KERNEL" -initrd "$W/initrd.gz" -append "console=ttyS0 panic=-1 quiet" > "$W/console.log" 2>&1 || true
  kill -TERM $SERVER; wait $SERVER || true; SERVER=""
  tr -d "\r" < "$W/console.log" | grep -o "LOAD .*" | while read -r _ mode _ _ _ _ iops mibs; do
    echo "PERF $who $mode ${iops#iops=} ${mibs#mibs=}"
  done
  grep -q PERF-DONE "$W/console.log" || { echo "vhost-vs-qsd: the $who run did not finish" >&2; tail -20 "$W/console.log" >&2; }
}
echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) rounds $ROUNDS seconds $SECS"
for r in $(seq "$ROUNDS"); do
  run blockscope
  run qsd
done
