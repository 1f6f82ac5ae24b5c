#!/usr/bin/env bash
# Executions a second of fuzz binaries, for docs/FUZZING.md: each TARGET runs SECONDS from
# its seeds (.build-fuzz/seeds, made by `make fuzz`) with a fresh empty corpus, once per
# binary folder, the folders one after the other (interleaved per target).
#   usage: throughput.sh SECONDS "DIR[:ASAN_OPTIONS] ..." TARGET...
#   e.g.   throughput.sh 20 ".build-fuzz/before .build-fuzz/release" qcow2-read jobfile
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:?usage: throughput.sh SECONDS \"DIR...\" TARGET...}; dirs=$2; shift 2
for t in "$@"; do
    case $t in qcow2-*) d=qcow2 ;; vhdx*) d=vhdx ;; *) d=$t ;; esac
    for spec in $dirs; do
        bin=${spec%%:*}; asan=detect_leaks=0
        [ "$spec" != "$bin" ] && asan=${spec#*:}
        work=$(mktemp -d)
        SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=$asan "$bin/$t" -max_total_time="$secs" -dict="Fuzz/dict/$d.dict" \
            -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$work/" \
            "$work" ".build-fuzz/seeds/$t" > "$work.log" 2>&1
        n=$(grep -a '^stat::number_of_executed_units' "$work.log" | awk '{print $2}')
        echo "$t $bin: ${n:-0} execs in ${secs} s = $(( ${n:-0} / secs ))/s"
        rm -rf "$work" "$work.log"
    done
done
