#!/bin/bash
# UI cost (issue 7): the same fio job headless (`blockscope run`) and from the TUI's script
# in a 160x50 tmux pane with the In-flight view live; pairs alternate. Also reports the TUI's
# frames per second while the job ran (hidden --stats-file). Usage: N=5 IMG=qcow2|raw bash ui-cost.sh
B=${B:-.build/release/blockscope}
N=${N:-5}
IMG=${IMG:-qcow2}
D=${D:-${TMPDIR:-/tmp}/blockscope-perf-ui}; mkdir -p $D
cd $D
cat > job.fio <<J
[ui]
rw=randwrite
bs=4k
iodepth=32
direct=${DIRECT:-0}
size=1G
number_ios=${IOS:-200000}
J
if [ "$IMG" = qcow2 ]; then [ -f img.qcow2 ] || qemu-img create -q -f qcow2 -o preallocation=full img.qcow2 1G; I=img.qcow2
else [ -f img.raw ] || qemu-img create -q -f raw -o preallocation=full img.raw 1G; I=img.raw; fi
printf 'view inflight\njob %s/job.fio\n' "$D" > s.txt
secs() { python3 -c "
import re,sys
t=sys.argv[1]; m=re.search(r'([0-9.]+)(ns|µs|us|ms|s)\b',t); v=float(m.group(1)); u=m.group(2)
print(v*{'ns':1e-9,'µs':1e-6,'us':1e-6,'ms':1e-3,'s':1}[u])" "$1"; }
for i in $(seq 1 $N); do
  h=$($B run --write $I job.fio --output=json | python3 -c "import json,sys; print(round(json.load(sys.stdin)['jobs'][0]['write']['iops']))")
  rm -f st.json
  tmux kill-session -t ui 2>/dev/null
  tmux new-session -d -s ui -x 160 -y 50 "$B tui $D/$I --write ${TUIFLAGS:-} --script $D/s.txt --stats-file $D/st.json"
  for k in $(seq 1 600); do sleep 0.1; tmux capture-pane -p -t ui | grep -q "done:" && break; done
  tmux send-keys -t ui q
  for k in $(seq 1 100); do sleep 0.1; [ -s st.json ] && break; done
  line=$(python3 -c "import json; print(json.load(open('st.json'))['jobs'][0])")
  fps=$(python3 -c "import json; d=json.load(open('st.json')); print(round(d['fps'],1), 'busy', round(d['busy_fps'],1), 'pump', round(d['pump_ms_avg'],2), 'draw', round(d['draw_ms_avg'],2), 'worst', round(d['worst_frame_ms'],1))")
  n=$(echo "$line" | sed -E 's/.*done: ([0-9]+) I\/Os in ([^,]+),.*/\1/')
  t=$(echo "$line" | sed -E 's/.*done: ([0-9]+) I\/Os in ([^,]+),.*/\2/')
  tui=$(python3 -c "print(round($n/$(secs "$t")))")
  echo "pair $i $IMG headless=$h tui=$tui ratio=$(python3 -c "print(round($tui/$h,3))") tui-fps=$fps load=$(cut -d' ' -f1 /proc/loadavg)"
done
tmux kill-session -t ui 2>/dev/null
