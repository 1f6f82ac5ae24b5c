#!/bin/bash
# A 16 TiB QCOW2 whose allocated clusters are scattered over the whole guest range and
# whose host order is not the guest order (check's "fragmented" count near 100%):
# N 4 KiB writes at guest cluster (j * 2654435761) mod (16 TiB / 64 KiB), j = 0..N-1, in
# that order, through one qemu-io process (QEMU allocates host clusters in write order).
# Usage: N=40000 OUT=images/frag16t.qcow2 bash make-fragmented.sh
N=${N:-40000}
OUT=${OUT:-images/frag16t.qcow2}
rm -f "$OUT"
qemu-img create -q -f qcow2 "$OUT" 16T
python3 - "$N" > "$OUT.cmds" <<'P'
import sys
n = int(sys.argv[1]); clusters = (16 << 40) >> 16
for j in range(n):
    c = (j * 2654435761) % clusters
    print(f"write -q -P {j % 251 + 1} {c << 16} 4k")
P
qemu-io -f qcow2 "$OUT" < "$OUT.cmds" > /dev/null
rm -f "$OUT.cmds"
qemu-img check "$OUT" | tail -2
ls -ls "$OUT"
