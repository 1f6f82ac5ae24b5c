#!/usr/bin/env bash
# Boots two Linux guests in turn (qemu-system-x86_64 -accel tcg, 2 vCPUs, shared memfd
# memory) on one vhost-user-blk disk with 2 queues, served by `blockscope serve --vhost-user`
# from a QCOW2 over a RAW backing file.
#   VM 1: reads a pattern from the backing file, writes a payload with O_DIRECT from each
#         vCPU at once (taskset: both virtqueues carry I/O), discards 1 MiB that the backing
#         file fills (blkdiscard: DISCARD), zeroes 64 KiB of each payload (fallocate
#         ZERO_RANGE and PUNCH_HOLE on /dev/vda, from a small static C helper: WRITE_ZEROES
#         without and with UNMAP; busybox has no blkdiscard -z), syncs, powers off.
#   VM 2: boots against the same still-running server, reads back what VM 1 left, writes a
#         marker and reboots (the device is reset and set up again on the same
#         connection); after the reboot it reads everything again and powers off.
# The host then stops the server with SIGTERM (exit 0), and checks with qemu-img: the bytes
# (convert + cmp), the discarded range unallocated and reading as zeroes (map), the
# backing file unchanged, a clean `qemu-img check`.
#
#   scripts/vhost-test.sh                      full run (payload 4 MiB per vCPU)
#   VHOST_TEST_REDUCED=1 scripts/vhost-test.sh reduced run for CI (256 KiB per vCPU)
#   VHOST_BACKEND=qsd scripts/vhost-test.sh    the same run with qemu-storage-daemon as the
#                                              server: the test is an independent oracle
#   VHOST_FORMAT=raw|vhdx|vpc scripts/vhost-test.sh   the disk in another format, without a
#                                              backing file (the patterns are written into it)
# Needs: qemu-system-x86 linux-image-amd64 busybox-static cpio, a C compiler with a static
# libc (scripts/install-deps.sh vm).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BLOCKSCOPE_BIN:-$ROOT/.build/debug/blockscope}
BACKEND=${VHOST_BACKEND:-blockscope}
FORMAT=${VHOST_FORMAT:-qcow2}
KERNEL=${VM_KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -1)}
KVER=${KERNEL#/boot/vmlinuz-}
MODDIR=/lib/modules/$KVER/kernel/drivers
BUSYBOX=${VM_BUSYBOX:-/bin/busybox}
PAYLOAD_KB=4096
[ "${VHOST_TEST_REDUCED:-0}" = 1 ] && PAYLOAD_KB=256
TIMEOUT=${VM_TIMEOUT:-600}

for f in "$KERNEL" "$BUSYBOX"; do [ -e "$f" ] || { echo "vhost-test: missing $f" >&2; exit 2; }; done
[ "$BACKEND" = qsd ] || [ -x "$BIN" ] || { echo "vhost-test: missing $BIN" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "vhost-test: qemu-system-x86_64 not installed" >&2; exit 2; }
[ "$BACKEND" != qsd ] || command -v qemu-storage-daemon >/dev/null || { echo "vhost-test: qemu-storage-daemon not installed" >&2; exit 2; }

W=$(mktemp -d /tmp/blockscope-vhost.XXXXXX)
SERVER=""
cleanup() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi; rm -rf "$W"; }
trap cleanup EXIT
t0=$(date +%s)
MiB=1048576

# Images: a 64 MiB RAW backing file (0x5a at 1-2 MiB, 0x33 at 4-6 MiB), a QCOW2 over it;
# for another format the disk itself holds the patterns.
qemu-img create -q -f raw "$W/base.raw" 64M
qemu-io -f raw -c "write -P 0x5a 1M 1M" -c "write -P 0x33 4M 2M" "$W/base.raw" >/dev/null
DISK=$W/disk.$FORMAT
case $FORMAT in
  qcow2) qemu-img create -q -f qcow2 -b "$W/base.raw" -F raw "$DISK" 64M ;;
  raw) cp "$W/base.raw" "$DISK" ;;
  vhdx) qemu-img create -q -f vhdx "$DISK" 64M; qemu-img convert -n -f raw -O vhdx "$W/base.raw" "$DISK" ;;
  vpc) qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$DISK" 64M; qemu-img convert -n -f raw -O vpc "$W/base.raw" "$DISK" ;;
  *) echo "vhost-test: VHOST_FORMAT must be qcow2, raw, vhdx or vpc" >&2; exit 2 ;;
