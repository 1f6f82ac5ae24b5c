#!/usr/bin/env bash
# Runs one libFuzzer binary for SECONDS of wall time, restarting it after each crash
# (at most 20 times) so the time is used, and prints
#   fuzz TARGET: N execs, C crashes
# N sums every run's executions, C counts the inputs saved in CRASHDIR (crash-, leak-,
# timeout-, oom- files). Extra arguments (corpus folders, flags) go to the binary.
#   usage: fuzz-one.sh BINARY TARGET SECONDS CRASHDIR LOG [libFuzzer args...]
# Exit status: 0 without crashes, 1 with.
set -uo pipefail
bin=$1 t=$2 seconds=$3 crashes=$4 log=$5; shift 5
mkdir -p "$crashes"
: > "$log"
execs=0 found=0 runs=0
deadline=$(( $(date +%s) + seconds ))
while :; do
    left=$(( deadline - $(date +%s) ))
    [ "$left" -ge 1 ] && [ "$runs" -le 20 ] || break
    runs=$((runs + 1))
    before=$(ls "$crashes" | grep -cE "^(crash|timeout|oom|leak)-")
    "$bin" "$@" -max_total_time="$left" -print_final_stats=1 -artifact_prefix="$crashes/" >> "$log" 2>&1
    rc=$?
    n=$(grep -a '^stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2}')
    execs=$(( execs + ${n:-0} ))
    # This run's figure is counted: rename it so the next run's is the last one.
    sed -i 's/^stat::number_of_executed_units/counted::number_of_executed_units/' "$log"
    after=$(ls "$crashes" | grep -cE "^(crash|timeout|oom|leak)-")
    found=$(( found + after - before ))
    if [ "$rc" -ne 0 ] && [ "$after" -eq "$before" ]; then
        found=$((found + 1)); break   # died without saving an input (killed?): count it, stop
    fi
    [ "$rc" -ne 0 ] || break
done
# Sandboxes of runs that crashed (their atexit did not run).
for d in /dev/shm/blockscope-fuzz-* /tmp/blockscope-fuzz-*; do
    [ -d "$d" ] && ! kill -0 "${d##*-}" 2>/dev/null && rm -rf "$d"
done
echo "fuzz $t: $execs execs, $found crashes"
[ "$found" -eq 0 ]
