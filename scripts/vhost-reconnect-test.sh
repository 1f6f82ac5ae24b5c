#!/usr/bin/env bash
# A vhost-user-blk back end killed (SIGKILL) while a guest writes, and started again:
# INFLIGHT_SHMFD. qemu-system-x86_64 (TCG, 2 vCPUs, shared memfd memory) connects with
# `reconnect=1` on its chardev, so when the server dies QEMU stops the device, keeps the
# inflight region it got with GET_INFLIGHT_FD, reconnects to the new server and hands the
# region back with SET_INFLIGHT_FD; the new server serves again the requests the old one
# had taken. The guest writes 4 payloads of PAYLOAD_KB KiB with O_DIRECT from 4 parallel
# dd (so several requests are in the ring at once) and then reads them back; the host
# kills the server RESTARTS times while the writes run (each time a further share of the
# bytes has reached the image), then checks the guest's read-back, the image (qemu-img convert + cmp)
# and `qemu-img check`.
#   scripts/vhost-reconnect-test.sh          (BLOCKSCOPE_BIN, PAYLOAD_KB=8192, RESTARTS=3)
#   VHOST_BACKEND=qsd scripts/vhost-reconnect-test.sh   the same against qemu-storage-daemon
#   VHOST_FORMAT=qcow2 ...   a QCOW2 instead of RAW. The guest's O_DIRECT writes are not
#   followed by FLUSH, and a back end keeps QCOW2 metadata (new clusters' L2 entries) in
#   its own memory until a flush, so a killed back end may lose completed, unflushed writes
#   there; RAW has no such metadata (what was written is in the host's page cache).
# Needs what scripts/vhost-test.sh needs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BLOCKSCOPE_BIN:-$ROOT/.build/debug/blockscope}
BACKEND=${VHOST_BACKEND:-blockscope}
KERNEL=${VM_KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -1)}
KVER=${KERNEL#/boot/vmlinuz-}
MODDIR=/lib/modules/$KVER/kernel/drivers
PAYLOAD_KB=${PAYLOAD_KB:-8192}
RESTARTS=${RESTARTS:-3}
TIMEOUT=${VM_TIMEOUT:-900}
W=$(mktemp -d /tmp/blockscope-vhreconnect.XXXXXX)
SERVER=""; VM=""
cleanup() {
  for p in $SERVER $VM; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
md5() { md5sum | cut -d' ' -f1; }
FORMAT=${VHOST_FORMAT:-raw}
DISK=$W/disk.$FORMAT
qemu-img create -q -f "$FORMAT" "$DISK" 64M
for p in 0 1 2 3; do head -c $((PAYLOAD_KB * 1024)) /dev/urandom > "$W/p$p.bin"; done
BLOCKS=$((PAYLOAD_KB / 64))

I=$W/initramfs
mkdir -p "$I"/{bin,dev,proc,sys,tmp,mod}
cp /bin/busybox "$I/bin/busybox"
for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_modern_dev virtio/virtio_pci_legacy_dev virtio/virtio_pci block/virtio_blk; do
  src=$MODDIR/$m.ko
  if [ -e "$src" ]; then cp "$src" "$I/mod/"; elif [ -e "$src.xz" ]; then xz -dc "$src.xz" > "$I/mod/$(basename "$m").ko"; fi
done
cp "$W"/p?.bin "$I/"
cat > "$I/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
  [ -e /mod/\$m.ko ] && insmod /mod/\$m.ko
done
n=0; while [ ! -b /dev/vda ] && [ \$n -lt 600 ]; do sleep 0.1; n=\$((n+1)); done
rd() { dd if=/dev/vda bs=64k skip=\$1 count=\$2 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1; }
echo "RECONNECT-WRITING"
for p in 0 1 2 3; do
  ( dd if=/p\$p.bin of=/dev/vda bs=64k seek=\$((p * $BLOCKS * 2)) oflag=direct 2>/dev/null && echo ok > /tmp/done\$p || echo "RECONNECT-FAIL p\$p" ) &
done
wait
[ -e /tmp/done0 ] && [ -e /tmp/done1 ] && [ -e /tmp/done2 ] && [ -e /tmp/done3 ] && echo "RECONNECT-WROTE"
echo "RECONNECT-READBACK \$(rd 0 $BLOCKS) \$(rd $((BLOCKS * 2)) $BLOCKS) \$(rd $((BLOCKS * 4)) $BLOCKS) \$(rd $((BLOCKS * 6)) $BLOCKS)"
sync
echo "RECONNECT-DONE"
poweroff -f
INIT
chmod +x "$I/init"
(cd "$I" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$W/initrd.gz"

SOCK=$W/vu.sock
n=0
start_server() {
  n=$((n + 1))
  rm -f "$SOCK"
  if [ "$BACKEND" = qsd ]; then
    qemu-storage-daemon --blockdev driver=file,node-name=f,filename="$DISK" --blockdev driver=$FORMAT,node-name=q,file=f \
      --export type=vhost-user-blk,id=e,node-name=q,addr.type=unix,addr.path="$SOCK",writable=on,num-queues=2 2> "$W/serve$n.log" &
  else
    "$BIN" serve "$DISK" --write --vhost-user "$SOCK" --queues 2 2> "$W/serve$n.log" &
  fi
  SERVER=$!
  for _ in $(seq 600); do [ -S "$SOCK" ] && break; sleep 0.05; done
}
fail() { echo "vhost-reconnect-test ($BACKEND, $FORMAT): FAIL: $*"; for f in "$W"/serve*.log; do echo "--- $f"; cat "$f"; done; echo "--- console"; tr -d '\r' < "$W/console.log" | tail -30; exit 1; }

start_server
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -m 256 -smp 2 -nographic -no-reboot \
  -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
  -chardev socket,id=c0,path="$SOCK",reconnect=1 -device vhost-user-blk-pci,chardev=c0,num-queues=2 \
  -kernel "$KERNEL" -initrd "$W/initrd.gz" -append "console=ttyS0 panic=-1 quiet" > "$W/console.log" 2>&1 &
VM=$!
# Kill when the guest's writes have reached the image since the last restart (RAW: its
# allocated bytes grow; QCOW2: its file grows), never at a fixed time.
grown() { echo $(( $(stat -c '%b * %B' "$DISK") )); }
TOTAL=$((4 * PAYLOAD_KB * 1024))
for k in $(seq "$RESTARTS"); do
  for _ in $(seq 60000); do [ "$(grown)" -ge $((k * TOTAL / (RESTARTS + 1))) ] && break; kill -0 $VM 2>/dev/null || break; sleep 0.01; done
  kill -0 $VM 2>/dev/null || fail "the VM ended before restart $k"
  kill -9 $SERVER; wait $SERVER 2>/dev/null || true
  echo "killed the server during the writes ($(grown) bytes allocated in the image)"
  start_server
done
wait $VM || true; VM=""
C=$(tr -d '\r' < "$W/console.log")
kill -TERM $SERVER; wait $SERVER || true; SERVER=""
echo "$C" | grep -q RECONNECT-DONE || fail "the guest did not finish"
echo "$C" | grep -q RECONNECT-WROTE || fail "a guest write failed"
WANT="$(md5 < "$W/p0.bin") $(md5 < "$W/p1.bin") $(md5 < "$W/p2.bin") $(md5 < "$W/p3.bin")"
echo "$C" | grep -q "RECONNECT-READBACK $WANT" || fail "the guest reads back other bytes than it wrote"
qemu-img convert -f "$FORMAT" -O raw "$DISK" "$W/host.raw"
for p in 0 1 2 3; do
  cmp -s <(dd if="$W/host.raw" bs=64k skip=$((p * BLOCKS * 2)) count=$BLOCKS status=none) "$W/p$p.bin" || fail "host view of payload $p differs"
done
[ "$FORMAT" = raw ] || qemu-img check -q -f "$FORMAT" "$DISK" || fail "qemu-img check found problems"
for f in "$W"/serve*.log; do grep -h "serving again\|disconnected\|inflight\|INFLIGHT" "$f" || true; done
echo "vhost-reconnect-test ($BACKEND, $FORMAT): PASS ($RESTARTS restarts, payload 4 x ${PAYLOAD_KB} KiB)"
