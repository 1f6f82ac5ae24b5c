#!/usr/bin/env bash
# A fuzz campaign that accumulates (docs/FUZZING.md, "Campaigns"): every target in turn at
# nice 19 for an equal share of HOURS, each starting from its committed corpus
# (Fuzz/corpus/TARGET/), the seeds and the regression inputs. After each target its new
# inputs are merged back into Fuzz/corpus/TARGET/ (libFuzzer -merge=1: the smallest set
# that keeps every feature; at most 2 MB, FUZZ_CORPUS_MAX_KB, packed as corpus.tar.xz when
# the files would pass that: scripts/fuzz/corpus.sh) and one row is appended to
# the table in docs/FUZZING.md: date, executions this run, cumulative executions, coverage
# of the merged corpus (cov/ft), crashes found. Commit the corpus and the rows afterwards.
#   usage: scripts/fuzz/campaign.sh HOURS [TARGET...]      (make fuzz-campaign FUZZ_HOURS=N)
# Environment: FUZZ_END=HH:MM (UTC): end by then even if HOURS says later (merges included);
# FUZZ_PARALLEL (default 1): targets at once; FUZZ_GOAL=N: a target stops once its cumulative
# executions (the table's last row plus this run) reach N, and with FUZZ_END each target may
# run until the end instead of an equal share, so the targets given first reach the goal and
# the ones after get what is left (a target already at the goal is skipped). Crash inputs stay in fuzz-crashes/campaign/TARGET/;
# logs in .build-fuzz/campaign/. Exit status 1 when a target crashed.
set -uo pipefail
cd "$(dirname "$0")/../.."
hours=${1:?usage: campaign.sh HOURS [TARGET...]}; shift
targets=${*:-"qcow2-read qcow2-write vhdx vhdx-write vhd vmdk explain nbd vhost jobfile script json trace theme prompt"}
read -ra tlist <<< "$targets"
maxkb=${FUZZ_CORPUS_MAX_KB:-2048}
doc=docs/FUZZING.md
marker='<!-- campaign rows end -->'
grep -qF "$marker" "$doc" || { echo "campaign: $doc has no '$marker' line" >&2; exit 2; }

# Build and seeds (scripts/fuzz/run.sh without running anything).
FUZZ_BUILD_ONLY=1 bash scripts/fuzz/run.sh || exit 2
bin=$(swift build --package-path Fuzz --scratch-path .build-fuzz -c release --show-bin-path)
camp=.build-fuzz/campaign
mkdir -p "$camp/bin" "$camp/logs"
. scripts/fuzz/asan-options.sh
. scripts/fuzz/corpus.sh
export SWIFT_BACKTRACE=enable=no

# The time each target gets: HOURS shared equally, less a minute per target for its merge;
# FUZZ_END brings the end forward.
total=$(awk -v h="$hours" 'BEGIN { printf "%d", h * 3600 }')
if [ -n "${FUZZ_END:-}" ]; then
    left=$(( $(date -u -d "$FUZZ_END" +%s) - $(date +%s) ))
    [ "$left" -lt "$total" ] && total=$left
