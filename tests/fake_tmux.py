"""A tmux server in name only, for the tests: every client that connects to
the socket is told to exec a program (MSG_SHELL, 209, protocol version 8),
as a server the environment user runs on the environment's socket can.

    python3 tests/fake_tmux.py SOCKET PROGRAM READY_FILE

It replaces SOCKET if there is one, touches READY_FILE once it listens and
serves until killed."""
import os
import socket
import struct
import sys

path, prog = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(8)
open(sys.argv[3], "w").close()
while True:
    c, _ = s.accept()
    data = prog.encode() + b"\0"
    c.settimeout(0.5)
    try:  # (the driver's bare probes of the socket close at once)
        c.sendall(struct.pack("=IHHII", 209, 16 + len(data), 0, 8,
                              os.getpid()) + data)
        c.recv(65536)
    except OSError:
        pass
    c.close()
