#!/usr/bin/env bash
# Runs one libFuzzer binary for SECONDS of wall time in FUZZ_WORKERS processes at once
# (default: 2 on a machine with 2 or more CPUs, else 1), each restarted after a crash (at
# most 20 times) so the time is used, and prints
#   fuzz TARGET: N execs, C crashes
# N sums every run's executions in every worker, C counts the inputs saved in CRASHDIR
# (crash-, leak-, timeout-, oom- files) plus any run that died without saving one. The workers
# share the output corpus folder (libFuzzer reads what the others add there only at its
# start, so they explore apart and merge on the next run), each has its own log
# (LOG, LOG.1, ...). Extra arguments (corpus folders, flags) go to the binary.
#   usage: fuzz-one.sh BINARY TARGET SECONDS CRASHDIR LOG [libFuzzer args...]
# Exit status: 0 without crashes, 1 with.
set -uo pipefail
bin=$1 t=$2 seconds=$3 crashes=$4 log=$5; shift 5
mkdir -p "$crashes"
workers=${FUZZ_WORKERS:-$( [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ] && echo 2 || echo 1 )}
deadline=$(( $(date +%s) + seconds ))
before=$(ls "$crashes" | grep -cE "^(crash|timeout|oom|leak)-")

# One worker: runs until the deadline, restarting after each crash; writes "EXECS DIED" to $1.
worker() {
    local wlog=$1 result=$2 seed=$3 execs=0 died=0 runs=0 left n rc b a
    shift 3
    : > "$wlog"
    while :; do
        left=$(( deadline - $(date +%s) ))
        [ "$left" -ge 1 ] && [ "$runs" -le 20 ] || break
        runs=$((runs + 1))
        b=$(wc -l < "$wlog")
        "$bin" "$@" -seed="$seed" -max_total_time="$left" -print_final_stats=1 -artifact_prefix="$crashes/" >> "$wlog" 2>&1
        rc=$?
        n=$(grep -a '^stat::number_of_executed_units' "$wlog" | tail -1 | awk '{print $2}')
        execs=$(( execs + ${n:-0} ))
        # This run's figure is counted: rename it so the next run's is the last one.
        sed -i 's/^stat::number_of_executed_units/counted::number_of_executed_units/' "$wlog"
        # A crash is this run's "Test unit written to" line, not a new file: an input the
        # other worker already saved has the same name (a campaign worker took that for a
        # kill and stopped, 2 million executions into a 4.6 million run).
        if [ "$rc" -ne 0 ] && ! tail -n +"$((b + 1))" "$wlog" | grep -aq "Test unit written to"; then
            # Died without saving an input (killed?): count it, say how, stop.
            died=$((died + 1))
            { echo "fuzz $t: a run ended with status $rc without saving an input (signal $((rc > 128 ? rc - 128 : 0))); its log ends:"
              tail -n +"$((b + 1))" "$wlog" | grep -av '^#' | tail -4 | sed "s/^/fuzz $t:   /"; } >> "$tmp/why"
            break
        fi
        [ "$rc" -ne 0 ] || break
        seed=$((seed + 1000))
    done
    echo "$execs $died" > "$result"
}

tmp=$(mktemp -d)
for w in $(seq 0 $((workers - 1))); do
    wlog=$log; [ "$w" -gt 0 ] && wlog=$log.$w
    # Distinct seeds, so two workers never walk the same mutations.
    worker "$wlog" "$tmp/$w" "$(( $(date +%s%N) % 1000000000 + w * 7919 + 1 ))" "$@" &
done
wait
execs=0 found=0
for w in $(seq 0 $((workers - 1))); do
    read -r e d < "$tmp/$w" || { e=0; d=1; }
    execs=$((execs + e)); found=$((found + d))
done
[ -f "$tmp/why" ] && cat "$tmp/why"
rm -rf "$tmp"
after=$(ls "$crashes" | grep -cE "^(crash|timeout|oom|leak)-")
found=$(( found + after - before ))
# Sandboxes of runs that crashed (their atexit did not run).
for d in /dev/shm/blockscope-fuzz-* /tmp/blockscope-fuzz-*; do
    # Only a sandbox's own name (blockscope-fuzz-PID): tests name theirs with a UUID.
    p=${d##*-}
    [[ "$p" =~ ^[0-9]+$ ]] && [ -d "$d" ] && ! kill -0 "$p" 2>/dev/null && rm -rf "$d"
done
echo "fuzz $t: $execs execs, $found crashes"
[ "$found" -eq 0 ]
