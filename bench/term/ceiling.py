#!/usr/bin/env python3
"""bench/term/ceiling.py: what tmux itself does with the throughput load.

    python3 bench/term/ceiling.py MB CONF

The same producer as `client URL throughput MB` (base64 -w 76 of random
bytes, MB MiB of output) in a private tmux server with the environments'
tmux.conf (CONF), 120x40 like the client, twice:

  alone       no client attached (tmux parses the stream, draws nothing);
  bare client a tmux client attached in a pty that is read at once, the
              least any terminal costs tmux (it draws into that pty).

Prints one line per figure, in MB/s.  These are the ceilings the
throughput through nginx, websocketd and ws/terminal is compared with.
"""

import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import time


def producer(mb, sock):
    return ("head -c %d /dev/urandom | base64 -w 76; tmux -S %s wait-for -S done"
            % (mb * 1024 * 1024 * 3 // 4, sock))


def alone(mb, conf, d):
    sock = os.path.join(d, "alone.sock")
    t0 = time.monotonic()
    subprocess.run(["tmux", "-S", sock, "-f", conf, "new-session", "-d",
                    "-x", "120", "-y", "40", producer(mb, sock)], check=True)
    subprocess.run(["tmux", "-S", sock, "wait-for", "done"], check=True)
    t = time.monotonic() - t0
    subprocess.run(["tmux", "-S", sock, "kill-server"],
                   stderr=subprocess.DEVNULL, check=False)
    return mb / t


def bare_client(mb, conf, d):
    sock = os.path.join(d, "bare.sock")
    # The producer waits for the client (signal "go") before it starts.
    subprocess.run(["tmux", "-S", sock, "-f", conf, "new-session", "-d",
                    "-x", "120", "-y", "40",
                    "tmux -S %s wait-for go; %s" % (sock, producer(mb, sock))],
                   check=True)
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.execvp("tmux", ["tmux", "-S", sock, "attach"])
    import fcntl
    import struct
    import termios
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    time.sleep(0.3)
    done = subprocess.Popen(["tmux", "-S", sock, "wait-for", "done"])
    t0 = time.monotonic()
    subprocess.run(["tmux", "-S", sock, "wait-for", "-S", "go"], check=True)
    while done.poll() is None:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                os.read(fd, 65536)
            except OSError:
                break
    t = time.monotonic() - t0
    subprocess.run(["tmux", "-S", sock, "kill-server"],
                   stderr=subprocess.DEVNULL, check=False)
    os.close(fd)
    os.waitpid(pid, 0)
    return mb / t


def main():
    if len(sys.argv) != 3 or shutil.which("tmux") is None:
        sys.exit("usage: ceiling.py MB TMUX_CONF (tmux installed)")
    mb, conf = int(sys.argv[1]), sys.argv[2]
    d = tempfile.mkdtemp(prefix="dp-ceiling.")
    try:
        print("tmux alone (no client): %.1f MB/s" % alone(mb, conf, d))
        print("tmux with a bare pty client: %.1f MB/s" %
              bare_client(mb, conf, d))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
