#!/usr/bin/env bash
# Progress of a long campaign (scripts/fuzz/long-run.sh), one line per target: executions
# so far (all runs of the target), libFuzzer's latest coverage figures (cov: edges,
# ft: features, corp: corpus entries) and the crash inputs saved.
cd "$(dirname "$0")/../.."
targets=${*:-"jobfile script nbd vhost json trace theme prompt qcow2-read qcow2-write vhdx vhdx-write vhd vmdk explain"}
for t in $targets; do
    log=.build-fuzz/long/$t.log
    # Finished runs print stat::/counted:: totals; the running one its latest "#N" line.
    done_execs=$(grep -a 'number_of_executed_units' "$log" 2>/dev/null | awk '{s+=$2} END {print s+0}')
    last=$(grep -a '^#[0-9]' "$log" 2>/dev/null | tail -1)
    # A run still going has a "#N" line after the last run's totals.
    running=0
    lastn=$(grep -an '^#[0-9]' "$log" 2>/dev/null | tail -1 | cut -d: -f1)
    lasttotal=$(grep -an 'number_of_executed_units' "$log" 2>/dev/null | tail -1 | cut -d: -f1)
    if [ -n "$lastn" ] && [ "${lasttotal:-0}" -lt "$lastn" ]; then
        running=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<< "$last")
    fi
    cov=$(grep -a ' cov: ' "$log" 2>/dev/null | tail -1 | sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1, ft \2, corpus \3/p')
    crashes=$(ls "fuzz-crashes/long/$t" 2>/dev/null | grep -cE "^(crash|timeout|oom|leak)-")
    echo "long $t: $(( done_execs + ${running:-0} )) execs, ${cov:-no coverage yet}, $crashes crash inputs"
done
