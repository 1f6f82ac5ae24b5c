#!/usr/bin/env bash
# Makes the seed corpora of the fuzz targets with qemu-img and qemu-io (small images:
# 1-4 MiB virtual, 4 KiB clusters where the format allows), in DIR/TARGET/.
# The images refer only to base.raw and base.qcow2, which every fuzz target's sandbox
# provides (Fuzz/Sources/FuzzSupport/Sandbox.swift). Write targets take a 32-byte write
# program before the image: each seed gets two programs.
set -euo pipefail
out=$(mkdir -p "${1:?usage: make-seeds.sh DIR}" && cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
q() { qemu-img "$@" >/dev/null; }
io() { qemu-io "$@" >/dev/null; }

# The sandbox's bases (contents do not matter to the seeds, names do).
head -c 1048576 /dev/zero > base.raw
q create -f qcow2 -o cluster_size=4096 -b base.raw -F raw base.qcow2

mkdir -p qcow2 vhdx vhd
ln -s ../base.raw qcow2/base.raw; ln -s ../base.qcow2 qcow2/base.qcow2
# QCOW2: every cluster kind the read path has.
q create -f qcow2 -o cluster_size=4096 qcow2/empty.qcow2 1M
q create -f qcow2 -o cluster_size=4096,compat=0.10 qcow2/v2.qcow2 1M
io -f qcow2 -c 'write -P 0x11 0 8k' -c 'write -P 0x22 12k 4k' qcow2/v2.qcow2
q create -f qcow2 -o cluster_size=4096 qcow2/data.qcow2 1M
io -f qcow2 -c 'write -P 0xab 0 16k' -c 'write -z 64k 8k' -c 'write -P 0xcd 900k 4k' -c 'discard 4k 4k' qcow2/data.qcow2
# Compressible text (64 KiB: 16 compressed clusters) keeps the seeds, and so the inputs, small.
seq 1 20000 > seq.txt; head -c 65536 seq.txt > pat.raw; truncate -s 1M pat.raw
q convert -c -f raw -O qcow2 -o cluster_size=4096 pat.raw qcow2/zlib.qcow2
q convert -c -f raw -O qcow2 -o cluster_size=4096,compression_type=zstd pat.raw qcow2/zstd.qcow2
q create -f qcow2 -o cluster_size=4096 -b base.raw -F raw qcow2/backing-raw.qcow2
io -f qcow2 -c 'write -P 0x33 4k 4k' -c 'write -z 16k 4k' qcow2/backing-raw.qcow2
q create -f qcow2 -o cluster_size=4096 -b base.qcow2 -F qcow2 qcow2/backing-qcow2.qcow2
io -f qcow2 -c 'write -P 0x44 8k 2k' qcow2/backing-qcow2.qcow2
q create -f qcow2 -o cluster_size=16384,extended_l2=on qcow2/extl2.qcow2 1M
io -f qcow2 -c 'write -P 0x55 0 512' -c 'write -P 0x66 2k 1k' -c 'write -z 32k 2k' -c 'write -P 0x77 64k 16k' qcow2/extl2.qcow2
q create -f qcow2 -o cluster_size=16384,extended_l2=on -b base.raw -F raw qcow2/extl2-backing.qcow2
io -f qcow2 -c 'write -P 0x56 1k 512' qcow2/extl2-backing.qcow2
q create -f qcow2 -o cluster_size=4096 qcow2/snapshots.qcow2 1M
io -f qcow2 -c 'write -P 0x88 0 8k' qcow2/snapshots.qcow2
q snapshot -c s1 qcow2/snapshots.qcow2
io -f qcow2 -c 'write -P 0x99 4k 8k' qcow2/snapshots.qcow2
q snapshot -c s2 qcow2/snapshots.qcow2
q create -f qcow2 -o cluster_size=4096,refcount_bits=1 qcow2/refcount1.qcow2 1M
io -f qcow2 -c 'write -P 0x12 0 4k' qcow2/refcount1.qcow2
q create -f qcow2 -o cluster_size=4096,refcount_bits=64 qcow2/refcount64.qcow2 1M
io -f qcow2 -c 'write -P 0x13 0 4k' qcow2/refcount64.qcow2
q create -f qcow2 -o cluster_size=4096,lazy_refcounts=on qcow2/dirty.qcow2 1M
io -f qcow2 -c 'write -P 0x14 0 8k' -c abort qcow2/dirty.qcow2 2>/dev/null || true
q create -f qcow2 -o cluster_size=4096 qcow2/bitmap.qcow2 1M
q bitmap --add qcow2/bitmap.qcow2 b0
q create -f qcow2 -o cluster_size=512 qcow2/c512.qcow2 256k
io -f qcow2 -c 'write -P 0x15 0 3k' qcow2/c512.qcow2

rm qcow2/base.raw qcow2/base.qcow2

# Damaged QCOW2 images for the explain target, as ../shared/DAMAGE.md describes them: an L2
# table erased, a refcount block holding guest data, the header overwritten, a truncated tail.
mkdir -p damaged
python3 - qcow2/data.qcow2 damaged <<'PY'
import struct, sys
src, out = sys.argv[1], sys.argv[2]
b = bytearray(open(src, 'rb').read())
l1 = struct.unpack_from('>Q', b, 40)[0]
l2 = struct.unpack_from('>Q', b, l1)[0] & 0x00fffffffffffe00
rt = struct.unpack_from('>Q', b, 48)[0]
rb = struct.unpack_from('>Q', b, rt)[0]
def save(name, data): open(f'{out}/{name}', 'wb').write(data)
x = bytearray(b); x[l2:l2 + 4096] = bytes(4096); save('l2-erased.qcow2', x)
x = bytearray(b); x[rb:rb + 4096] = b'\xab' * 4096; save('refcounts-overwritten.qcow2', x)
x = bytearray(b); x[0:512] = bytes(512); save('header-erased.qcow2', x)
save('truncated.qcow2', b[:len(b) - 4096 - 512])
PY

# VHDX: dynamic, fixed, written, block_state_zero=off, a log left behind.
q create -f vhdx -o block_size=1M vhdx/dynamic.vhdx 4M
cp vhdx/dynamic.vhdx vhdx/written.vhdx
io -f vhdx -c 'write -P 0x21 0 64k' -c 'write -P 0x22 2M 4k' vhdx/written.vhdx
q create -f vhdx -o block_size=1M,block_state_zero=off,subformat=fixed vhdx/fixed.vhdx 2M
q create -f vhdx -o block_size=1M,log_size=1M vhdx/dirty.vhdx 4M
io -f vhdx -c 'write -P 0x23 1M 4k' -c abort vhdx/dirty.vhdx 2>/dev/null || true

# VHD: dynamic, written, fixed.
q create -f vpc vhd/dynamic.vhd 4M
cp vhd/dynamic.vhd vhd/written.vhd
io -f vpc -c 'write -P 0x31 0 4k' -c 'write -P 0x32 2M 8k' vhd/written.vhd
q create -f vpc -o subformat=fixed vhd/fixed.vhd 1M
io -f vpc -c 'write -P 0x33 0 4k' vhd/fixed.vhd

# VMDK: monolithic sparse (empty, written, zeroed grains), qemu's streamOptimized.
mkdir -p vmdk
q create -f vmdk vmdk/empty.vmdk 1M
cp vmdk/empty.vmdk vmdk/written.vmdk
io -f vmdk -c 'write -P 0x41 0 4k' -c 'write -P 0x42 512k 70k' vmdk/written.vmdk
q create -f vmdk -o zeroed_grain=on vmdk/zeroed.vmdk 1M
io -f vmdk -c 'write -z 0 64k' -c 'write -P 0x43 64k 4k' vmdk/zeroed.vmdk
q convert -f raw -O vmdk -o subformat=streamOptimized pat.raw vmdk/stream.vmdk

# Read targets take the images; write targets a program and the image.
# Program bytes, 4 per op: kind|flags, offset/4k, length/512-1, pattern.
printf '\x00\x00\x07\xa1\x02\x02\x01\x00\x03\x01\x00\x00\x04\x00\x00\x00\x09\x05\x03\xb2\x06\x10\x0f\xc3\x05\x00\x20\x00\x00\x40\x01\xd4' > prog1.bin
printf '\x10\x00\x00\x01\x08\x03\x02\x02\x07\x00\x00\x00\x03\x00\x07\x00\x01\x01\xf1\x05\x04\x00\x00\x00\x02\x08\x00\x00\x05\x08\x00\x00' > prog2.bin
# VHDX and VHD inputs are sparse encodings (SparseImage.swift): the non-zero sectors.
for f in vhdx/* vhd/*; do python3 "$here/sparse-encode.py" "$f" > "$f.sparse"; mv "$f.sparse" "$f"; done
mk() { # TARGET SRC-DIR
  mkdir -p "$out/$1"
  for f in "$2"/*; do
    b=$(basename "$f")
    cat prog1.bin "$f" > "$out/$1/p1-$b"
    cat prog2.bin "$f" > "$out/$1/p2-$b"
  done
}
mkdir -p "$out/qcow2-read" "$out/vhdx"
cp qcow2/* "$out/qcow2-read/"
cp vhdx/* "$out/vhdx/"
mk qcow2-write qcow2
mk vhdx-write vhdx
mk vhd vhd
mk vmdk vmdk
# explain: a format byte (0 QCOW2, 1 VHDX, 2 VHD), then the image as the read targets take it.
mkdir -p "$out/explain"
for f in qcow2/* damaged/*; do { printf '\x00'; cat "$f"; } > "$out/explain/q-$(basename "$f")"; done
for f in vhdx/*; do { printf '\x01'; cat "$f"; } > "$out/explain/x-$(basename "$f")"; done
for f in vhd/*; do { printf '\x02'; cat "$f"; } > "$out/explain/v-$(basename "$f")"; done
# Text and protocol targets: the hand-written seeds in scripts/fuzz/seeds/TARGET/.
for t in jobfile script nbd vhost json trace theme prompt; do
    mkdir -p "$out/$t"
    cp "$here/seeds/$t"/* "$out/$t/"
done
