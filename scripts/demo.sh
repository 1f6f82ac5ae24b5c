#!/usr/bin/env bash
# Runs blockscope's main job on a temporary copy of a bundled demo image.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/debug/blockscope
tmp=$(mktemp -d /tmp/blockscope-demo.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
img=demo-images/demo.qcow2
[ -f "$img" ] || img=demo-images/demo.raw
cp demo-images/* "$tmp"/ 2>/dev/null || true
copy="$tmp/$(basename "$img")"
if [ -t 1 ] && "$BIN" tui --help >/dev/null 2>&1; then
  exec "$BIN" tui "$copy" --write --script demo-images/demo.script
fi
"$BIN" info "$copy"
