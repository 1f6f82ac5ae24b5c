#!/usr/bin/env bash
# Builds blockscope's libFuzzer targets (Fuzz/, into .build-fuzz) and runs each for
# FUZZ_SECONDS (default 60), printing exactly one line per target:
#   fuzz TARGET: N execs, C crashes
# Exits 1 when any target crashed (inputs kept in fuzz-crashes/TARGET/), 2 when the build
# or the seeds fail. libFuzzer's own output goes to .build-fuzz/logs/TARGET.log.
#
# Each target starts from its committed corpus (Fuzz/corpus/TARGET/, grown by
# scripts/fuzz/campaign.sh), the seeds and the regression inputs; what it finds goes to
# .build-fuzz/corpus/TARGET/ (kept between runs, never committed).
#
# Environment: FUZZ_SECONDS (per target), FUZZ_TARGETS (space-separated subset),
# FUZZ_NICE (nice level, default 0), FUZZ_ARGS (extra libFuzzer flags, e.g. -jobs),
# FUZZ_BUILD_ONLY=1 (build and make the seeds, run nothing).
# A target that crashes is restarted with the time left (scripts/fuzz/fuzz-one.sh), so C
# counts every crash found within FUZZ_SECONDS (at most 21 per target).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"qcow2-read qcow2-write vhdx vhdx-write vhd vmdk explain jobfile script nbd vhost json trace theme prompt"}
nicelevel=${FUZZ_NICE:-0}
scratch=$root/.build-fuzz
mkdir -p "$scratch/logs"

if ! swift build --package-path Fuzz --scratch-path "$scratch" -c release \
        -Xswiftc -sanitize=fuzzer,address > "$scratch/logs/build.log" 2>&1; then
    grep -v "Cannot export local symbol" "$scratch/logs/build.log" | tail -30 >&2
    echo "fuzz: build failed (full log: .build-fuzz/logs/build.log)" >&2
    exit 2
fi
bin=$(swift build --package-path Fuzz --scratch-path "$scratch" -c release --show-bin-path 2>/dev/null)

# Seeds are made with qemu-img once, and again when the seed script changes.
seeds=$scratch/seeds
stamp=$(cat scripts/fuzz/make-seeds.sh scripts/fuzz/seeds/*/* | cksum | cut -d' ' -f1)
if [ "$(cat "$seeds/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$seeds"
    if ! bash scripts/fuzz/make-seeds.sh "$seeds" > "$scratch/logs/seeds.log" 2>&1; then
        tail -20 "$scratch/logs/seeds.log" >&2
        echo "fuzz: making the seed corpora failed" >&2
        exit 2
    fi
    echo "$stamp" > "$seeds/.stamp"
fi

[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0

dict_of() {
    case $1 in
        qcow2-*) echo Fuzz/dict/qcow2.dict ;;
        vhdx*) echo Fuzz/dict/vhdx.dict ;;
        vhd) echo Fuzz/dict/vhd.dict ;;
        *) echo "Fuzz/dict/$1.dict" ;;
    esac
}

# The ASan settings every fuzz script uses (scripts/fuzz/asan-options.sh: why these).
. scripts/fuzz/asan-options.sh
. scripts/fuzz/corpus.sh
export SWIFT_BACKTRACE=enable=no
# After a crash: the cause as the logs name it and each new input in base64, so a CI log
# that keeps only the output is enough to reproduce (`base64 -d > x; BINARY x`).
report_crash() {
    local t=$1 since=$2 f
    grep -ahE "fuzz property violated|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|Fatal error|^SUMMARY|deadly signal" \
        "$scratch/logs/$t.log"* 2>/dev/null | sed 's/^==[0-9]*==/==/' | sort | uniq -c | head -12 | sed "s/^ */fuzz $t: /"
    find "$root/fuzz-crashes/$t" -maxdepth 1 -type f -newer "$since" 2>/dev/null | head -2 | while read -r f; do
        if [ "$(stat -c %s "$f")" -le 8192 ]; then
            echo "fuzz $t: input $(basename "$f") ($(stat -c %s "$f") bytes), base64: $(base64 -w0 "$f")"
        else
            echo "fuzz $t: input $(basename "$f") ($(stat -c %s "$f") bytes, too big to print)"
        fi
    done
}
failed=0
for t in $targets; do
    mkdir -p "$scratch/corpus/$t"
    # Inputs of fixed findings (Fuzz/regressions/TARGET/) are replayed first, every run.
    extra=()
    committed=$(corpus_dir "$t")
    [ -n "$committed" ] && extra+=("$committed")
    [ -d "Fuzz/regressions/$t" ] && extra+=("Fuzz/regressions/$t")
    dict=()
    [ -f "$(dict_of "$t")" ] && dict=(-dict="$(dict_of "$t")")
    stamp_file=$(mktemp); touch "$stamp_file"
    # shellcheck disable=SC2086
    nice -n "$nicelevel" bash scripts/fuzz/fuzz-one.sh "$bin/$t" "$t" "$seconds" "$root/fuzz-crashes/$t" \
        "$scratch/logs/$t.log" "$scratch/corpus/$t" "$seeds/$t" "${extra[@]}" "${dict[@]}" \
        -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=1024 -reload=0 ${FUZZ_ARGS:-} || { failed=1; report_crash "$t" "$stamp_file"; }
    rm -f "$stamp_file"
done
exit "$failed"
