"""Driver of scripts/fio-examples-check.sh: scale fio's example jobs, run fio and blockscope, compare.

For each example that describes block I/O: write a scaled copy (sizes capped at CAP, times
capped, filename/directory lines dropped), run `fio --output-format=json --filename=RAW` and
`blockscope run RAW JOB --write --output=json` on fresh RAW files of FILE_SIZE, and compare
the total I/O count (reads + writes + trims) per job name when the job's amount of I/O is
fixed. Prints one row per example and a summary line.
"""
import json, os, re, signal, subprocess, sys, time

EXAMPLES = [  # fio's examples that describe block I/O on a file or device
    "1mbs_clients", "aio-read", "backwards-read", "basic-verify", "butterfly",
    "cross-stripe-verify", "exitwhat", "fio-rand-RW", "fio-rand-read", "fio-rand-write",
    "fio-seq-RW", "fio-seq-read", "fio-seq-write", "fixed-rate-submission", "flow",
    "iometer-file-access-server", "jesd219", "latency-profile", "poisson-rate-submission",
    "rand-zones", "ssd-steadystate", "ssd-test", "steadystate", "surface-scan",
    "tiobench-example", "waitfor", "zipf", "null",
]
FILE_SIZE = 64 << 20
CAP = 2 << 20                       # size, filesize, io_size
CAP_INCREMENT = 1 << 20             # offset_increment
TIME_CAPS = {"runtime": 2.0, "timeout": 2.0, "startdelay": 1.0, "ss_dur": 1.0, "ss_ramp": 0.5,
             "ramp_time": 0.5}
TIMEOUT = 60                       # seconds per run
DROP = {"filename", "directory", "filename_format"}
SIZE_KEYS = {"size", "filesize", "io_size", "io_limit"}
# A job whose amount of I/O is not fixed: ends on time, on another job, or draws sizes at random.
NOT_FIXED = re.compile(r"^\s*(time_based|bssplit|exitall|exit_what|ss|steadystate)\b", re.M)
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# Examples also run unscaled but for the keys given, on a file of their own size: the shapes
# where a rule showed (cross-stripe-verify's second job reaches the end of the file before
# io_size; fio ends the pass there: 7,678 writes and 7,678 verify reads).
VARIANTS = [
    ("cross-stripe-verify@512M", "cross-stripe-verify",
     {"numjobs": "2", "offset_increment": "288m", "io_size": "32m"}, 512 << 20),
]


def size_of(v):
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)i?b?\s*", v.lower())
    return int(m.group(1)) * UNITS[m.group(2)] if m else None


