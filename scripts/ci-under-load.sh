#!/usr/bin/env bash
# Runs `bash .ci/run` N times in a row, each on a fresh clone of REPO with ../shared copied
# beside it, while both cores are kept busy (issue 11: CI must pass on a busy machine).
# The load is two busy loops unless LOAD1/LOAD2 name commands to run instead (the session of
# 2026-12-01 used two libFuzzer campaigns, scripts/fuzz/fuzz-one.sh jobfile/script at nice 0).
#   usage: scripts/ci-under-load.sh N REPO SHARED [WORKDIR]
# Prints one line per run: rc, seconds, load; then the run's VM, fuzz and test summary lines.
set -uo pipefail
n=${1:?N} repo=${2:?REPO} shared=${3:?SHARED} work=${4:-/tmp/ci-under-load}
pids=()
for l in "${LOAD1:-while :; do :; done}" "${LOAD2:-while :; do :; done}"; do
    bash -c "$l" > /dev/null 2>&1 & pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
for i in $(seq 1 "$n"); do
    d=$work/run-$i; rm -rf "$d"; mkdir -p "$d"; cp -r "$shared" "$d/shared"
    git clone -q "$repo" "$d/blockscope"
    s=$(date +%s)
    (cd "$d/blockscope" && bash .ci/run) > "$d/log" 2>&1; rc=$?
    echo "run $i: rc=$rc $(( $(date +%s) - s )) s, $(uptime | sed 's/.*load/load/')"
    grep -aE "^vm-test|^fuzz |Test run with" "$d/log" | tail -11
done
