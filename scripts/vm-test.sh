#!/usr/bin/env bash
# Boots a Linux guest (qemu-system-x86_64 -accel tcg, Debian's kernel, a busybox initramfs)
# whose only disk is served by `blockscope serve` from a QCOW2 over a RAW backing file.
# The guest reads a pattern from the backing file, writes a payload with O_DIRECT and
# conv=fsync, reads it back with O_DIRECT, and powers off; the host then checks the guest's
# bytes with qemu-img convert, the untouched backing file, and `qemu-img check`.
#
#   scripts/vm-test.sh            full run (payload 4 MiB)
#   VM_TEST_REDUCED=1 scripts/vm-test.sh   reduced run for CI (payload 64 KiB, same steps)
# Needs: qemu-system-x86 linux-image-amd64 busybox-static cpio (scripts/install-deps.sh vm).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BLOCKSCOPE_BIN:-$ROOT/.build/debug/blockscope}
KERNEL=${VM_KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -1)}
KVER=${KERNEL#/boot/vmlinuz-}
MODDIR=/lib/modules/$KVER/kernel/drivers
BUSYBOX=${VM_BUSYBOX:-/bin/busybox}
PAYLOAD_KB=4096
[ "${VM_TEST_REDUCED:-0}" = 1 ] && PAYLOAD_KB=64
TIMEOUT=${VM_TIMEOUT:-600}

for f in "$BIN" "$KERNEL" "$BUSYBOX"; do [ -e "$f" ] || { echo "vm-test: missing $f" >&2; exit 2; }; done
command -v qemu-system-x86_64 >/dev/null || { echo "vm-test: qemu-system-x86_64 not installed" >&2; exit 2; }
"$BUSYBOX" --list | grep -qx cpio || command -v cpio >/dev/null || { echo "vm-test: cpio missing" >&2; exit 2; }

W=$(mktemp -d /tmp/blockscope-vm.XXXXXX)
SERVER=""
cleanup() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; fi; rm -rf "$W"; }
trap cleanup EXIT
t0=$(date +%s)

# Images: a 64 MiB RAW backing file with a known pattern at 1 MiB, a QCOW2 over it.
qemu-img create -q -f raw "$W/base.raw" 64M
qemu-io -f raw -c "write -P 0x5a 1M 1M" "$W/base.raw" >/dev/null
qemu-img create -q -f qcow2 -b "$W/base.raw" -F raw "$W/disk.qcow2" 64M
head -c $((PAYLOAD_KB * 1024)) /dev/urandom > "$W/payload.bin"
BASE_MD5=$(dd if="$W/base.raw" bs=1M skip=1 count=1 status=none | md5sum | cut -d" " -f1)
BASE_SUM_BEFORE=$(md5sum < "$W/base.raw" | cut -d' ' -f1)

# The initramfs: busybox, the six virtio modules in load order, the payload, an init script.
I=$W/initramfs
mkdir -p "$I"/{bin,dev,proc,sys,tmp,mod}
cp "$BUSYBOX" "$I/bin/busybox"
for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_modern_dev virtio/virtio_pci_legacy_dev virtio/virtio_pci block/virtio_blk; do
  src=$MODDIR/$m.ko
  if [ -e "$src" ]; then cp "$src" "$I/mod/"; elif [ -e "$src.xz" ]; then xz -dc "$src.xz" > "$I/mod/$(basename "$m").ko"; fi
done
cp "$W/payload.bin" "$I/payload.bin"
cat > "$I/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
  [ -e /mod/\$m.ko ] && insmod /mod/\$m.ko
done
n=0; while [ ! -b /dev/vda ] && [ \$n -lt 300 ]; do sleep 0.1; n=\$((n+1)); done
[ -b /dev/vda ] || { echo "VMTEST-FAIL no /dev/vda"; poweroff -f; }
echo "VMTEST-SIZE \$(cat /sys/block/vda/size)"
echo "VMTEST-BACKING \$(dd if=/dev/vda bs=1M skip=1 count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
dd if=/payload.bin of=/dev/vda bs=64k seek=128 oflag=direct conv=fsync 2>/dev/null && echo "VMTEST-WROTE"
sync
echo "VMTEST-READBACK \$(dd if=/dev/vda bs=64k skip=128 count=$((PAYLOAD_KB / 64)) iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
echo "VMTEST-DONE"
poweroff -f
INIT
chmod +x "$I/init"
(cd "$I" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$W/initrd.gz"

# Serve the QCOW2 and boot.
"$BIN" serve "$W/disk.qcow2" --write --socket "$W/s.sock" 2> "$W/serve.log" &
SERVER=$!
for _ in $(seq 300); do [ -S "$W/s.sock" ] && break; kill -0 $SERVER 2>/dev/null || break; sleep 0.05; done
[ -S "$W/s.sock" ] || { echo "vm-test: server did not start"; cat "$W/serve.log"; exit 1; }
t1=$(date +%s)
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -no-reboot \
  -kernel "$KERNEL" -initrd "$W/initrd.gz" -append "console=ttyS0 panic=-1 quiet" \
  -drive file=nbd:unix:"$W/s.sock",format=raw,if=virtio,cache=none > "$W/console.log" 2>&1 || true
t2=$(date +%s)
kill -TERM $SERVER
set +e; wait $SERVER; rc=$?; set -e
SERVER=""
cat "$W/serve.log"

fail() { echo "vm-test: FAIL: $*"; echo "--- console"; tr -d '\r' < "$W/console.log" | tail -40; exit 1; }
C=$(tr -d '\r' < "$W/console.log")
[ "$rc" = 0 ] || fail "serve exited $rc after SIGTERM"
echo "$C" | grep -q "VMTEST-DONE" || fail "the guest did not finish"
echo "$C" | grep -q "VMTEST-SIZE 131072" || fail "guest saw the wrong disk size"
echo "$C" | grep -q "VMTEST-BACKING $BASE_MD5" || fail "guest read of the backing pattern differs"
echo "$C" | grep -q "VMTEST-WROTE" || fail "guest O_DIRECT write failed"
PAY_MD5=$(md5sum < "$W/payload.bin" | cut -d' ' -f1)
echo "$C" | grep -q "VMTEST-READBACK $PAY_MD5" || fail "guest read-back differs from what it wrote"
qemu-img convert -f qcow2 -O raw "$W/disk.qcow2" "$W/host.raw"
cmp -s <(dd if="$W/host.raw" bs=64k skip=128 count=$((PAYLOAD_KB / 64)) status=none) "$W/payload.bin" || fail "host view of the guest's write differs"
cmp -s <(dd if="$W/host.raw" bs=1M skip=1 count=1 status=none) <(dd if="$W/base.raw" bs=1M skip=1 count=1 status=none) || fail "host view of the backing range differs"
[ "$(md5sum < "$W/base.raw" | cut -d' ' -f1)" = "$BASE_SUM_BEFORE" ] || fail "the backing file changed"
qemu-img check -q "$W/disk.qcow2" || fail "qemu-img check found problems"
echo "vm-test: PASS (payload ${PAYLOAD_KB} KiB; boot+run $((t2 - t1)) s, total $(( $(date +%s) - t0 )) s)"
