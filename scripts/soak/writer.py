# A journaling NBD writer for scripts/soak.sh (run by /usr/bin/python3, which has libnbd).
# argv: URI JOURNAL WRITER_ID REGION_START REGION_LENGTH DEADLINE_EPOCH
#
# Writes 64 KiB blocks inside its own region, four at a time, then NBD_CMD_FLUSH. Before
# sending a block it appends "I offset seq" to the journal; after the flush reply it appends
# "A offset seq" for each block the flush covered. A block's content is a 16-byte record
# (magic, writer, seq) repeated, so a reader can tell which write it holds. Reconnects when
# the server goes away, until the deadline; exits 0 then.
import nbd, os, random, struct, sys, time

uri, journal, wid = sys.argv[1], sys.argv[2], int(sys.argv[3])
start, length, deadline = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
BLOCK = 64 << 10
MAGIC = 0x534f414b  # "SOAK"
blocks = length // BLOCK
rng = random.Random(os.getpid())
jfd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
seq = 0
try:  # continue the sequence after a previous instance (killed at random)
    with open(journal) as f:
        for line in f:
            seq = max(seq, int(line.split()[2]))
except (OSError, IndexError, ValueError):
    pass

def log(kind, off, s):
    os.write(jfd, f"{kind} {off} {s}\n".encode())

def content(s):
    return struct.pack(">IIQ", MAGIC, wid, s) * (BLOCK // 16)

while time.time() < deadline:
    try:
        h = nbd.NBD()
        h.connect_uri(uri)
    except nbd.Error:
        time.sleep(0.05)  # the server is being restarted: try again
        continue
    try:
        while time.time() < deadline:
            batch = []
            for _ in range(4):
                seq += 1
                off = start + rng.randrange(blocks) * BLOCK
                log("I", off, seq)
                h.pwrite(content(seq), off)
                batch.append((off, seq))
            h.flush()
            for off, s in batch:
                log("A", off, s)
    except nbd.Error:
        pass
    finally:
        try:
            h.close()
        except Exception:
            pass
