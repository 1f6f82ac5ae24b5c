#!/bin/bash
# Job-thread CPU time per I/O (`run --output=json`: jobs[0].blockscope) of
# blockscope `run` builds on the job of pairs.sh, RAW and QCOW2 allocated clusters, in
# interleaved rounds with a rotating order.
# CPU per I/O moves far less than IOPS on a machine shared with other work, so it is the
# figure to use for small hot-path costs. Prints per-round figures and each variant's median
# and its ratio to the first variant's median.
#
#   B=build under test   BASE=optional other build   REG=1 also B --inflight-registry=0 and =33
#   N=8 D=/tmp/perf-pairs (shares pairs.sh's images and job file; run pairs.sh once first)
# Usage: B=.build-rel/release/blockscope BASE=/tmp/base/.build-rel/release/blockscope REG=1 N=8 bash scripts/perf/cpupairs.sh
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
B=${B:-.build-rel/release/blockscope}
N=${N:-8}
D=${D:-/tmp/perf-pairs}
B=$(realpath "$B"); [ -n "$BASE" ] && BASE=$(realpath "$BASE")
cd "$D"
[ -f job.fio ] && [ -f alloc.qcow2 ] || { echo "run scripts/perf/pairs.sh first (it makes the images and job.fio)"; exit 1; }
variants=(new)
[ -n "$BASE" ] && variants=(base new)
[ -n "$REG" ] && variants+=(reg0 reg33)
declare -A all
# METRIC=user (default): the job thread's user-space CPU ns per I/O (the engine's own code:
# the figure a hot-path change moves); METRIC=total: user + system (io_uring submission in
# the kernel included, which dominates and varies with the machine's load).
METRIC=${METRIC:-user}
measure() { # the job thread's CPU ns per I/O of one run
  run_variant "$1" "$2" | python3 -c "
import json,sys; j=json.load(sys.stdin)['jobs'][0]; b=j['blockscope']
print(b['cpu_ns_per_io'] if '$METRIC' == 'total' else round(b['user_cpu_ns']/j['write']['total_ios'],1))"
}
report() {
  local line="round $1 $2 $METRIC ns/io:" v
  for v in "${variants[@]}"; do line+=" $v=${r[$v]}"; all[$2.$v]+="${r[$v]} "; done
  echo "$line load=$(cut -d' ' -f1 /proc/loadavg)"
}
source "$HERE/rounds.sh"
rounds
echo "medians over $N rounds (job-thread $METRIC CPU ns per I/O; ratio to ${variants[0]}):"
for img in raw qcow2; do
  ref=$(python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" ${all[$img.${variants[0]}]})
  for v in "${variants[@]}"; do
    echo "  $img $v: $(python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[2:]]; m=statistics.median(v); print(round(m,1), 'ratio', round(m/float(sys.argv[1]),3), '(', min(v), '-', max(v), ')')" $ref ${all[$img.$v]})"
  done
done
