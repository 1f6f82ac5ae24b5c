#!/bin/bash
# The release build's link (ADR 0012, ADR 0013: static runtime, lld, packed relocations,
# static libstdc++, laid-out code) checked against qemu-img: the tests use debug builds,
# so this is where a broken release link shows. Builds `swift build -c release`, then for a
# QCOW2 (data, compressed cluster, zeroes, snapshot), a VHDX and a VHD made by qemu-img/qemu-io:
# `map --output=json` must equal qemu-img's byte for byte (QCOW2, VHD; qemu-img 7.2 maps a
# whole VHDX as one data extent, so for the VHDX the written ranges must lie in data
# extents), `check` must exit 0, `info --output=json` must give qemu-img's format and virtual size, and the TUI must draw its
# first frame on a pseudo-terminal and exit on `q`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
swift build -c release
B=$ROOT/.build/release/blockscope
fail() { echo "release-smoke: $*" >&2; exit 1; }
if readelf -d "$B" | grep -q 'libstdc++'; then fail "$B still needs libstdc++.so (build-support/static-cxx not used)"; fi
"$B" --help > /dev/null || fail "--help exited $?"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
qemu-img create -q -f qcow2 "$W/a.qcow2" 256M
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -c -P 0x22 4M 64k' -c 'write -z 8M 1M' "$W/a.qcow2" > /dev/null
qemu-img snapshot -c s1 "$W/a.qcow2"
qemu-io -f qcow2 -c 'write -P 0x33 0 64k' "$W/a.qcow2" > /dev/null
for f in vhdx vpc; do
  qemu-img create -q -f $f "$W/a.$f" 256M
  qemu-io -f $f -c 'write -P 0x44 0 3M' -c 'write -P 0x55 100M 64k' "$W/a.$f" > /dev/null
done
for img in "$W/a.qcow2" "$W/a.vhdx" "$W/a.vpc"; do
  "$B" map --output=json "$img" > "$W/b.json" || fail "map $img exited $?"
  case "$img" in
    *.vhdx) # every data extent blockscope names must hold the bytes qemu-io wrote there
      python3 - "$W/b.json" <<'PY' || fail "map of $img does not name the written ranges"
import json, sys
m = json.load(open(sys.argv[1]))
data = [(e["start"], e["start"] + e["length"]) for e in m if e["data"]]
for lo, hi in [(0, 3 << 20), (100 << 20, (100 << 20) + 65536)]:
    assert any(a <= lo and hi <= b for a, b in data), (lo, hi, data)
PY
      ;;
    *) qemu-img map --output=json "$img" > "$W/q.json"
       cmp -s "$W/q.json" "$W/b.json" || { diff "$W/q.json" "$W/b.json" | head; fail "map of $img differs from qemu-img's"; } ;;
  esac
  "$B" check "$img" > "$W/check.txt" || { cat "$W/check.txt"; fail "check $img exited $?"; }
  # info's JSON against qemu-img's: the same format and virtual size (not a grep of the
  # human output, which names the file and so the format's extension anyway).
  qemu-img info --output=json "$img" > "$W/qi.json"
  "$B" info --output=json "$img" > "$W/bi.json" || fail "info $img exited $?"
  python3 - "$W/qi.json" "$W/bi.json" <<'PY' || fail "info of $img differs from qemu-img's in format or virtual size"
import json, sys
q, b = (json.load(open(p)) for p in sys.argv[1:3])
assert (q["format"], q["virtual-size"]) == (b["format"], b["virtual-size"]), (q["format"], q["virtual-size"], b["format"], b["virtual-size"])
PY
done
python3 scripts/perf/first-frame.py -n 1 -m "q quit" -- "$B" tui "$W/a.qcow2" > /dev/null || fail "tui drew no first frame"
echo "release-smoke: map equals qemu-img's on qcow2 and vpc, names vhdx data; check clean; info matches; TUI first frame: ok"
