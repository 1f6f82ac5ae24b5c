# Checks soak journals against an image read without the server (scripts/soak.sh).
# argv: RAW_COPY JOURNAL...
#
# For every block a writer journaled, the copy must hold either the write of the last "A"
# line (acknowledged by a completed flush) or a write whose "I" line has no "A" (in flight
# when a client or the server was killed: it may or may not have landed, and a write left
# in flight by a killed client may land after a later one). Prints one line per journal
# and "lost N" last; exits 1 when any acknowledged write is lost.
import struct, sys

raw, journals = sys.argv[1], sys.argv[2:]
BLOCK = 64 << 10
MAGIC = 0x534f414b
lost = 0
with open(raw, "rb") as img:
    for path in journals:
        acked, pending, writes = {}, {}, 0
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 3:
                    continue  # a line cut by SIGKILL
                kind, off, seq = parts[0], int(parts[1]), int(parts[2])
                if kind == "I":
                    pending.setdefault(off, set()).add(seq)
                elif kind == "A":
                    acked[off] = seq
                    writes += 1
                    pending.get(off, set()).discard(seq)
        bad = 0
        for off, seq in acked.items():
            img.seek(off)
            data = img.read(BLOCK)
            rec = data[:16]
            ok = len(data) == BLOCK and data == rec * (BLOCK // 16)
            if ok:
                magic, _, got = struct.unpack(">IIQ", rec)
                ok = magic == MAGIC and (got == seq or got in pending.get(off, ()))
            if not ok:
                bad += 1
                if bad <= 3:
                    print(f"{path}: block at {off} should hold seq {seq}: {rec.hex()}", file=sys.stderr)
        print(f"{path}: {writes} writes acknowledged by a flush, {len(acked)} blocks checked, {bad} lost")
        lost += bad
print(f"lost {lost}")
sys.exit(1 if lost else 0)