fi
jobs=${FUZZ_PARALLEL:-1}
slots=$(( (${#tlist[@]} + jobs - 1) / jobs ))
per=$(( total / slots - 60 ))
end_epoch=$(( $(date +%s) + total ))
goal=${FUZZ_GOAL:-}
if [ "$per" -lt 10 ] && [ -z "$goal" ]; then echo "campaign: $total s is too little for ${#tlist[@]} targets" >&2; exit 2; fi
echo "campaign: ${#tlist[@]} targets, $per s each, $jobs at a time, at nice 19 (until about $(date -u -d "@$(( $(date +%s) + total ))" +%H:%M) UTC)"

dict_of() {
    case $1 in qcow2-*) echo Fuzz/dict/qcow2.dict ;; vhdx*) echo Fuzz/dict/vhdx.dict ;; *) echo "Fuzz/dict/$1.dict" ;; esac
}

commas() { sed -E ':a;s/^([0-9]+)([0-9]{3})/\1,\2/;ta' <<< "$1"; }

# The cumulative executions of TARGET in the table so far (the last row's).
cumulative_of() {
    awk -F'|' -v t="$1" '$3 ~ "`" t "`" { gsub(/[ ,]/, "", $5); c = $5 } END { print c + 0 }' "$doc"
}

one() {
    local t=$1 b="$camp/bin/$1" new="$camp/new/$1" merged="$camp/merged/$1" log="$camp/logs/$1.log"
    cp "$bin/$t" "$b"
    rm -rf "$new" "$merged"; mkdir -p "$new" "$merged" "Fuzz/corpus/$t"
    local committed extra=()
    committed=$(corpus_dir "$t")
    [ -n "$committed" ] && extra+=("$committed")
    [ -d "Fuzz/regressions/$t" ] && extra+=("Fuzz/regressions/$t")
    local dict=()
    [ -f "$(dict_of "$t")" ] && dict=(-dict="$(dict_of "$t")")
    local seconds=$per runs=()
    if [ -n "$goal" ]; then
        local need workers
        need=$(( goal - $(cumulative_of "$t") ))
        if [ "$need" -le 0 ]; then echo "campaign $t: already at $(commas "$goal") executions; skipped"; return 0; fi
        workers=${FUZZ_WORKERS:-$( [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ] && echo 2 || echo 1 )}
        runs=(-runs=$(( need / workers + 1 )))
        # Until the end less a minute and a half for the merge, or the equal share without an end.
        [ -n "${FUZZ_END:-}" ] && seconds=$(( end_epoch - $(date +%s) - 90 ))
        if [ "$seconds" -lt 60 ]; then echo "campaign $t: no time left; skipped"; return 0; fi
    fi
    local line
    line=$(nice -n 19 bash scripts/fuzz/fuzz-one.sh "$b" "$t" "$seconds" "fuzz-crashes/campaign/$t" "$log" \
        "$new" ".build-fuzz/seeds/$t" "${extra[@]}" "${dict[@]}" \
        -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=1024 -reload=0 "${runs[@]}")
    local execs crashes
    execs=$(sed -n 's/.*: \([0-9]*\) execs.*/\1/p' <<< "$line")
    crashes=$(sed -n 's/.* \([0-9]*\) crashes.*/\1/p' <<< "$line")
    # Merge: the committed corpus first, then what this run found, then the seeds.
    nice -n 19 "$b" -merge=1 "${dict[@]}" -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=1024 \
        "$merged" ${committed:+"$committed"} "$new" ".build-fuzz/seeds/$t" > "$camp/logs/$t.merge.log" 2>&1
    if [ "$(ls "$merged" | wc -l)" -eq 0 ]; then
        echo "campaign $t: the merge kept nothing (see $camp/logs/$t.merge.log); corpus left as it was" >&2
        return 1
    fi
    # Stored within the cap (packed if need be; the largest inputs dropped if even that is too big).
    local files dropped
    files=$(ls "$merged" | wc -l)
    dropped=$(store_corpus "$t" "$merged")
    files=$((files - dropped))
    [ "$dropped" -gt 0 ] && echo "campaign $t: $dropped largest inputs dropped to fit ${maxkb} KB" >&2
    # Coverage of the corpus as committed: one pass over it.
    local inited cov ft kb
    inited=$(nice -n 19 "$b" -runs=0 -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=1024 "$(corpus_dir "$t")" 2>&1 | grep -a 'INITED' | tail -1)
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<< "$inited")
    ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<< "$inited")
    kb=$(du -sk --apparent-size "Fuzz/corpus/$t" | cut -f1)
    echo "campaign $t: ${execs:-0} execs, ${crashes:-0} crashes, corpus $files files ($kb KB), cov ${cov:-?} ft ${ft:-?}"
    # The row goes in at once (a campaign stopped early keeps the targets it finished); one
    # writer at a time when targets run in parallel.
    (
        flock 9
        local cum row
        cum=$(( $(cumulative_of "$t") + ${execs:-0} ))
        row=$(printf '| %s | `%s` | %s | %s | %s / %s | %s (%s KB) | %s | %s |' "$(date -u +%Y-%m-%d)" "$t" \
            "$(commas "${execs:-0}")" "$(commas "$cum")" "${cov:-?}" "${ft:-?}" "$files" "$kb" "${crashes:-0}" \
            "$([ "${crashes:-0}" -gt 0 ] && echo "see fuzz-crashes/campaign/$t" || echo "-")")
        awk -v row="$row" -v m="$marker" '$0 == m { print row } { print }' "$doc" > "$doc.tmp" && mv "$doc.tmp" "$doc"
    ) 9> "$camp/doc.lock"
    [ "${crashes:-0}" -eq 0 ]
}

failed=0
for t in "${tlist[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || failed=1; done
    one "$t" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
exit "$failed"
