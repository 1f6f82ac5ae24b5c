#!/usr/bin/env python3
"""Decodes a VHDX or VHD fuzz input into the image file the target writes, so a finding can
be replayed outside the fuzzer (qemu-img check, qemu-io, blockscope run --write).

The inverse of sparse-encode.py plus what the targets do after writing the file
(Fuzz/Sources/FuzzSupport/SparseImage.swift and Checksums.swift): the size is capped at
64 MiB and the checksums are recomputed unless the format's ignored byte says not to
(VHDX offset 0xFFFF, the VHD footer's last byte).

Usage: sparse-decode.py vhdx|vhd INPUT IMAGE_OUT [--program]
With --program the first 32 bytes are a write program (the vhdx-write and vhd targets) and
are skipped; scripts/fuzz/program-to-script.py turns them into a command script."""
import struct, sys

MAX_SIZE = 64 << 20


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def decode(b):
    if len(b) < 8:
        return bytearray()
    size = min(struct.unpack_from("<Q", b, 0)[0], MAX_SIZE)
    img = bytearray(size)
    i = 8
    while i + 8 <= len(b):
        off, length = struct.unpack_from("<II", b, i)
        i += 8
        n = min(length, len(b) - i)
        if n > 0 and off < size:
            m = min(n, size - off)
            img[off:off + m] = b[i:i + m]
        i += n
    return img


def fix_vhdx(img):
    if len(img) <= 0xFFFF or img[0xFFFF] != 0:
        return
    for off, size in ((0x10000, 4096), (0x20000, 4096), (0x30000, 65536), (0x40000, 65536)):
        if off + size > len(img):
            continue
        block = bytearray(img[off:off + size])
        block[4:8] = bytes(4)
        img[off + 4:off + 8] = struct.pack("<I", crc32c(block))


def vhd_checksum(block, field):
    s = sum(v for k, v in enumerate(block) if not field <= k < field + 4)
    return (~s) & 0xFFFFFFFF


def fix_vhd(img):
    if len(img) < 512:
        return
    end = (len(img) - 512) // 512 * 512
    footer = img[end:end + 512]
    if footer[511] != 0:
        return
    for f in sorted({end, 0}):
        b = img[f:f + 512]
        if len(b) == 512 and b[:8] == b"conectix":
            img[f + 64:f + 68] = struct.pack(">I", vhd_checksum(b, 64))
    data_offset = struct.unpack_from(">Q", footer, 16)[0]
    if data_offset + 1024 <= len(img):
        d = img[data_offset:data_offset + 1024]
        img[data_offset + 36:data_offset + 40] = struct.pack(">I", vhd_checksum(d, 36))


def main():
    fmt, inp, out = sys.argv[1:4]
    data = open(inp, "rb").read()
    if "--program" in sys.argv[4:]:
        data = data[32:]
    img = decode(data)
    (fix_vhdx if fmt == "vhdx" else fix_vhd)(img)
    open(out, "wb").write(img)


main()
