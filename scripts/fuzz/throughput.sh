#!/usr/bin/env bash
# Executions per CPU second of fuzz binaries, for docs/FUZZING.md: each TARGET runs RUNS
# inputs (-runs) from its seeds (.build-fuzz/seeds, made by `make fuzz`), plus the committed
# corpus Fuzz/corpus/TARGET when FUZZ_CORPUS=1, with a fresh empty output corpus, once per
# binary folder, the folders one after the other (interleaved per target). The figure is
# executions divided by the process's user + system CPU time (/usr/bin/time), so it holds on
# a busy machine where wall-clock rates (libFuzzer's exec/s) do not; start-up (loading the
# seeds) is included, so use RUNS of 10,000 or more. A folder without :ASAN_OPTIONS runs with
# the options every fuzz script uses (scripts/fuzz/asan-options.sh). With FUZZ_STEADY=1 each
# binary also runs once with -runs=1 (start-up alone: loading and replaying the seeds and the
# corpus), and the line adds the rate after start-up: (executions - replayed inputs) / (CPU
# time - start-up CPU time), what a long campaign gets.
#   usage: throughput.sh RUNS "DIR[:ASAN_OPTIONS] ..." TARGET...
#   e.g.   throughput.sh 20000 ".build-fuzz/before .build-fuzz/release" qcow2-read jobfile
set -uo pipefail
cd "$(dirname "$0")/../.."
runs=${1:?usage: throughput.sh RUNS \"DIR...\" TARGET...}; dirs=$2; shift 2
. scripts/fuzz/asan-options.sh
for t in "$@"; do
    case $t in qcow2-*) d=qcow2 ;; vhdx*) d=vhdx ;; *) d=$t ;; esac
    extra=()
    [ "${FUZZ_CORPUS:-0}" = 1 ] && extra=($(. scripts/fuzz/corpus.sh; corpus_dir "$t"))
    for spec in $dirs; do
        bin=${spec%%:*}; asan=$ASAN_OPTIONS
        [ "$spec" != "$bin" ] && asan=${spec#*:}
        work=$(mktemp -d)
        dict=()
        [ -f "Fuzz/dict/$d.dict" ] && dict=(-dict="Fuzz/dict/$d.dict")
        /usr/bin/time -f "%U %S %e" -o "$work.time" env SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="$asan" \
            "$bin/$t" -runs="$runs" "${dict[@]}" -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=1024 \
            -reload=0 -print_final_stats=1 -artifact_prefix="$work/" "$work" ".build-fuzz/seeds/$t" "${extra[@]}" > "$work.log" 2>&1
        n=$(grep -a '^stat::number_of_executed_units' "$work.log" | awk '{print $2}')
        # The last line: time(1) writes "Command exited with non-zero status N" first after a crash.
        read -r user sys wall < <(tail -1 "$work.time")
        cov=$(grep -a -E '^#[0-9]+[[:space:]]+DONE' "$work.log" | sed -E 's/.*(cov: [0-9]+ ft: [0-9]+).*/\1/')
        steady=""
        if [ "${FUZZ_STEADY:-0}" = 1 ]; then
            inited=$(grep -a -E '^#[0-9]+[[:space:]]+INITED' "$work.log" | sed -E 's/^#([0-9]+).*/\1/')
            rm -rf "$work.0"; mkdir "$work.0"
            /usr/bin/time -f "%U %S %e" -o "$work.time0" env SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="$asan" \
                "$bin/$t" -runs=1 "${dict[@]}" -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=1024 \
                -reload=0 -artifact_prefix="$work.0/" "$work.0" ".build-fuzz/seeds/$t" "${extra[@]}" > /dev/null 2>&1
            read -r u0 s0 _ < <(tail -1 "$work.time0")
            steady=$(awk -v n="${n:-0}" -v i="${inited:-0}" -v c="$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" -v c0="$(awk -v u="$u0" -v s="$s0" 'BEGIN{print u+s}')" \
                'BEGIN { printf "; after start-up (%.2f CPU s, %d inputs replayed): %d per CPU second", c0, i, (c > c0 ? (n - i) / (c - c0) : 0) }')
            rm -rf "$work.0" "$work.time0"
        fi
        awk -v t="$t" -v b="$bin" -v n="${n:-0}" -v u="$user" -v s="$sys" -v w="$wall" -v c="$cov" -v st="$steady" 'BEGIN {
            printf "%s %s: %d execs, %.2f s user + %.2f s sys = %d per CPU second (wall %.1f s), %s%s\n",
                   t, b, n, u, s, (u + s > 0 ? n / (u + s) : 0), w, c, st }'
        # A crash or hang ends the run early: keep its input (the rate is then meaningless).
        for a in "$work"/crash-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*; do
            [ -e "$a" ] || continue
            mkdir -p "fuzz-crashes/$t"; cp "$a" "fuzz-crashes/$t/"
            echo "$t $bin: stopped by $(basename "$a"), kept in fuzz-crashes/$t/"
        done
        rm -rf "$work" "$work.log" "$work.time"
    done
done
