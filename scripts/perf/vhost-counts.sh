#!/usr/bin/env bash
# Notifications per request on the vhost-user-blk path, blockscope beside
# qemu-storage-daemon: the same TCG guest and image as scripts/perf/vhost-vs-qsd.sh, one job
# per boot. Counts hardly depend on how busy the machine is, unlike IOPS.
#   - interrupts the guest took: the virtio lines of the guest's /proc/interrupts, printed
#     by its init before and after the job;
#   - kicks the guest sent: QEMU's write()s to the eventfds it shares with the server (TCG
#     turns each notify into a write of the queue's kick eventfd);
#   - calls the server made: the server's write()s to those eventfds; and its wake-ups
#     (poll, ppoll, epoll_wait) and io_uring_enter calls;
#   - host CPU time (user + system, all threads) of the server and of QEMU (the vCPUs
#     emulating the guest, and its main loop, which injects the interrupts) per request,
#     and the guest's own busy time per request from its /proc/stat.
# The shared eventfds are found by their eventfd-id in /proc/PID/fdinfo; the syscalls are
# counted in the kernel by `perf stat` with an fd filter, from the guest's mark to its end
# mark. One line per run, per request of the job:
#   COUNTS <server> <job> ios=<N> irq=<..> kicks=<..> calls=<..> wakes=<..> enters=<..> [calls_raw=..]
#   scripts/perf/vhost-counts.sh [ROUNDS] [SECONDS] [JOBS]
# JOBS defaults to "randread:4096 randwrite:4096 seqwrite:131072" (MODE:BS[:QD], QD 32 unless given); SERVERS="blockscope qsd"
# the servers of each round (nbd: blockscope's NBD export through QEMU's NBD client, which
# has no shared eventfds: only irq counts). BLOCKSCOPE_BIN, BASE_BIN as in vhost-cpu.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BLOCKSCOPE_BIN:-$ROOT/.build/release/blockscope}
ROUNDS=${1:-1}
SECS=${2:-5}
JOBS=${3:-"randread:4096 randwrite:4096 seqwrite:131072"}
SERVERS=${SERVERS:-"blockscope qsd"}

source "$ROOT/scripts/perf/vhost-guest.sh"
vhost_setup vhcount

# eventfd-id -> fd of process $1, one "id fd" per line.
eventfds() {
  local f
  for f in /proc/$1/fdinfo/*; do
    sed -n "s|^eventfd-id: *\([0-9]*\)|\1 ${f##*/}|p" "$f" 2>/dev/null || true
  done | sort
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
filter() { local s="" fd; for fd in $1; do s="${s:+$s || }fd == $fd"; done; echo "${s:-fd == 99999}"; }

