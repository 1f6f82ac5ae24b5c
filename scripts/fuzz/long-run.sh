#!/usr/bin/env bash
# A long fuzz campaign for docs/FUZZING.md: every target at once, each for SECONDS, at
# nice 19; a target that crashes is restarted (scripts/fuzz/fuzz-one.sh) so the campaign
# goes on. Run `make fuzz FUZZ_SECONDS=1` (or scripts/fuzz/run.sh) first: it
# builds the targets and makes the seeds. Binaries are copied, so rebuilding during the
# campaign does not disturb it.
#   usage: scripts/fuzz/long-run.sh SECONDS [TARGET...]
# Output: .build-fuzz/long/TARGET.log; crashes in fuzz-crashes/long/TARGET/; at the end
# one `fuzz TARGET: N execs, C crashes` line per target (.build-fuzz/long/TARGET.result);
# scripts/fuzz/summarize.sh prints coverage and progress at any time.
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:?usage: long-run.sh SECONDS [TARGET...]}; shift
targets=${*:-"qcow2-read qcow2-write vhdx vhdx-write vhd jobfile script"}
bin=$(swift build --package-path Fuzz --scratch-path .build-fuzz -c release --show-bin-path)
long=.build-fuzz/long
mkdir -p "$long/bin"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} SWIFT_BACKTRACE=enable=no
for t in $targets; do
    cp "$bin/$t" "$long/bin/$t"
    case $t in qcow2-*) d=qcow2 ;; vhdx*) d=vhdx ;; *) d=$t ;; esac
    mkdir -p "$long/corpus/$t"
    nice -n 19 bash scripts/fuzz/fuzz-one.sh "$long/bin/$t" "$t" "$seconds" "fuzz-crashes/long/$t" "$long/$t.log" \
        "$long/corpus/$t" ".build-fuzz/corpus/$t" ".build-fuzz/seeds/$t" -dict="Fuzz/dict/$d.dict" \
        -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=1024 > "$long/$t.result" 2>&1 &
done
wait
cat "$long"/*.result