def seconds_of(v):
    m = re.fullmatch(r"\s*(\d+)\s*(us|ms|s|m|h)?\s*", v.lower())
    if not m:
        return None
    return int(m.group(1)) * {None: 1, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def rate_cap(text):
    """A size that a rate-limited job moves in about two seconds (None without a rate)."""
    caps = []
    bs = 4096
    for m in re.finditer(r"^\s*(?:bs|blocksize)\s*=\s*([0-9]+[kmgKMG]?)\s*$", text, re.M):
        bs = max(bs, size_of(m.group(1)) or 4096)
    for m in re.finditer(r"^\s*rate\s*=\s*([0-9]+[kmgKMG]?)", text, re.M):
        caps.append(2 * (size_of(m.group(1)) or CAP))
    for m in re.finditer(r"^\s*rate_iops\s*=\s*([0-9]+)", text, re.M):
        caps.append(2 * int(m.group(1)) * bs)
    if not caps:
        return None
    return max(bs, min(caps) // bs * bs)


def scale(text):
    out = []
    cap = min(CAP, rate_cap(text) or CAP)
    for line in text.splitlines():
        body = re.split(r"\s[;#]|^[;#]", line, maxsplit=1)[0].strip()
        if "=" in body:
            k, v = (s.strip() for s in body.split("=", 1))
            k = k.lower()
            if k in DROP:
                continue
            if k in SIZE_KEYS and (size_of(v) or 0) > cap:
                line = f"{k}={cap // 1024}k"
            elif k == "offset_increment" and (size_of(v) or 0) > CAP_INCREMENT:
                line = f"{k}={CAP_INCREMENT // 1024}k"
            elif k in TIME_CAPS and seconds_of(v) is not None and seconds_of(v) > TIME_CAPS[k]:
                line = f"{k}={int(TIME_CAPS[k] * 1000)}ms"
            elif k == "latency_window" and int(v) > 500000:
                line = f"{k}=500000"
        elif body.lower() in DROP:
            continue
        out.append(line)
    text = "\n".join(out) + "\n"
    # Threads placed by offset_increment with a strided rw (rw=write:112k): keep each thread's
    # span (io_size * (bs + skip) / bs) inside its increment, so the threads do not overlap.
    stride = re.search(r"^\s*rw\s*=\s*\w+:(\d+[kmg]?)\s*$", text, re.M | re.I)
    if stride and re.search(r"^\s*offset_increment\s*=", text, re.M) and re.search(r"^\s*io_size\s*=", text, re.M):
        bs = max([size_of(m) or 4096 for m in re.findall(r"^\s*bs\s*=\s*(\S+)", text, re.M)] or [4096])
        incr = min([size_of(m) or CAP_INCREMENT for m in re.findall(r"^\s*offset_increment\s*=\s*(\S+)", text, re.M)])
        io = max(bs, incr * bs // (bs + size_of(stride.group(1))) // bs * bs)
        text = re.sub(r"^\s*io_size\s*=.*$", f"io_size={io // 1024}k", text, flags=re.M)
    return text


def totals(doc):
    t = {}
    for j in doc.get("jobs", []):
        n = sum(j[d]["total_ios"] for d in ("read", "write", "trim") if d in j)
        t[j["jobname"]] = t.get(j["jobname"], 0) + n
    return t


def load_json(text):
    i = text.find("{")
    return json.loads(text[i:]) if i >= 0 else None


def fresh(path, size=FILE_SIZE):
    with open(path, "wb") as f:
        f.truncate(size)


def variant(text, keys):
    """The example with `keys` set to the given values (filename/directory dropped)."""
    out = []
    for line in text.splitlines():
        body = re.split(r"\s[;#]|^[;#]", line, maxsplit=1)[0].strip()
        k = body.split("=", 1)[0].strip().lower()
        if k in DROP:
            continue
        if "=" in body and k in keys:
            line = f"{k}={keys[k]}"
        out.append(line)
    return "\n".join(out) + "\n"


def run(argv, cwd, job):
    """Runs argv with its output in files; on timeout kills every process whose command line
    names the job file (fio's job processes can leave the process group)."""
    out_path, err_path = os.path.join(cwd, ".stdout"), os.path.join(cwd, ".stderr")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, start_new_session=True)
        try:
            code = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
                except OSError:
                    continue
                if job in cmd:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
            proc.wait()
            code = 124
    text = open(out_path).read()
    etext = open(err_path).read() + (f"\ntimed out after {TIMEOUT}s" if code == 124 else "")
    return subprocess.CompletedProcess(argv, code, text, etext)


def main():
    ex, work, binary = sys.argv[1:4]
    rows, ran, fixed, matched = [], 0, 0, 0
    cases = [(n, scale(open(os.path.join(ex, n + ".fio")).read()), FILE_SIZE)
             for n in EXAMPLES if os.path.exists(os.path.join(ex, n + ".fio"))]
    cases += [(n, variant(open(os.path.join(ex, base + ".fio")).read(), keys), size)
              for n, base, keys, size in VARIANTS if os.path.exists(os.path.join(ex, base + ".fio"))]
    names = [c[0] for c in cases]
    for name, text, file_size in cases:
        job = os.path.join(work, name + ".fio")
        open(job, "w").write(text)
        # fio's fill_device on a regular file writes until the file system is full: give fio
        # the file's size instead (blockscope's fill_device stops at the end of the image).
        peer = os.path.join(work, name + ".peer.fio")
        open(peer, "w").write(re.sub(r"^\s*(fill_device|fill_fs)\s*=?\s*\S*\s*$", f"size={file_size // 1024}k", text,
                                     flags=re.M | re.I))
        raw_fio, raw_bs = os.path.join(work, name + ".fio.raw"), os.path.join(work, name + ".bs.raw")
        fresh(raw_fio, file_size); fresh(raw_bs, file_size)
        t0 = time.time()
        f = run(["fio", "--output-format=json", "--filename=" + raw_fio, peer], work, peer)
        note = ""
        if f.returncode == 124 and re.search(r"io_submit_mode\s*=\s*offload", text):
            # fio 3.33 can hang at the end of an offload job here; the amount of I/O does not
            # depend on the submit mode, so ask fio again with inline submission.
            inline = re.sub(r"io_submit_mode\s*=\s*offload", "io_submit_mode=inline", open(peer).read())
            open(peer, "w").write(inline)
            fresh(raw_fio, file_size)
            f = run(["fio", "--output-format=json", "--filename=" + raw_fio, peer], work, peer)
            note = " (fio: offload hung, inline)"
        t1 = time.time()
        b = run([binary, "run", raw_bs, job, "--write", "--output=json"], work, job)
        t2 = time.time()
        open(os.path.join(work, name + ".fio.json"), "w").write(f.stdout + f.stderr)
        open(os.path.join(work, name + ".bs.json"), "w").write(b.stdout + b.stderr)
        runs = b.returncode == 0
        ran += runs
        is_fixed = not NOT_FIXED.search(text)
        fio_error = None
        try:
            fdoc = load_json(f.stdout)
            ft = totals(fdoc) if fdoc else None
            errs = [j.get("error", 0) for j in (fdoc or {}).get("jobs", []) if j.get("error", 0)]
            if errs or f.returncode != 0:
                fio_error = f"fio error {errs[0] if errs else f.returncode}"
                ft = None
        except ValueError:
            ft = None
            fio_error = f"fio failed ({f.returncode})"
        try:
            bt = totals(load_json(b.stdout)) if runs else None
        except ValueError:
            bt = None
        if not is_fixed:
            eq = "n/a (not fixed)"
        elif ft is None:
            eq = "n/a (" + (fio_error or "fio failed") + ")"
        else:
            fixed += 1
            ok = bt is not None and ft == bt
            matched += ok
            eq = "yes" if ok else "NO"
        detail = ""
        if not runs:
            detail = (b.stderr.strip().splitlines() or ["?"])[-1][:90]
        elif ft is not None and bt != ft:
            detail = f"fio {sum(ft.values())} blockscope {sum(bt.values())}"
        else:
            detail = f"{sum((bt or {}).values())} ios"
        detail += note
        rows.append((name, "yes" if runs else "NO", eq, f"{t1 - t0:.1f}s/{t2 - t1:.1f}s", detail))
        print(f"{name:28} runs={rows[-1][1]:3} total-ios-equal={eq:18} fio/bs {rows[-1][3]:12} {detail}", flush=True)
    print(f"\n{ran}/{len(names)} examples run; {matched}/{fixed} fixed-amount examples have fio's total I/O count")
    return 0 if ran == len(names) and matched == fixed else 1


if __name__ == "__main__":
    sys.exit(main())
