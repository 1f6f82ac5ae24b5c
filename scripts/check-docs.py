#!/usr/bin/env python3
"""Lists public/open declarations in Sources/ that have no `///` doc comment above them."""
import os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources")
decl = re.compile(r'^\s*(@\w+(\([^)]*\))?\s+)*(public|open)\s+(final\s+|static\s+|override\s+|indirect\s+|mutating\s+|nonisolated\s+|convenience\s+|required\s+|private\(set\)\s+|internal\(set\)\s+)*(func|var|let|class|struct|enum|protocol|init|subscript|typealias|case|extension|actor)\b')
missing = []
for d, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".swift"):
            continue
        p = os.path.join(d, f)
        lines = open(p, encoding="utf-8").read().split("\n")
        for i, line in enumerate(lines):
            m = decl.match(line)
            if not m or m.group(5) == "extension":
                continue
            j = i - 1
            while j >= 0 and (lines[j].strip().startswith("@") or lines[j].strip() == "" and False):
                j -= 1
            if j >= 0 and lines[j].strip().startswith("///"):
                continue
            if j >= 0 and lines[j].strip().endswith("*/"):
                continue
            missing.append(f"{os.path.relpath(p, os.path.join(root, '..'))}:{i+1}: {line.strip()}")
for m in missing:
    print(m)
sys.exit(1 if missing else 0)
