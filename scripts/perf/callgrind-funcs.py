#!/usr/bin/env python3
"""Prints the function names callgrind saw run, first-seen order, once each, from one or
more callgrind output files (made with --demangle=no so the names are linker symbols).
Used by scripts/perf/link-order.sh to write build-support/link-order.txt."""
import sys, re
names = {}
order = []
for path in sys.argv[1:]:
    ids = {}
    for line in open(path, errors='replace'):
        m = re.match(r'^(c?fn)=\((\d+)\)(?: (.*))?$', line.rstrip('\n'))
        if not m: continue
        kind, i, name = m.groups()
        if name: ids[i] = name
        if kind == 'fn' and i in ids:
            n = ids[i]
            if n not in names and not n.startswith('0x'):
                names[n] = 1; order.append(n)
for n in order: print(n)
