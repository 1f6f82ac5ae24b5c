#!/usr/bin/env bash
# Opens the TUI on a temporary copy of the bundled demo image (demo-images/demo.qcow2 and its
# backing file), running demo-images/demo.script: a guided tour whose `pause` steps explain
# what comes next and wait for a key (so a teacher sets the pace) and whose `sleep` steps let
# the views settle. The bundled images are never modified: everything is copied to a fresh
# temp dir first, and only the copy is opened for writing.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BLOCKSCOPE_BIN:-.build/debug/blockscope}
tmp=$(mktemp -d /tmp/blockscope-demo.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
img=demo-images/demo.qcow2
[ -f "$img" ] || img=demo-images/demo.raw
cp demo-images/*.qcow2 demo-images/*.vhdx demo-images/*.raw demo-images/demo.script "$tmp"/ 2>/dev/null || true
chmod u+w "$tmp"/*
copy="$tmp/$(basename "$img")"
if [ -t 1 ] && "$BIN" tui --help >/dev/null 2>&1; then
  # Not exec: the trap removes the copy when the TUI exits.
  "$BIN" tui "$copy" --write --script "$tmp/demo.script"
  exit $?
fi
"$BIN" info "$copy"
