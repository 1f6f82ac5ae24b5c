#!/usr/bin/env bash
# Makes the small images bundled in demo-images/ (each well under 2 MiB):
#   base.qcow2  32 MiB backing file with data in its first 768 KiB
#   demo.qcow2  32 MiB QCOW2 over base.qcow2 with data, compressed clusters, zero
#               clusters, a discarded range and an internal snapshot (shared clusters)
#   demo.vhdx   32 MiB dynamic VHDX with a few allocated blocks
#   demo.raw    1 MiB RAW with a little data
# blockscope's own `create` makes the images it can; qemu-io writes the content
# (compressed writes, zero writes), qemu-img makes the snapshot.
# Usage: scripts/make-demo-images.sh [OUTDIR]   (default demo-images/)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo-images}
mkdir -p "$out"
BIN=${BLOCKSCOPE_BIN:-.build/debug/blockscope}
qio() { local fmt=$1 img=$2; shift 2; local args=(); for c in "$@"; do args+=(-c "$c"); done; qemu-io -f "$fmt" "${args[@]}" "$img" >/dev/null; }

rm -f "$out"/base.qcow2 "$out"/demo.qcow2 "$out"/demo.vhdx "$out"/demo.raw

# The backing file.
"$BIN" create -f qcow2 "$out/base.qcow2" 32M >/dev/null 2>&1 || qemu-img create -q -f qcow2 "$out/base.qcow2" 32M
qio qcow2 "$out/base.qcow2" "write -P 0x0b 0 768k"

# The main image: over the backing file (relative name, so copies keep working).
( cd "$out" && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 demo.qcow2 32M )
qio qcow2 "$out/demo.qcow2" \
    "write -P 0x22 1M 512k" \
    "write -c -P 0x11 8M 256k" \
    "write -z 12M 256k" \
    "write -P 0x44 16M 128k" \
    "discard 16M 64k"
qemu-img snapshot -c before-demo "$out/demo.qcow2"
# After the snapshot, overwrite part of the shared data: copy-on-write gives new clusters.
qio qcow2 "$out/demo.qcow2" "write -P 0x33 1M 64k"

# A VHDX.
"$BIN" create -f vhdx -o block_size=1M,log_size=1M "$out/demo.vhdx" 32M >/dev/null 2>&1 || qemu-img create -q -f vhdx -o block_size=1M,log_size=1M "$out/demo.vhdx" 32M
qio vhdx "$out/demo.vhdx" "write -P 0x55 0 192k" "write -P 0x66 8M 64k"

# A small RAW.
qemu-img create -q -f raw "$out/demo.raw" 1M
qio raw "$out/demo.raw" "write -P 0x77 512k 64k"

qemu-img check -q "$out/demo.qcow2"
qemu-img check -q "$out/demo.vhdx"
ls -l "$out"