run() {
  local who=$1 job=$2 bs=$3 sock=$W/vu.sock
  rm -f "$W/console.log" "$W"/perf-*.txt
  vhost_server "$who" "$sock" "$W/server.log"
  vhost_guest "$sock" "$W/console.log" &
  local vm=$! qemu="" started=""
  while kill -0 $vm 2>/dev/null; do
    if [ -z "$started" ] && grep -q COUNT-MARK "$W/console.log" 2>/dev/null; then
      qemu=$(pgrep -f "^qemu-system-x86_64.*$sock" | head -1)
      local shared sfds qfds
      shared=$(join <(eventfds $SERVER) <(eventfds "$qemu") || true)
      sfds=$(awk '{print $2}' <<<"$shared"); qfds=$(awk '{print $3}' <<<"$shared")
      perf stat -x, -o "$W/perf-server.txt" -p $SERVER \
        -e syscalls:sys_enter_write --filter "$(filter "$sfds")" \
        -e syscalls:sys_enter_read --filter "$(filter "$sfds")" \
        -e syscalls:sys_enter_io_uring_enter -e syscalls:sys_enter_poll -e syscalls:sys_enter_ppoll \
        -e syscalls:sys_enter_epoll_wait -e syscalls:sys_enter_write 2>/dev/null &
      PS=$!
      perf stat -x, -o "$W/perf-qemu.txt" -p "$qemu" \
        -e syscalls:sys_enter_write --filter "$(filter "$qfds")" \
        -e syscalls:sys_enter_read --filter "$(filter "$qfds")" 2>/dev/null &
      PQ=$!
      started=1
      echo "$(cpu $SERVER) $(cpu "$qemu")" > "$W/cpu0"
    fi
    if [ -n "$started" ] && grep -q COUNT-END "$W/console.log" 2>/dev/null; then
      echo "$(cpu $SERVER) $(cpu "$qemu")" > "$W/cpu1"; break
    fi
    sleep 0.01
  done
  if [ -n "$started" ]; then kill -INT $PS $PQ 2>/dev/null || true; wait $PS $PQ 2>/dev/null || true; fi
  wait $vm || true
  kill -TERM $SERVER; wait $SERVER || true; SERVER=""
  tr -d "\r" < "$W/console.log" > "$W/console.txt"
  python3 - "$who" "$job" "$W" "$TCK" <<'PY'
import re, sys, os
who, job, w, tck = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
con = open(f"{w}/console.txt").read()
m = re.search(r"LOAD .* ios=(\d+) secs=([0-9.]+) ", con)
if not m:
    print(f"vhost-counts: the {who} {job} run did not finish", file=sys.stderr); sys.exit(0)
ios, secs = int(m.group(1)), float(m.group(2))
def irqs(tag):
    n = 0
    for line in con.splitlines():
        if line.startswith(tag + " "):
            f = line.split()[2:]
            n += sum(int(x) for x in f if x.isdigit())
    return n
irq = irqs("IRQ1") - irqs("IRQ0")
def stat(tag):
    # per vCPU: busy and idle jiffies (user nice system idle iowait irq softirq steal)
    d = {}
    for line in con.splitlines():
        if line.startswith(tag + " "):
            f = line.split()
            v = [int(x) for x in f[2:10]]
            d[f[1]] = (v[0] + v[1] + v[2] + v[5] + v[6], v[3] + v[4], v[5] + v[6])
    return d
s0, s1 = stat("STAT0"), stat("STAT1")
hz = 100
busy = {c: (s1[c][0] - s0[c][0]) for c in s1 if c in s0}
idle = {c: (s1[c][1] - s0[c][1]) for c in s1 if c in s0}
intr = {c: (s1[c][2] - s0[c][2]) for c in s1 if c in s0}
def counts(path):
    out = []
    if not os.path.exists(path): return out
    for line in open(path):
        p = line.strip().split(",")
        if len(p) > 2 and p[0].strip().isdigit(): out.append(int(p[0]))
        elif len(p) > 2 and p[0].startswith("<not"): out.append(0)
    return out
s, q = counts(f"{w}/perf-server.txt"), counts(f"{w}/perf-qemu.txt")
r = lambda v: f"{v / ios:.3f}"
us = lambda j: f"{sum(j.values()) * 1e6 / hz / ios:.1f}"
c0 = [int(x) for x in open(f"{w}/cpu0").read().split()] if os.path.exists(f"{w}/cpu0") else [0, 0]
c1 = [int(x) for x in open(f"{w}/cpu1").read().split()] if os.path.exists(f"{w}/cpu1") else c0
cus = lambda i: f"{(c1[i] - c0[i]) * 1e6 / tck / ios:.1f}"
line = f"COUNTS {who} {job} ios={ios} iops={ios / secs:.0f} server_cpu_us={cus(0)} qemu_cpu_us={cus(1)} irq={r(irq)} guest_busy_us={us(busy)} guest_irq_us={us(intr)} vcpus_busy={sum(busy.values()) / hz / secs:.2f}"
if len(s) == 7 and len(q) == 2:
    line += f" kicks={r(q[0])} calls={r(s[0])} kickreads={r(s[1])} callreads={r(q[1])} enters={r(s[2])} wakes={r(s[3] + s[4] + s[5])} writes={r(s[6])}"
print(line, flush=True)
PY
}

echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) rounds $ROUNDS seconds $SECS jobs $JOBS servers $SERVERS"
for spec in $JOBS; do
  IFS=: read -r job bs qd <<<"$spec"; qd=${qd:-32}
  vhost_guest_build "$W" "echo COUNT-MARK
grep virtio /proc/interrupts | sed 's/^/IRQ0 /'
sleep 1
grep '^cpu[0-9]' /proc/stat | sed 's/^/STAT0 /'
vhost-load /dev/vda $job $bs $qd $SECS 268435456
grep '^cpu[0-9]' /proc/stat | sed 's/^/STAT1 /'
grep virtio /proc/interrupts | sed 's/^/IRQ1 /'
echo COUNT-END"
  for r in $(seq "$ROUNDS"); do
    for s in $SERVERS; do run "$s" "$job@qd$qd" "$bs"; done
  done
  rm -rf "$W/initramfs" "$W/initrd.gz" "$W/master.qcow2"
done