esac
head -c $((PAYLOAD_KB * 1024)) /dev/urandom > "$W/a.bin"
head -c $((PAYLOAD_KB * 1024)) /dev/urandom > "$W/b.bin"
md5() { md5sum | cut -d' ' -f1; }
BASE_MD5=$(dd if="$W/base.raw" bs=1M skip=1 count=1 status=none | md5)
BASE_SUM_BEFORE=$(md5 < "$W/base.raw")
ZERO_MD5=$(head -c $MiB /dev/zero | md5)
KEPT_MD5=$(dd if="$W/base.raw" bs=1M skip=5 count=1 status=none | md5)
A_MD5=$(md5 < "$W/a.bin"); B_MD5=$(md5 < "$W/b.bin")
# What the discarded MiB may read as: zeroes where a discard deallocates (QCOW2: zero
# clusters, RAW: a hole); VHDX and VHD may keep a partly discarded block (a discard is
# advisory in virtio), so there the old bytes are accepted too.
DISC_MD5=$ZERO_MD5
case $FORMAT in vhdx|vpc) DISC_MD5="($ZERO_MD5|$(dd if="$W/base.raw" bs=1M skip=4 count=1 status=none | md5))" ;; esac
BLOCKS=$((PAYLOAD_KB / 64))

# The initramfs: busybox, the six virtio modules in load order, the payloads, an init
# script whose phase comes from the kernel command line (vhosttest=1 or 2).
I=$W/initramfs
mkdir -p "$I"/{bin,dev,proc,sys,tmp,mod}
cp "$BUSYBOX" "$I/bin/busybox"
for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_modern_dev virtio/virtio_pci_legacy_dev virtio/virtio_pci block/virtio_blk; do
  src=$MODDIR/$m.ko
  if [ -e "$src" ]; then cp "$src" "$I/mod/"; elif [ -e "$src.xz" ]; then xz -dc "$src.xz" > "$I/mod/$(basename "$m").ko"; fi
done
cp "$W/a.bin" "$W/b.bin" "$I/"
# fallocate(2) on the guest's block device: ZERO_RANGE is WRITE_ZEROES, PUNCH_HOLE is
# WRITE_ZEROES with UNMAP (Linux's blkdev_fallocate).
cat > "$W/zero.c" <<'C'
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
int main(int argc, char **argv) {
    if (argc != 5) return 2;
    int fd = open(argv[4], O_RDWR);
    int mode = strcmp(argv[1], "punch") == 0 ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE;
    if (fd < 0 || fallocate(fd, mode, atoll(argv[2]), atoll(argv[3])) != 0) { perror("fallocate"); return 1; }
    return 0;
}
C
${CC:-cc} -static -O2 -o "$I/bin/zero" "$W/zero.c" || { echo "vhost-test: cannot build the static zeroing helper" >&2; exit 2; }
cat > "$I/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
  [ -e /mod/\$m.ko ] && insmod /mod/\$m.ko
done
n=0; while [ ! -b /dev/vda ] && [ \$n -lt 600 ]; do sleep 0.1; n=\$((n+1)); done
[ -b /dev/vda ] || { echo "VHOSTTEST-FAIL no /dev/vda"; poweroff -f; }
rd() { dd if=/dev/vda bs=64k skip=\$1 count=\$2 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1; }
PHASE=\$(sed -n 's/.*vhosttest=\([0-9]\).*/\1/p' /proc/cmdline)
echo "VHOSTTEST-PHASE \$PHASE"
echo "VHOSTTEST-SIZE \$(cat /sys/block/vda/size)"
echo "VHOSTTEST-QUEUES \$(ls /sys/block/vda/mq | wc -l)"
if [ "\$PHASE" = 1 ]; then
  echo "VHOSTTEST-BACKING \$(rd 16 16)"
  taskset -c 0 dd if=/a.bin of=/dev/vda bs=64k seek=128 oflag=direct 2>/dev/null && echo ok > /tmp/a &
  taskset -c 1 dd if=/b.bin of=/dev/vda bs=64k seek=256 oflag=direct 2>/dev/null && echo ok > /tmp/b &
  wait
  [ -e /tmp/a ] && [ -e /tmp/b ] && echo "VHOSTTEST-WROTE"
  echo "VHOSTTEST-READBACK \$(rd 128 $BLOCKS) \$(rd 256 $BLOCKS)"
  blkdiscard -o $((4 * MiB)) -l $MiB /dev/vda && echo "VHOSTTEST-DISCARDED"
  zero zero $((8 * MiB)) 65536 /dev/vda && zero punch $((16 * MiB)) 65536 /dev/vda && echo "VHOSTTEST-ZEROED"
  echo "VHOSTTEST-AFTER \$(rd 64 16) \$(rd 80 16) \$(rd 128 1) \$(rd 256 1)"
  sync
