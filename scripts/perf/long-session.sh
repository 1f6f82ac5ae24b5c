#!/bin/bash
# Issue 13: a long session. A time-based fio job (random 4 KiB writes, rate-limited) runs for
# MINUTES under the TUI (release build, 160x50 tmux pane) on a QCOW2 that grows while it runs;
# the TUI's VmRSS is sampled every 10 s into $D/rss.csv. Every minute the script switches
# view (Overview, L1/L2, Refcounts, Map, In-flight), so the background structure walk is
# asked for again and again while the image changes. At the end: min, max, first-minute and
# last-minute RSS and whether max/min after warm-up (the first minute; and separately, the
# first visit of every view) stays within 10%.
# Usage: B=.build-rel/release/blockscope MINUTES=30 D=$HOME/perf-long nice -n 10 bash long-session.sh
B=${B:-.build-rel/release/blockscope}
B=$(realpath "$B")
MINUTES=${MINUTES:-30}
D=${D:-${TMPDIR:-/tmp}/blockscope-perf-long}; mkdir -p "$D"
cd "$D" || exit 1
S=long$$
rm -f img.qcow2 rss.csv
qemu-img create -q -f qcow2 img.qcow2 8G
cat > job.fio <<J
[long]
rw=randwrite
bs=4k
iodepth=8
size=8G
time_based=1
runtime=${MINUTES}m
rate_iops=${RATE:-500}
J
printf 'view inflight\njob %s/job.fio\n' "$D" > s.txt
tmux new-session -d -s $S -x 160 -y 50 "$B tui $D/img.qcow2 --write --script $D/s.txt"
until pid=$(tmux list-panes -t $S -F '#{pane_pid}' 2>/dev/null) && [ -n "$pid" ]; do sleep 0.1; done
echo "t_s,vmrss_kb,vmhwm_kb,host_bytes,view" > rss.csv
start=$(date +%s)
views=(1 2 3 4 7)   # Overview, L1/L2, Refcounts, Map, In-flight (keys of the tab bar)
i=0
while kill -0 $pid 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  [ $now -gt $(( MINUTES * 60 + 60 )) ] && break
  if [ $(( i % 6 )) -eq 0 ]; then v=${views[$(( (i / 6) % 5 ))]}; tmux send-keys -t $S $v; fi
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null)
  hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status 2>/dev/null)
  echo "$now,$rss,$hwm,$(stat -c %s img.qcow2),$v" >> rss.csv
  if tmux capture-pane -p -t $S | grep -q "done:"; then echo "job finished at ${now}s"; break; fi
  i=$((i + 1))
  sleep 10
done
tmux capture-pane -p -t $S > last-screen.txt
tmux send-keys -t $S q
sleep 1; tmux kill-session -t $S 2>/dev/null
python3 - <<'P'
import csv
rows = [r for r in csv.DictReader(open("rss.csv")) if r["vmrss_kb"]]
rss = [int(r["vmrss_kb"]) for r in rows]
warm = [int(r["vmrss_kb"]) for r in rows if int(r["t_s"]) >= 60] or rss
print(f"samples {len(rss)}, duration {rows[-1]['t_s']} s, host file {int(rows[-1]['host_bytes'])/2**20:.0f} MiB")
print(f"VmRSS all: min {min(rss)} max {max(rss)} KB; after the first minute: min {min(warm)} max {max(warm)} KB, max/min {max(warm)/min(warm):.3f}")
print(f"first-minute median {sorted(rss[:6])[len(rss[:6])//2]} KB, last-minute median {sorted(rss[-6:])[len(rss[-6:])//2]} KB, VmHWM {rows[-1]['vmhwm_kb']} KB")
print("FLAT within 10%" if max(warm) <= 1.10 * min(warm) else "NOT flat within 10%")
# The same from the sample after which every view has been shown once (each view's first
# visit allocates its own structures), so growth and first-visit steps can be told apart.
views = {r["view"] for r in rows}; seen = set(); cyc = None
for k, r in enumerate(rows):
    seen.add(r["view"])
    if seen == views: cyc = k; break
if cyc is not None and cyc + 1 < len(rows):
    c = [int(r["vmrss_kb"]) for r in rows[cyc + 1:]]
    print(f"after every view was shown once (t > {rows[cyc]['t_s']} s): min {min(c)} max {max(c)} KB, max/min {max(c)/min(c):.3f}")
P
