#!/usr/bin/env python3
"""Mutation fuzzing of the blockscope command line, from outside the process.

The libFuzzer targets (Fuzz/) run the formats in memory through the synchronous engine. This
script runs what a user runs instead: images that qemu-img and qemu-io make (QCOW2 with a
snapshot, a bitmap, 4 KiB clusters, extended L2, a backing file, compressed clusters; VHDX;
dynamic and fixed VHD; monolithicSparse and streamOptimized VMDK), a few bytes of each
changed at random (bytes, bits, 2/4/8-byte fields set to edge values, either byte order,
mostly in the first 64 KiB where the metadata is), then `info`, `info --output json`,
`check`, `map --output json`, `explain` (text and JSON) and `cat` on the file, and a fio job
(random 4k/64k reads and writes, trims, 16 deep) through the io_uring engine with `--write`.

A finding is a run killed by a signal, a Swift runtime trap ("Fatal error"), a run over the
time limit, or, on an image qemu-img check called clean before the job, a job that ends
with status 0 after which qemu-img check reports corruption. Each finding's image (as it was
before the job) and what happened are saved in the output folder.

    usage: cli-mutate.py SECONDS [SEED] [--out DIR] [--blockscope PATH]
    e.g.   python3 scripts/fuzz/cli-mutate.py 600 42 --out fuzz-crashes/cli
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

EDGES = [0, 1, 0x7f, 0x80, 0xff, 0x200, 0x1000, 0x8000, 0xffff, 0x10000, 0x100000, 0x7fffffff,
         0x80000000, 0xffffffff, 0xfffffffffffffe00, 0x7fffffffffffffff, 0xffffffffffffffff]

JOB = """[rw]
rw=randrw
bs=4k,64k
iodepth=16
number_ios=300
randseed=7

