#!/usr/bin/env bash
# The NBD server soak with faults (issue 25, item 4): `scripts/soak.sh [SECONDS]` (default 600).
#
# `blockscope serve --write` on a QCOW2 over a RAW backing file, with 8 clients at once, each
# in its own 16 MiB region of the 128 MiB image:
#   - 4 journaling libnbd writers (scripts/soak/writer.py): 64 KiB blocks, a flush after every
#     four, "I" (intent) and "A" (acknowledged by a completed flush) lines in a journal;
#   - 2 fio nbd-engine jobs writing 16 MiB with verify=crc32c (fio reads back and checks);
#   - 1 qemu-io writing 1 MiB patterns and reading them back with read -P;
#   - 1 nbdcopy reading the whole export (multi-conn) to null:.
# Clients are SIGKILLed at random every few seconds and restarted; every ~2 minutes (half the
# run when shorter, so a 60 s run has one) the server is SIGKILLed. With the server down,
# `qemu-img check` must find no corruption (leaks are allowed after a SIGKILL) and a raw copy
# made by qemu-img must hold every journaled write that a flush acknowledged; then the server
# restarts. At the end the server gets SIGTERM (must exit 0) and the same checks run again.
# Pass: 0 acknowledged-and-flushed writes lost, 0 fio/qemu-io verify failures, 0 server exits
# besides the kills, no corruption, and each server instance's RSS flat after its warm-up
# (a third of its life, 8-30 s): the median of the late half of the samples within 10% of
# the early half's.
# Loopback only (a Unix socket in a temp dir); every loop is bounded by the deadline.
# SOAK_KEEP=1 keeps the work folder (logs, journals, rss.log, the image);
# SOAK_SERVER_KILL_EVERY=N kills the server every N seconds instead (a large N: never, to
# watch one instance's RSS for the whole run); BLOCKSCOPE=path picks the binary.
set -uo pipefail
exec 3>&2
TOTAL=${1:-600}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BLOCKSCOPE:-$ROOT/.build/debug/blockscope}
PY=/usr/bin/python3
if [ ! -x "$B" ]; then (cd "$ROOT" && swift build) || exit 1; fi
for tool in qemu-img qemu-io fio nbdcopy; do command -v $tool >/dev/null || { echo "soak: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }; done
$PY -c 'import nbd' 2>/dev/null || { echo "soak: python3-libnbd is missing (scripts/install-deps.sh)" >&2; exit 1; }

W=$(mktemp -d /tmp/blockscope-soak.XXXXXX)
SOCK=$W/s.sock
URI="nbd+unix:///?socket=$SOCK"
IMG=$W/soak.qcow2
BASE=$W/base.raw
MIB=$((1 << 20))
START=$(date +%s)
DEADLINE=$((START + TOTAL))
KILL_EVERY=${SOAK_SERVER_KILL_EVERY:-$(( TOTAL / 2 < 120 ? TOTAL / 2 : 120 ))}
SERVER=""
declare -a CPID CKIND
FAILURES=()
server_kills=0 client_kills=0 client_runs=0 crashes=0 checkpoints=0 acked_checked=0 lost_total=0
fio_verify_failures=0 qemuio_failures=0 check_statuses=""
instance=0 instance_start=0

cleanup() {
  for p in "${CPID[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
  [ -n "$SERVER" ] && kill -9 "$SERVER" 2>/dev/null
  wait 2>/dev/null
  if [ -z "${SOAK_KEEP:-}" ]; then rm -rf "$W"; else echo "soak: kept $W" >&3; fi
}
trap cleanup EXIT
fail() { FAILURES+=("$*"); echo "soak: FAIL: $*" >&3; }
now() { date +%s; }

qemu-img create -q -f raw "$BASE" 128M
qemu-io -f raw -c 'write -P 0x5a 0 32M' -c 'write -P 0x5b 64M 16M' -c 'write -P 0x5c 112M 16M' "$BASE" >/dev/null
qemu-img create -q -f qcow2 -b "$BASE" -F raw "$IMG" 128M

start_server() {
  rm -f "$SOCK"
  instance=$((instance + 1)); instance_start=$(now)
  "$B" serve "$IMG" --write --socket "$SOCK" >>"$W/server.log" 2>&1 &
  SERVER=$!
  local t=0
  while [ ! -S "$SOCK" ] && [ $t -lt 600 ]; do
    kill -0 "$SERVER" 2>/dev/null || { fail "server did not start: $(tail -3 "$W/server.log")"; return 1; }
    sleep 0.05; t=$((t + 1))
  done
  [ -S "$SOCK" ] || { fail "server did not listen within 30 s"; return 1; }
}

start_client() { # slot
  local i=$1 left=$((DEADLINE - $(now)))
  [ $left -le 1 ] && { CPID[$i]=""; return; }
  client_runs=$((client_runs + 1))
  case $i in
    0|1|2|3) CKIND[$i]=writer
       $PY "$ROOT/scripts/soak/writer.py" "$URI" "$W/journal$i" "$i" $((i * 16 * MIB)) $((16 * MIB)) "$DEADLINE" \
         >/dev/null 2>>"$W/writer$i.err" & ;;
    4|5) CKIND[$i]=fio
       # --thread: one process, so SIGKILL leaves no forked job process behind.
       fio --name=soak$i --thread --ioengine=nbd --uri="$URI" --rw=randwrite --bs=16k --iodepth=16 \
         --offset=$(((i * 16) * MIB)) --size=16M --io_size=16M --verify=crc32c --verify_state_save=0 \
         --output="$W/fio$i.out" >/dev/null 2>"$W/fio$i.err" & ;;
    6) CKIND[$i]=qemu-io
       local cmds=() k p
       for k in $(seq 0 15); do p=$(( (RANDOM % 250) + 1 )); cmds+=(-c "write -P $p $((96 + k % 16))M 1M" -c "read -P $p $((96 + k % 16))M 1M"); done
       qemu-io -f raw "${cmds[@]}" "$URI" >"$W/qemuio.out" 2>&1 & ;;
    7) CKIND[$i]=nbdcopy
       nbdcopy "$URI" null: >/dev/null 2>"$W/nbdcopy.err" & ;;
  esac
  CPID[$i]=$!
}

