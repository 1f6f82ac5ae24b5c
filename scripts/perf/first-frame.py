#!/usr/bin/env python3
"""Time from exec to the TUI's first frame, read straight off a pseudo-terminal.

Usage: first-frame.py [-n ROUNDS] [-m MARKER] -- CMD [ARGS...] [-- CMD2 ARGS...]
Each round starts CMD on a fresh 160x50 pty (TERM=xterm-256color), reads its output until
MARKER (default "Overview") has been written (escape sequences removed before matching), records the elapsed time, sends "q" and
waits for the process to exit (killing it after FF_TIMEOUT s, default 20). With a second command after
another "--", rounds alternate between the two. Prints every round and the median.
The harness's own cost is what `first-frame.py -- /bin/echo Overview` reports.
"""
import os, pty, re, sys, time, select, signal, struct, fcntl, termios, statistics

TIMEOUT = float(os.environ.get("FF_TIMEOUT", "20"))  # seconds to wait for the marker, and for exit after "q"
ESC = re.compile(rb"\x1b\[[0-9;?]*[a-zA-Z]|\x1b[()][0-9A-B]|\x1b[=>]")

def one(cmd, marker):
    t0 = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.environ["LINES"] = "50"; os.environ["COLUMNS"] = "160"
        os.execvp(cmd[0], cmd)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    seen = b""; t1 = None; deadline = t0 + TIMEOUT
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r: continue
        try: chunk = os.read(fd, 65536)
        except OSError: break
        if not chunk: break
        seen += chunk
        if marker in ESC.sub(b"", seen): t1 = time.monotonic(); break
    try: os.write(fd, b"q")
    except OSError: pass
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        try:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r: os.read(fd, 65536)
        except OSError: pass
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done: break
    else:
        os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
    os.close(fd)
    if t1 is None: raise SystemExit(f"first-frame: {' '.join(cmd)}: marker {marker!r} never appeared")
    return t1 - t0

def main():
    args = sys.argv[1:]; n = 9; marker = b"Overview"
    while args and args[0] != "--":
        if args[0] == "-n": n = int(args[1]); args = args[2:]
        elif args[0] == "-m": marker = args[1].encode(); args = args[2:]
        else: raise SystemExit(__doc__)
    cmds = [c.split("\x00") for c in "\x00".join(args[1:]).split("\x00--\x00")]
    times = [[] for _ in cmds]
    for _ in range(n):
        for i, c in enumerate(cmds): times[i].append(one(c, marker))
    for c, t in zip(cmds, times):
        print(f"{' '.join(c)}: median {statistics.median(t):.4f} s, max {max(t):.4f} s, rounds " + " ".join(f"{x:.4f}" for x in t))

main()
