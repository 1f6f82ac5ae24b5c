#!/usr/bin/env bash
# Runs fio's example job files that describe block I/O through `blockscope run` and through
# fio on the same RAW file, scaled down (sizes capped, times capped, filename/directory
# dropped), and prints per job file: does blockscope run it, and are the total I/O counts
# equal (for jobs whose amount of I/O is fixed: no time_based, no bssplit/bsrange, no
# ratemin/exit rules that cut a job short).
#
# usage: scripts/fio-examples-check.sh [EXAMPLES_DIR] [WORK_DIR]
#   EXAMPLES_DIR  fio's examples/ (default: /usr/share/doc/fio/examples, else a checkout of
#                 fio's repository at the installed version's tag in $FIO_SRC)
#   BLOCKSCOPE    the binary (default: .build/debug/blockscope)
# Exit status: 0 when every example runs and every fixed-amount example matches fio.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
ex=${1:-/usr/share/doc/fio/examples}
work=${2:-$(mktemp -d /var/tmp/fio-examples.XXXXXX)}
bin=${BLOCKSCOPE:-$here/.build/debug/blockscope}
mkdir -p "$work"
[ -d "$ex" ] || { echo "no examples folder $ex (give fio's examples/ as the first argument)" >&2; exit 2; }
exec python3 "$here/scripts/fio_examples_check.py" "$ex" "$work" "$bin"