else
  SEEN="\$(rd 128 $BLOCKS) \$(rd 256 $BLOCKS) \$(rd 64 16) \$(rd 80 16) \$(rd 16 16)"
  if [ "\$(dd if=/dev/vda bs=512 skip=65536 count=1 iflag=direct 2>/dev/null | head -c 8)" = REBOOTED ]; then
    echo "VHOSTTEST-AFTER-REBOOT \$SEEN"
  else
    echo "VHOSTTEST-SEEN \$SEEN"
    printf 'REBOOTED' | dd of=/dev/vda bs=512 seek=65536 conv=sync,fsync 2>/dev/null
    echo "VHOSTTEST-REBOOTING"
    reboot -f
  fi
fi
echo "VHOSTTEST-DONE"
poweroff -f
INIT
chmod +x "$I/init"
(cd "$I" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$W/initrd.gz"

SOCK=$W/vu.sock
if [ "$BACKEND" = qsd ]; then
  qemu-storage-daemon --blockdev driver=file,node-name=f,filename="$DISK",discard=unmap \
    --blockdev driver=$FORMAT,node-name=q,file=f,discard=unmap \
    --export type=vhost-user-blk,id=e,node-name=q,addr.type=unix,addr.path="$SOCK",writable=on,num-queues=2 \
    2> "$W/serve.log" &
else
  "$BIN" serve "$DISK" --write --vhost-user "$SOCK" --queues 2 2> "$W/serve.log" &
fi
SERVER=$!
for _ in $(seq 600); do [ -S "$SOCK" ] && break; kill -0 $SERVER 2>/dev/null || break; sleep 0.05; done
[ -S "$SOCK" ] || { echo "vhost-test: server did not start"; cat "$W/serve.log"; exit 1; }

boot() {
  # VM 1 powers off; VM 2 reboots once (no -no-reboot), then powers off.
  timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -m 256 -smp 2 -nographic $([ "$1" = 1 ] && echo -no-reboot) \
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
    -chardev socket,id=c0,path="$SOCK" -device vhost-user-blk-pci,chardev=c0,num-queues=2 \
    -kernel "$KERNEL" -initrd "$W/initrd.gz" -append "console=ttyS0 panic=-1 quiet vhosttest=$1" > "$W/console$1.log" 2>&1 || true
  tr -d '\r' < "$W/console$1.log"
}
fail() { echo "vhost-test ($BACKEND, $FORMAT): FAIL: $*"; echo "--- server"; cat "$W/serve.log"; for c in 1 2; do [ -e "$W/console$c.log" ] && { echo "--- console $c"; tr -d '\r' < "$W/console$c.log" | tail -30; }; done; exit 1; }

t1=$(date +%s)
C1=$(boot 1)
t2=$(date +%s)
echo "$C1" | grep -q "VHOSTTEST-DONE" || fail "guest 1 did not finish"
echo "$C1" | grep -q "VHOSTTEST-SIZE 131072" || fail "guest 1 saw the wrong disk size"
echo "$C1" | grep -q "VHOSTTEST-QUEUES 2" || fail "guest 1 did not get 2 queues"
echo "$C1" | grep -q "VHOSTTEST-BACKING $BASE_MD5" || fail "guest 1's read of the backing pattern differs"
echo "$C1" | grep -q "VHOSTTEST-WROTE" || fail "guest 1's O_DIRECT writes failed"
echo "$C1" | grep -q "VHOSTTEST-READBACK $A_MD5 $B_MD5" || fail "guest 1's read-back differs from what it wrote"
echo "$C1" | grep -q "VHOSTTEST-DISCARDED" || fail "guest 1's discard failed"
echo "$C1" | grep -q "VHOSTTEST-ZEROED" || fail "guest 1's write-zeroes failed"
A1_MD5=$(dd if="$W/a.bin" bs=64k count=1 status=none | md5)
Z64_MD5=$(head -c 65536 /dev/zero | md5)
echo "$C1" | grep -Eq "VHOSTTEST-AFTER $DISC_MD5 $KEPT_MD5 $Z64_MD5 $Z64_MD5" || fail "guest 1 reads wrong bytes after the discard and zeroing"

C2=$(boot 2)
t3=$(date +%s)
echo "$C2" | grep -q "VHOSTTEST-DONE" || fail "guest 2 did not finish (a second VM on the same server)"
# What VM 1 left: each payload with its first 64 KiB zeroed, the discarded MiB zero.
(head -c 65536 /dev/zero; tail -c +65537 "$W/a.bin") > "$W/a.left"
(head -c 65536 /dev/zero; tail -c +65537 "$W/b.bin") > "$W/b.left"
A_LEFT=$(md5 < "$W/a.left"); B_LEFT=$(md5 < "$W/b.left")
echo "$C2" | grep -Eq "VHOSTTEST-SEEN $A_LEFT $B_LEFT $DISC_MD5 $KEPT_MD5 $BASE_MD5" || fail "guest 2 does not read what guest 1 left"
echo "$C2" | grep -q "VHOSTTEST-REBOOTING" || fail "guest 2 did not write its marker"
echo "$C2" | grep -Eq "VHOSTTEST-AFTER-REBOOT $A_LEFT $B_LEFT $DISC_MD5 $KEPT_MD5 $BASE_MD5" || fail "guest 2 read different bytes after its reboot"

kill -TERM $SERVER
set +e; wait $SERVER; rc=$?; set -e
SERVER=""
cat "$W/serve.log"
[ "$rc" = 0 ] || fail "the server exited $rc after SIGTERM"
if [ "$BACKEND" = blockscope ]; then
  grep -q "stopped: image flushed and closed" "$W/serve.log" || fail "no clean shutdown line"
  # Both virtqueues carried requests in VM 1 (vq0 N, vq1 M with N, M > 0).
  grep -m1 "front end 1 disconnected" "$W/serve.log" | grep -Eq "vq0 [1-9][0-9]*, vq1 [1-9]" || fail "VM 1 did not use both virtqueues"
fi

# The host's view, through qemu-img only.
qemu-img convert -f "$FORMAT" -O raw "$DISK" "$W/host.raw"
cmp -s <(dd if="$W/host.raw" bs=64k skip=128 count=$BLOCKS status=none) "$W/a.left" || fail "host view of payload A differs"
cmp -s <(dd if="$W/host.raw" bs=64k skip=256 count=$BLOCKS status=none) "$W/b.left" || fail "host view of payload B differs"
[[ "$(dd if="$W/host.raw" bs=1M skip=4 count=1 status=none | md5)" =~ ^$DISC_MD5$ ]] || fail "host view of the discarded range is neither zero nor (VHDX, VHD) what was there"
cmp -s <(dd if="$W/host.raw" bs=1M skip=5 count=1 status=none) <(dd if="$W/base.raw" bs=1M skip=5 count=1 status=none) || fail "host view of the range next to the discard differs"
cmp -s <(dd if="$W/host.raw" bs=1M skip=1 count=1 status=none) <(dd if="$W/base.raw" bs=1M skip=1 count=1 status=none) || fail "host view of the backing range differs"
# The discarded MiB holds no data in the image: qemu-img map says zero, not data (QCOW2:
# zero clusters; RAW: a hole). VHDX and VHD keep a discarded block allocated (blockscope
# as qemu), so only the bytes are checked there.
if [ "$FORMAT" = qcow2 ] || [ "$FORMAT" = raw ]; then
  qemu-img map -f "$FORMAT" --output=json "$DISK" > "$W/map.json"
  python3 - "$W/map.json" <<'PY' || fail "qemu-img map: the discarded range still holds data"
import json, sys
m = json.load(open(sys.argv[1]))
lo, hi = 4 << 20, 5 << 20
bad = [e for e in m if e["start"] < hi and e["start"] + e["length"] > lo and (e["data"] or not e["zero"])]
sys.exit(1 if bad else 0)
PY
fi
[ "$(dd if="$W/host.raw" bs=512 skip=65536 count=1 status=none | head -c 8)" = REBOOTED ] || fail "host does not see guest 2's marker"
[ "$(md5 < "$W/base.raw")" = "$BASE_SUM_BEFORE" ] || fail "the backing file changed"
# qemu-img check knows QCOW2 and VHDX (RAW has nothing to check; for VHD it answers
# "does not support checks": the bytes above are the check there).
case $FORMAT in qcow2|vhdx) qemu-img check -q -f "$FORMAT" "$DISK" || fail "qemu-img check found problems" ;; esac
echo "vhost-test ($BACKEND, $FORMAT): PASS (payload 2 x ${PAYLOAD_KB} KiB; VM 1 $((t2 - t1)) s, VM 2 with a reboot $((t3 - t2)) s, total $(( $(date +%s) - t0 )) s)"