[trim]
rw=randtrim
bs=64k
iodepth=4
number_ios=40
"""


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def make_images(d):
    """The images to mutate, made by qemu-img and qemu-io in `d`; returns their names."""
    def io(fmt, img, *cmds):
        args = ["qemu-io", "-f", fmt]
        for c in cmds:
            args += ["-c", c]
        sh(*args, os.path.join(d, img))
    p = lambda n: os.path.join(d, n)
    sh("qemu-img", "create", "-q", "-f", "raw", p("back.raw"), "64M")
    io("raw", "back.raw", "write -P 0x11 0 4M", "write -P 0x22 20M 1M")
    sh("qemu-img", "create", "-q", "-f", "qcow2", p("q1.qcow2"), "64M")
    io("qcow2", "q1.qcow2", "write -P 1 0 1M", "write -P 2 10M 300k", "write -z 20M 1M")
    sh("qemu-img", "snapshot", "-c", "s1", p("q1.qcow2"))
    io("qcow2", "q1.qcow2", "write -P 3 512k 1M", "discard 10M 64k")
    sh("qemu-img", "bitmap", "--add", p("q1.qcow2"), "b0")
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096,refcount_bits=8", p("q2.qcow2"), "16M")
    io("qcow2", "q2.qcow2", "write -P 5 0 200k", "write -P 6 5M 64k")
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", p("q3.qcow2"), "32M")
    io("qcow2", "q3.qcow2", "write -P 7 4k 8k", "write -P 8 1M 100k")
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", "back.raw", "-F", "raw", p("q4.qcow2"), "64M")
    io("qcow2", "q4.qcow2", "write -P 9 2M 3M")
    sh("qemu-img", "convert", "-c", "-O", "qcow2", p("q2.qcow2"), p("q5.qcow2"))
    sh("qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", p("x.vhdx"), "64M")
    io("vhdx", "x.vhdx", "write -P 4 0 3M", "write -P 5 40M 1M")
    sh("qemu-img", "create", "-q", "-f", "vpc", p("d.vhd"), "32M")
    io("vpc", "d.vhd", "write -P 4 0 3M", "write -P 5 20M 1M")
    sh("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", p("f.vhd"), "8M")
    sh("qemu-img", "create", "-q", "-f", "vmdk", p("m.vmdk"), "32M")
    io("vmdk", "m.vmdk", "write -P 4 0 1M", "write -P 5 20M 256k")
    sh("qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", p("m.vmdk"), p("s.vmdk"))
    return sorted(n for n in os.listdir(d) if not n.endswith(".raw"))


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        region = min(len(b), rng.choice([512, 4096, 65536, 1 << 20, len(b)]))
        off = rng.randrange(max(1, region))
        k = rng.random()
        if k < 0.3:
            b[off] = rng.randrange(256)
        elif k < 0.5:
            b[off] ^= 1 << rng.randrange(8)
        else:
            w = rng.choice([2, 4, 8])
            v = rng.getrandbits(8 * w) if rng.random() < 0.3 else rng.choice(EDGES) & ((1 << (8 * w)) - 1)
            off &= ~(w - 1)
            b[off:off + w] = v.to_bytes(w, rng.choice(["big", "little"]))
    return bytes(b[:len(data)])


def run(args, timeout):
    try:
        p = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout,
                           env=dict(os.environ, SWIFT_BACKTRACE="enable=no"))
        return p.returncode, p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return "timeout", ""


def trapped(rc, err):
    return rc == "timeout" or (isinstance(rc, int) and rc < 0) or "Fatal error" in err or "runtime failure" in err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("seconds", type=int)
    ap.add_argument("seed", type=int, nargs="?", default=None)
    ap.add_argument("--out", default="fuzz-crashes/cli")
    ap.add_argument("--blockscope", default=".build/debug/blockscope")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int(time.time())
    rng = random.Random(seed)
    os.makedirs(a.out, exist_ok=True)
    root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    work = tempfile.mkdtemp(prefix="blockscope-cli-mutate-", dir=root)
    try:
        base = os.path.join(work, "base")
        os.mkdir(base)
        images = make_images(base)
        shutil.copy(os.path.join(base, "back.raw"), os.path.join(work, "back.raw"))
        # A copy of the binary: a rebuild meanwhile would make it "text file busy".
        bs = os.path.join(work, "blockscope")
        shutil.copy(a.blockscope, bs)
        job = os.path.join(work, "job.fio")
        with open(job, "w") as f:
            f.write(JOB)
        count = found = 0
        end = time.time() + a.seconds
        while time.time() < end:
            name = rng.choice(images)
            with open(os.path.join(base, name), "rb") as f:
                image = mutate(rng, f.read())
            path = os.path.join(work, "img" + os.path.splitext(name)[1])
            with open(path, "wb") as f:
                f.write(image)
            count += 1
            problem = None
            for c in (["info", path], ["info", "--output", "json", path], ["check", path],
                      ["map", "--output", "json", path], ["explain", path],
                      ["explain", "--output", "json", path], ["cat", path]):
                rc, err = run([bs] + c, 60)
                if trapped(rc, err):
                    problem = (" ".join(c[:-1]), rc, err)
                    break
            if problem is None:
                clean = subprocess.run(["qemu-img", "check", path], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL).returncode == 0
                rc, err = run([bs, "run", "--write", "--engine", "uring", path, job], 120)
                if trapped(rc, err):
                    problem = ("run --write (the image before the job)", rc, err)
                elif rc == 0 and clean:
                    q = subprocess.run(["qemu-img", "check", path], capture_output=True)
                    if q.returncode == 2:
                        problem = ("run --write, then qemu-img check: corruption (the image before the job)",
                                   rc, q.stdout.decode(errors="replace"))
            if problem:
                found += 1
                tag = "%s-%d-%d" % (name, seed, count)
                with open(os.path.join(a.out, tag), "wb") as f:
                    f.write(image)
                with open(os.path.join(a.out, tag + ".txt"), "w") as f:
                    f.write("%s\nstatus %s\n%s\n" % (problem[0], problem[1], problem[2][-4000:]))
                print("cli-mutate: %s: %s, status %s" % (tag, problem[0], problem[1]), flush=True)
            if count % 200 == 0:
                print("cli-mutate: %d images, %d findings" % (count, found), flush=True)
        print("cli-mutate: %d images, %d findings (seed %d)" % (count, found, seed), flush=True)
        return 1 if found else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
