#!/usr/bin/env bash
# A long fuzz campaign for docs/FUZZING.md: every target for SECONDS, FUZZ_PARALLEL (2) at a
# time in the order given, at nice 19; a target that crashes is restarted (scripts/fuzz/fuzz-one.sh) so the campaign
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
targets=${*:-"jobfile script nbd vhost json trace theme prompt qcow2-read qcow2-write vhdx vhdx-write vhd vmdk explain"}
bin=$(swift build --package-path Fuzz --scratch-path .build-fuzz -c release --show-bin-path)
long=.build-fuzz/long
mkdir -p "$long/bin"
. scripts/fuzz/asan-options.sh
export SWIFT_BACKTRACE=enable=no
jobs=${FUZZ_PARALLEL:-2}
for t in $targets; do
    cp "$bin/$t" "$long/bin/$t"
    case $t in qcow2-*) d=qcow2 ;; vhdx*) d=vhdx ;; *) d=$t ;; esac
    mkdir -p "$long/corpus/$t" ".build-fuzz/corpus/$t"
    regressions=()
    [ -d "Fuzz/regressions/$t" ] && regressions=("Fuzz/regressions/$t")
    # At most FUZZ_PARALLEL targets at once (default 2: one per core of a 2-core machine).
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    nice -n 19 bash scripts/fuzz/fuzz-one.sh "$long/bin/$t" "$t" "$seconds" "fuzz-crashes/long/$t" "$long/$t.log" \
        "$long/corpus/$t" ".build-fuzz/corpus/$t" ".build-fuzz/seeds/$t" "${regressions[@]}" -dict="Fuzz/dict/$d.dict" \
        -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=1024 -reload=0 > "$long/$t.result" 2>&1 &
done
wait
cat "$long"/*.result
