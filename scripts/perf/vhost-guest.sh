# Shared by scripts/perf/vhost-vs-qsd.sh, vhost-cpu.sh and vhost-counts.sh (sourced, not
# run): the set-up, the image, the guest and the servers of the vhost-user-blk measurements.
#   vhost_setup LABEL                 sets KERNEL (VM_KERNEL or the newest /boot/vmlinuz-*),
#                                     KVER, MODDIR, a scratch dir W (/tmp/blockscope-LABEL.*)
#                                     and SERVER, and on exit stops SERVER and removes W
#   vhost_guest_build DIR INIT_BODY   DIR/master.qcow2 (256 MiB, every cluster allocated) and
#                                     DIR/initrd.gz: busybox, the virtio modules, vhost-load,
#                                     an init that loads them, waits for /dev/vda, runs
#                                     INIT_BODY (shell lines) and powers off
#   vhost_server WHO SOCK LOG         starts blockscope ($BIN, or $BASE_BIN for WHO=base) or
#                                     qemu-storage-daemon (WHO=qsd) on a fresh copy
#                                     DIR/disk.qcow2, sets SERVER, waits for the socket;
#                                     WHO=nbd: blockscope's NBD export on the Unix socket
#   vhost_guest SOCK CONSOLE          runs the TCG guest (2 vCPUs, 256 MiB memfd, 2 queues):
#                                     vhost-user-blk-pci on SOCK, or for WHO=nbd QEMU's
#                                     NBD client on SOCK under virtio-blk-pci (num-queues=2)
# Needs ROOT set by the caller (and BIN, BASE_BIN for the servers).
vhost_setup() {
  KERNEL=${VM_KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -1)}
  KVER=${KERNEL#/boot/vmlinuz-}
  MODDIR=/lib/modules/$KVER/kernel/drivers
  W=$(mktemp -d "/tmp/blockscope-$1.XXXXXX")
  SERVER=""
  trap vhost_cleanup EXIT
}
vhost_cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$W"
}
vhost_guest_build() {
  local dir=$1 body=$2 i=$1/initramfs
  qemu-img create -q -f qcow2 "$dir/master.qcow2" 256M
  qemu-io -f qcow2 -c "write -P 0x11 0 256M" "$dir/master.qcow2" >/dev/null
  mkdir -p "$i"/{bin,dev,proc,sys,tmp,mod}
  cp /bin/busybox "$i/bin/busybox"
  for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_modern_dev virtio/virtio_pci_legacy_dev virtio/virtio_pci block/virtio_blk; do
    cp "$MODDIR/$m.ko" "$i/mod/"
  done
  ${CC:-cc} -static -O2 -o "$i/bin/vhost-load" "$ROOT/scripts/perf/vhost-load.c" -luring
  {
    echo '#!/bin/busybox sh'
    echo '/bin/busybox --install -s /bin'
    echo 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev'
    echo 'for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do insmod /mod/$m.ko; done'
    echo 'n=0; while [ ! -b /dev/vda ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done'
    echo "$body"
    echo 'poweroff -f'
  } > "$i/init"
  chmod +x "$i/init"
  (cd "$i" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$dir/initrd.gz"
}

vhost_server() {
  local who=$1 sock=$2 log=$3
  cp "$W/master.qcow2" "$W/disk.qcow2"
  rm -f "$sock"
  VHOST_DISK="-chardev socket,id=c0,path=$sock -device vhost-user-blk-pci,chardev=c0,num-queues=2"
  if [ "$who" = nbd ]; then
    VHOST_DISK="-blockdev driver=nbd,node-name=n,server.type=unix,server.path=$sock -device virtio-blk-pci,drive=n,num-queues=2"
    "$BIN" serve "$W/disk.qcow2" --write --socket "$sock" 2> "$log" &
  elif [ "$who" = qsd ]; then
    qemu-storage-daemon --blockdev driver=file,node-name=f,filename="$W/disk.qcow2",aio=io_uring,cache.direct=off \
      --blockdev driver=qcow2,node-name=q,file=f,discard=unmap \
      --export type=vhost-user-blk,id=e,node-name=q,addr.type=unix,addr.path="$sock",writable=on,num-queues=2 2> "$log" &
  else
    local bin=$BIN
    [ "$who" = base ] && bin=$BASE_BIN
    "$bin" serve "$W/disk.qcow2" --write --vhost-user "$sock" --queues 2 2> "$log" &
  fi
  SERVER=$!
  for _ in $(seq 600); do [ -S "$sock" ] && break; sleep 0.05; done
}

vhost_guest() {
  timeout 600 qemu-system-x86_64 -accel tcg -m 256 -smp 2 -nographic -no-reboot \
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
    $VHOST_DISK \
    -kernel "$KERNEL" -initrd "$W/initrd.gz" -append "console=ttyS0 panic=-1 quiet" > "$2" 2>&1
}