client_ended() { # slot: look at what the finished client said
  local i=$1
  case ${CKIND[$i]} in
    fio) if grep -qiE "verify failed|bad magic|bad header|verify: " "$W/fio$i.out" "$W/fio$i.err" 2>/dev/null; then
           fio_verify_failures=$((fio_verify_failures + 1)); fail "fio $i: $(grep -iE 'verify' "$W/fio$i.err" "$W/fio$i.out" | head -2)"
           cp "$W/fio$i.err" "$W/fio$i.failed.err" 2>/dev/null; fi ;;
    qemu-io) if grep -q "Pattern verification failed" "$W/qemuio.out"; then
           qemuio_failures=$((qemuio_failures + 1)); fail "qemu-io: $(grep -m1 'Pattern verification failed' "$W/qemuio.out")"; fi ;;
  esac
}

sample_rss() {
  local rss
  rss=$(awk '/^VmRSS:/ {print $2}' /proc/"$SERVER"/status 2>/dev/null) || return
  [ -n "$rss" ] && echo "$instance $(( $(now) - instance_start )) $rss" >>"$W/rss.log"
}

checkpoint() { # the server is down: check the image and the journals
  local label=$1 st
  checkpoints=$((checkpoints + 1))
  qemu-img check -q "$IMG" >"$W/check.out" 2>&1; st=$?
  check_statuses="$check_statuses $st"
  # 0: clean; 3: leaked clusters only (allowed after a SIGKILL); anything else is corruption.
  if [ $st -ne 0 ] && [ $st -ne 3 ]; then fail "$label: qemu-img check exited $st: $(head -5 "$W/check.out")"; fi
  if ! qemu-img convert -U -f qcow2 -O raw "$IMG" "$W/copy.raw" 2>"$W/convert.err"; then fail "$label: qemu-img convert: $(cat "$W/convert.err")"; return; fi
  local j=() k
  for k in 0 1 2 3; do [ -f "$W/journal$k" ] && j+=("$W/journal$k"); done
  if [ ${#j[@]} -gt 0 ]; then
    if ! $PY "$ROOT/scripts/soak/verify.py" "$W/copy.raw" "${j[@]}" >"$W/verify.out" 2>"$W/verify.err"; then
      fail "$label: acknowledged writes lost: $(tail -1 "$W/verify.out"); $(head -3 "$W/verify.err")"
    fi
    lost_total=$((lost_total + $(awk '/^lost / {print $2}' "$W/verify.out" | tail -1 || echo 0)))
    acked_checked=$(awk '/acknowledged by a flush/ {w += $2; b += $8} END {print w + 0 " writes (" b + 0 " blocks)"}' "$W/verify.out")
  fi
  rm -f "$W/copy.raw"
}

# Background jobs killed on purpose would each print "Killed" on stderr: the script's own
# messages go to fd 3 from here on.
exec 2>/dev/null
start_server || exit 1
for i in 0 1 2 3 4 5 6 7; do start_client $i; done
next_server_kill=$((START + KILL_EVERY))
next_client_kill=$((START + 2 + RANDOM % 4))
while [ "$(now)" -lt "$DEADLINE" ]; do
  t=$(now)
  if ! kill -0 "$SERVER" 2>/dev/null; then
    wait "$SERVER"; st=$?
    crashes=$((crashes + 1)); fail "server exited by itself with status $st: $(tail -3 "$W/server.log")"
    checkpoint "after the crash"; start_server || break
  fi
  for i in 0 1 2 3 4 5 6 7; do
    p=${CPID[$i]:-}
    if [ -n "$p" ] && ! kill -0 "$p" 2>/dev/null; then wait "$p" 2>/dev/null; client_ended $i; start_client $i; fi
  done
  if [ "$t" -ge "$next_client_kill" ]; then
    i=$((RANDOM % 8)); p=${CPID[$i]:-}
    if [ -n "$p" ] && kill -9 "$p" 2>/dev/null; then client_kills=$((client_kills + 1)); fi
    next_client_kill=$((t + 2 + RANDOM % 4))
  fi
  if [ "$t" -ge "$next_server_kill" ] && [ $((DEADLINE - t)) -gt 5 ]; then
    kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null
    server_kills=$((server_kills + 1))
    echo "soak: $((t - START)) s: server SIGKILLed ($server_kills); checking the image" >&3
    checkpoint "after server kill $server_kills"
    start_server || break
    next_server_kill=$(( $(now) + KILL_EVERY ))
  fi
  sample_rss
  sleep 0.2
done

# The end: clients stop, the server drains and exits cleanly on SIGTERM.
for p in "${CPID[@]}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
for p in "${CPID[@]}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
for i in 0 1 2 3 4 5 6 7; do [ -n "${CKIND[$i]:-}" ] && client_ended $i; done
CPID=()
kill -TERM "$SERVER"; wait "$SERVER"; st=$?
SERVER=""
[ $st -eq 0 ] || fail "the server exited $st on SIGTERM: $(tail -3 "$W/server.log")"
checkpoint "at the end"

# RSS, sampled every loop turn (about 5 a second): for each instance that lived 20 s or
# more, the samples after its warm-up (a third of its life, between 8 and 30 s) are split
# into an early and a late half, and the late half's floor (10th percentile) must be within
# 10% of the early half's. The floor, because the samples are bimodal: a request over
# 128 KiB gets a buffer of its own, mapped while it is in flight and unmapped when answered,
# so nbdcopy's 4 connections x 64 reads of 256 KiB add about 16 MiB while a copy runs and
# nothing between copies (a 60 s run here: 26-28 MiB or 41-45 MiB, rarely between). The
# median of such samples moves with the share of samples taken mid-copy; the floor is what
# the server keeps between bursts, and memory that leaks stays in it. Medians are printed too.
rss_summary=$(sort -k1,1n -k2,2n "$W/rss.log" 2>/dev/null | awk '
  function median(a, lo, hi,   m, k, j, x, b) {
    m = 0; for (k = lo; k <= hi; k++) b[++m] = a[k]
    for (k = 2; k <= m; k++) { x = b[k]; for (j = k - 1; j >= 1 && b[j] > x; j--) b[j + 1] = b[j]; b[j + 1] = x }
    return m % 2 ? b[(m + 1) / 2] : (b[m / 2] + b[m / 2 + 1]) / 2
  }
  function floor10(a, lo, hi,   m, k, j, x, b, q) {
    m = 0; for (k = lo; k <= hi; k++) b[++m] = a[k]
    for (k = 2; k <= m; k++) { x = b[k]; for (j = k - 1; j >= 1 && b[j] > x; j--) b[j + 1] = b[j]; b[j + 1] = x }
    q = int((m + 9) / 10); if (q < 1) q = 1
    return b[q]
  }
  { life[$1] = $2; if (!($1 in n)) order[++ni] = $1; n[$1]++; t[$1, n[$1]] = $2; r[$1, n[$1]] = $3 }
  END {
    for (o = 1; o <= ni; o++) {
      i = order[o]
      if (life[i] < 20) continue
      w = life[i] / 3; if (w < 8) w = 8; if (w > 30) w = 30
      m = 0; delete s
      for (k = 1; k <= n[i]; k++) if (t[i, k] >= w) s[++m] = r[i, k]
      if (m < 20) continue
      e = floor10(s, 1, int(m / 2)); l = floor10(s, int(m / 2) + 1, m)
      me = median(s, 1, int(m / 2)); ml = median(s, int(m / 2) + 1, m)
      g = (l - e) * 100 / e
      printf "#%d floor %.1f -> %.1f MiB (%+.1f%%)%s, median %.1f -> %.1f; ", i, e / 1024, l / 1024, g, (g > 10 ? " OVER 10%" : ""), me / 1024, ml / 1024
    }
  }')
if echo "$rss_summary" | grep -q "OVER 10%"; then fail "server RSS grew more than 10% after warm-up: $rss_summary"; fi

echo "soak: $TOTAL s, 8 clients ($client_runs runs, $client_kills SIGKILLed at random), server SIGKILLed $server_kills x and restarted"
echo "soak: $checkpoints checkpoints with the server down, the last checking $acked_checked acknowledged by a flush; lost at any checkpoint: $lost_total"
echo "soak: fio verify failures $fio_verify_failures, qemu-io pattern failures $qemuio_failures, server exits besides the kills $crashes, SIGTERM exit $st"
echo "soak: qemu-img check exit statuses:$check_statuses (0 clean, 3 leaks only)"
echo "soak: server RSS after warm-up: ${rss_summary:-no instance lived 20 s}"
if [ ${#FAILURES[@]} -gt 0 ]; then
  echo "soak: FAIL (${#FAILURES[@]}):"; printf '  %s\n' "${FAILURES[@]}"; exit 1
fi
echo "soak: PASS"
