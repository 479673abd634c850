"""tests/integration/wsclient.py: a small RFC 6455 client for the tests
(Python standard library only).

    ws = connect("/api/v1/ws/terminal/<id>?token=...")
        -> WS on 101, or Refused(status, headers, body, json) otherwise
    ws.send(obj)            one JSON text message
    ws.send_text(s) / ws.send_binary(b) / ws.send_frame(op, payload, fin)
    ws.recv(timeout)        next message as a dict (text frames are JSON);
                            None on timeout; raises Closed at the end
    ws.until(pred, timeout) messages until pred(msg) is true; returns
                            (msg, [messages before it])
    ws.close()              close frame, then the socket

It speaks to the stack's web server (DP_TEST_URL), masks every frame, and
answers the transport's pings.  The server's JSON "close" message is an
ordinary message here; Closed is raised when the connection ends.
"""

import base64
import hashlib
import json
import os
import select
import socket
import struct
import time
import urllib.parse

import harness

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Closed(Exception):
    pass


class Refused:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "Refused(%d, %r)" % (self.status, self.body[:200])


class WS:
    def __init__(self, sock, rest=b""):
        self.sock = sock
        self.buf = bytearray(rest)
        self.frag = None
        self.ended = False

    # -- sending
    def send_frame(self, op, payload, fin=True, mask=True):
        n = len(payload)
        b0 = (0x80 if fin else 0) | op
        mbit = 0x80 if mask else 0
        if n < 126:
            h = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            h = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            h = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            key = os.urandom(4)
            p = bytes(b ^ key[i & 3] for i, b in enumerate(payload)) \
                if n < 4096 else _mask_fast(payload, key)
            h += key
        else:
            p = payload
        self.sock.sendall(h + p)

    def send_text(self, s):
        self.send_frame(1, s.encode() if isinstance(s, str) else s)

    def send_binary(self, b):
        self.send_frame(2, b)

    def send(self, obj):
        self.send_text(json.dumps(obj))

    def close(self):
        try:
            self.send_frame(8, struct.pack("!H", 1000))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def kill(self):
        """Drops the TCP connection without a close frame."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    # -- receiving
    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            return False
        try:
            d = self.sock.recv(262144)
        except (ConnectionResetError, OSError):
            d = b""
        if not d:
            self.ended = True
            raise Closed("connection ended")
        self.buf += d
        return True

    def _frame(self, deadline):
        while True:
            b = self.buf
            if len(b) >= 2:
                n = b[1] & 0x7f
                h = 2
                if n == 126 and len(b) >= 4:
                    n = struct.unpack("!H", bytes(b[2:4]))[0]
                    h = 4
                elif n == 127 and len(b) >= 10:
                    n = struct.unpack("!Q", bytes(b[2:10]))[0]
                    h = 10
                elif n >= 126:
                    h = None
                if h is not None and len(b) >= h + n:
                    op = b[0] & 0x0f
                    fin = bool(b[0] & 0x80)
                    p = bytes(b[h:h + n])
                    del b[:h + n]
                    return op, fin, p
            if self.ended:
                raise Closed("connection ended")
            if not self._fill(deadline):
                return None

    def recv_raw(self, timeout=10):
        """(opcode, payload) of the next data message; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._frame(deadline)
            if f is None:
                return None
            op, fin, p = f
            if op == 9:
                self.send_frame(10, p)
                continue
            if op == 10:
                continue
            if op == 8:
                self.ended = True
                raise Closed("close frame %r" % p[:40])
            if op == 0:
                self.frag[1] += p
                if fin:
                    op, p = self.frag[0], bytes(self.frag[1])
                    self.frag = None
                    return op, p
                continue
            if not fin:
                self.frag = [op, bytearray(p)]
                continue
            return op, p

    def recv(self, timeout=10):
        r = self.recv_raw(timeout)
        if r is None:
            return None
        op, p = r
        if op != 1:
            return {"type": "<binary>", "data": p}
        return json.loads(p.decode("utf-8"))

    def until(self, pred, timeout=10, what="message"):
        """Messages until pred(msg); returns (msg, earlier messages)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            m = self.recv(max(left, 0.01)) if left > 0 else None
            if m is None:
                harness.fail("no %s within %ss; got %s" % (
                    what, timeout, harness._short(seen, 1500)))
            if pred(m):
                return m, seen
            seen.append(m)

    def output_until(self, needle, timeout=10):
        """Terminal output until it contains needle; returns all of it."""
        text = ""
        deadline = time.monotonic() + timeout
        while needle not in text:
            left = deadline - time.monotonic()
            if left <= 0:
                harness.fail("output never showed %r; got %r" % (
                    needle, text[-2000:]))
            m = self.recv(left)
            if m is None:
                continue
            if m.get("type") == "output":
                text += m["data"]
            elif m.get("type") == "close":
                harness.fail("closed while waiting for %r: %r (output %r)" %
                             (needle, m, text[-500:]))
        return text


def _mask_fast(payload, key):
    k = (key * (len(payload) // 4 + 1))[:len(payload)]
    a = int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")
    return a.to_bytes(len(payload), "big")


def connect(path, headers=None, timeout=10, base=None):
    """Opens a WebSocket to path on the stack's web server."""
    u = urllib.parse.urlsplit(base or harness.BASE_URL)
    s = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % u.netloc,
             "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            break
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    hl = head.decode("latin-1").split("\r\n")
    status = int(hl[0].split()[1]) if hl and len(hl[0].split()) > 1 else 0
    hdrs = harness.Headers([tuple(x.split(": ", 1)) for x in hl[1:]
                            if ": " in x])
    if status != 101:
        n = int(hdrs.get("Content-Length", "0") or 0)
        while len(rest) < n:
            d = s.recv(65536)
            if not d:
                break
            rest += d
        s.close()
        return Refused(status, hdrs, rest)
    want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest())
    if hdrs.get("Sec-WebSocket-Accept", "").encode() != want:
        s.close()
        harness.fail("bad Sec-WebSocket-Accept")
    s.settimeout(None)
    return WS(s, rest)
