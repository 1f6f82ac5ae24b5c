#!/bin/bash
# Issue 13: map/check/TUI at TiB scale, blockscope beside qemu-img, interleaved rounds.
# Usage: B=path/to/release/blockscope N=5 IMG=images/p1t.qcow2 bash structure-scale.sh [map|check|tui|info|all]
#   map:   wall time of `map --output=json` (qemu-img, blockscope alternating), outputs compared
#   check: wall time and peak RSS (/usr/bin/time -v "Maximum resident set size")
#   ff:    first frame only, B beside B0 (another blockscope build, e.g. the previous one), alternating,
#          read off a pseudo-terminal by first-frame.py (what the process takes, no tmux in the way)
#   tui:   first frame (tab bar visible in a 160x50 tmux pane: includes tmux's start and
#          polling, about 0.06 s) and VmHWM after visiting
#          every view and waiting for the background structure walk ("Host clusters (")
# Images: qemu-img create -f qcow2 -o preallocation=metadata p1t.qcow2 1T (see docs/PERFORMANCE.md)
B=${B:-.build/release/blockscope}
N=${N:-5}
IMG=${IMG:-images/p1t.qcow2}
WHAT=${1:-all}
T=$(mktemp -d)
med() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }
if [ "$WHAT" = map ] || [ "$WHAT" = all ]; then
  for i in $(seq 1 $N); do
    t0=$(now); qemu-img map --output=json "$IMG" > $T/q.json; t1=$(now)
    $B map --output=json "$IMG" > $T/b.json; t2=$(now)
    echo "$t1 - $t0" | bc >> $T/mq; echo "$t2 - $t1" | bc >> $T/mb
    cmp -s $T/q.json $T/b.json || echo "map round $i: OUTPUT DIFFERS"
  done
  echo "map   $(basename $IMG) extents=$(wc -l < $T/q.json) qemu-img median $(med < $T/mq) s  blockscope median $(med < $T/mb) s  (rounds: q $(tr '\n' ' ' < $T/mq)| b $(tr '\n' ' ' < $T/mb))"
fi
if [ "$WHAT" = check ] || [ "$WHAT" = all ]; then
  for i in $(seq 1 $N); do
    /usr/bin/time -v qemu-img check "$IMG" > /dev/null 2> $T/qt
    /usr/bin/time -v $B check "$IMG" > /dev/null 2> $T/bt
    grep -E "Elapsed" $T/qt | awk '{print $NF}' | awk -F: '{print $1*60+$2}' >> $T/cq
    grep -E "Elapsed" $T/bt | awk '{print $NF}' | awk -F: '{print $1*60+$2}' >> $T/cb
    grep "Maximum resident" $T/qt | awk '{print $NF}' >> $T/rq
    grep "Maximum resident" $T/bt | awk '{print $NF}' >> $T/rb
  done
  echo "check $(basename $IMG) qemu-img median $(med < $T/cq) s / $(med < $T/rq) KB  blockscope median $(med < $T/cb) s / $(med < $T/rb) KB  (times q $(tr '\n' ' ' < $T/cq)| b $(tr '\n' ' ' < $T/cb))"
fi
if [ "$WHAT" = info ]; then
  for i in $(seq 1 $N); do
    t0=$(now); qemu-img info "$IMG" > /dev/null; t1=$(now); $B info "$IMG" > /dev/null; t2=$(now)
    echo "$t1 - $t0" | bc >> $T/iq; echo "$t2 - $t1" | bc >> $T/ib
  done
  echo "info  $(basename $IMG) qemu-img median $(med < $T/iq) s  blockscope median $(med < $T/ib) s"
fi
if [ "$WHAT" = ff ]; then
  # Time from exec to the whole first frame (the footer's "q quit" written) on a pseudo-terminal,
  # B0 and B in alternating rounds (scripts/perf/first-frame.py; B0 may equal B).
  python3 "$(dirname "$0")/first-frame.py" -n "$N" -m "q quit" -- "${B0:-$B}" tui "$IMG" -- "$B" tui "$IMG"
fi
if [ "$WHAT" = tui ] || [ "$WHAT" = all ]; then
  for i in $(seq 1 $N); do
    tmux kill-session -t st 2>/dev/null
    t0=$(now)
    tmux new-session -d -s st -x 160 -y 50 "$B tui $IMG"
    until tmux capture-pane -p -t st 2>/dev/null | grep -q " 1 Overview "; do sleep 0.005; done
    t1=$(now)
    pid=$(pgrep -n -f "$B tui $IMG")
    for k in 2 3 4 5 6 7 8 1; do tmux send-keys -t st $k; sleep 0.3; done
    case "$IMG" in *.qcow2) until tmux capture-pane -p -t st | grep -q "Host clusters ("; do sleep 0.05; done;; esac
    t2=$(now)
    for k in 3 4 1; do tmux send-keys -t st $k; sleep 0.3; done
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
    tmux send-keys -t st q
    echo "$t1 - $t0" | bc >> $T/ff; echo "$hwm" >> $T/hw; echo "$t2 - $t0" | bc >> $T/wd
  done
  tmux kill-session -t st 2>/dev/null
  echo "tui   $(basename $IMG) first frame median $(med < $T/ff) s  walk done median $(med < $T/wd) s  VmHWM median $(med < $T/hw) KB  (first frames $(tr '\n' ' ' < $T/ff)| hwm $(tr '\n' ' ' < $T/hw))"
fi
rm -rf $T
