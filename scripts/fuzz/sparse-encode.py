#!/usr/bin/env python3
"""Encodes an image as the sparse input of the VHDX and VHD fuzz targets
(Fuzz/Sources/FuzzSupport/SparseImage.swift): u64 file size, then records
(u32 offset, u32 length, bytes) for the non-zero 512-byte sectors, runs closer than
4 KiB merged.  Usage: sparse-encode.py IMAGE > INPUT"""
import struct, sys

data = open(sys.argv[1], "rb").read()
out = bytearray(struct.pack("<Q", len(data)))
runs, start, last = [], None, None
for off in range(0, len(data), 512):
    if any(data[off:off + 512]):
        if start is None or off - last > 4096:
            if start is not None:
                runs.append((start, last))
            start = off
        last = off + 512
if start is not None:
    runs.append((start, min(last, len(data))))
for a, b in runs:
    out += struct.pack("<II", a, b - a) + data[a:b]
sys.stdout.buffer.write(out)
