#!/usr/bin/env python3
"""Turns a write target's input (Fuzz/Sources/FuzzSupport/WriteProgram.swift: 32 bytes of
program, then the image) into the image file and the equivalent blockscope command script,
so a crash can be replayed with `blockscope run --write IMAGE SCRIPT` and qemu-img check.
Usage: program-to-script.py INPUT DISK_SIZE IMAGE_OUT SCRIPT_OUT
(For VHDX/VHD inputs the image part is a sparse encoding: decode it with the target.)"""
import sys

data = open(sys.argv[1], "rb").read()
size = int(sys.argv[2], 0)
prog = (data[:32] + bytes(32))[:32]
open(sys.argv[3], "wb").write(data[32:])
kinds = ["write", "write", "zero", "discard", "fsync", "read", "write", "zero"]
lines = []
for i in range(0, 32, 4):
    b0, b1, b2, b3 = prog[i:i + 4]
    if size < 512:
        break
    kind = kinds[b0 & 7]
    off = b1 * 4096 + (b0 >> 4) * 512 + (100 if b0 & 8 else 0)
    length = (b2 + 1) * 512 if b2 < 0xf0 else (b2 - 0xef) * 16384
    off %= size
    length = min(length, size - off)
    if length == 0:
        continue
    if kind == "fsync":
        lines.append("fsync")
    elif kind == "write":
        lines.append(f"write {hex(off)} {hex(length)} {hex(b3)}")
    elif kind == "read":
        lines.append(f"read {hex(off)} {hex(length)}")
    else:
        lines.append(f"{kind} {hex(off)} {hex(length)}")
open(sys.argv[4], "w").write("\n".join(lines) + "\n")
