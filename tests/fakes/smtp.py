#!/usr/bin/env python3
"""tests/fakes/smtp.py: a small, strict RFC 5321 SMTP server for tests.

Standard library only.  Speaks EHLO/HELO, STARTTLS (RFC 3207), AUTH PLAIN
and LOGIN (RFC 4954), MAIL, RCPT, DATA (with dot-unstuffing), RSET, NOOP,
VRFY, HELP and QUIT, answers 503 for commands out of sequence, and writes
each accepted message as one JSON line to the --spool file:

    {"mail_from": "...", "rcpt_to": [...], "data": "...", "tls": bool,
     "auth_user": "..." | null}

"data" is the message exactly as received after dot-unstuffing, CRLF line
ends included, without the terminating ".".  Once listening it prints
"READY <port>" on stdout (use --port 0 for an ephemeral port).
"""

import argparse
import base64
import binascii
import json
import re
import signal
import socket
import socketserver
import ssl
import sys
import threading

CMD_MAX = 512          # RFC 5321 4.5.3.1.4, CRLF included
TEXT_MAX = 1000        # RFC 5321 4.5.3.1.6, CRLF included
RCPT_MAX = 100         # RFC 5321 4.5.3.1.8
AUTH_LINE_MAX = 12288  # RFC 4954 4
SIZE_MAX = 10 * 1024 * 1024
IDLE_TIMEOUT = 300

PATH_RE = re.compile(r"^<([^<>\s]*)>$")
MAILBOX_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class LineTooLong(Exception):
    pass


class Conn:
    """Buffered CRLF line reader over a (possibly TLS) socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def readline(self, limit):
        """A line with its ending, b"" at EOF; LineTooLong past limit."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                if len(line) > limit:
                    raise LineTooLong()
                return line
            if len(self.buf) > limit:
                # Discard up to the end of this over-long line.
                self.buf = b""
                self._drain_line()
                raise LineTooLong()
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk

    def _drain_line(self):
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return
            i = chunk.find(b"\n")
            if i >= 0:
                self.buf = chunk[i + 1:]
                return

    def send(self, text):
        self.sock.sendall(text.encode("ascii") + b"\r\n")


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.opts = self.server.opts
        self.sock = self.request
        self.sock.settimeout(IDLE_TIMEOUT)
        self.tls = False
        if self.opts.implicit_tls:
            self.sock = self.server.tls_ctx.wrap_socket(self.sock,
                                                        server_side=True)
            self.tls = True
        self.conn = Conn(self.sock)
        self.helo = None
        self.auth_user = None
        self.reset()

    def reset(self):
        self.mail_from = None
        self.rcpt_to = []

    def reply(self, code, *lines):
        lines = lines or ("OK",)
        for i, text in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            self.conn.send("%d%s%s" % (code, sep, text))

    def handle(self):
        try:
            self.reply(220, "localhost ESMTP devpocket-fake ready")
            while True:
                try:
                    raw = self.conn.readline(CMD_MAX)
                except LineTooLong:
                    self.reply(500, "5.5.2 Line too long")
                    continue
                if not raw:
                    return
                if not raw.endswith(b"\r\n"):
                    self.reply(500, "5.5.2 Command lines end with CRLF")
                    continue
                try:
                    line = raw[:-2].decode("ascii")
                except UnicodeDecodeError:
                    self.reply(500, "5.5.2 Non-ASCII command")
                    continue
                if "\r" in line or "\0" in line:
                    self.reply(500, "5.5.2 Invalid character in command")
                    continue
                verb, _, arg = line.partition(" ")
                fn = getattr(self, "cmd_" + verb.upper(), None)
                if fn is None or not verb.isalpha():
                    self.reply(500, "5.5.1 Command unrecognized")
                    continue
                if fn(arg) is False:
                    return
        except (OSError, ssl.SSLError):
            return

    # --- session commands -------------------------------------------------

    def ehlo_lines(self):
        lines = ["localhost greets %s" % self.helo, "8BITMIME",
                 "SIZE %d" % SIZE_MAX, "ENHANCEDSTATUSCODES"]
        if self.server.tls_ctx is not None and not self.tls:
            lines.append("STARTTLS")
        if self.opts.tls_ok(self.tls):
            lines.append("AUTH " + " ".join(self.opts.auth_mechs))
        return lines

    def cmd_EHLO(self, arg):
        if not arg.strip():
            return self.reply(501, "5.5.4 EHLO needs a domain")
        self.helo = arg.strip()
        self.reset()
        self.reply(250, *self.ehlo_lines())

    def cmd_HELO(self, arg):
        if not arg.strip():
            return self.reply(501, "5.5.4 HELO needs a domain")
        self.helo = arg.strip()
        self.reset()
        self.reply(250, "localhost")

    def cmd_STARTTLS(self, arg):
        if arg:
            return self.reply(501, "5.5.4 No parameters allowed")
        if self.server.tls_ctx is None:
            return self.reply(502, "5.5.1 STARTTLS not available")
        if self.tls:
            return self.reply(503, "5.5.1 TLS already active")
        if self.helo is None:
            return self.reply(503, "5.5.1 EHLO first")
        self.reply(220, "2.0.0 Ready to start TLS")
        # Anything pipelined after STARTTLS is discarded (RFC 3207 4.2).
        self.conn.buf = b""
        try:
            self.sock = self.server.tls_ctx.wrap_socket(self.sock,
                                                        server_side=True)
        except (OSError, ssl.SSLError):
            return False
        self.tls = True
        self.conn = Conn(self.sock)
        # The session starts over: no HELO, no AUTH, no transaction.
        self.helo = None
        self.auth_user = None
        self.reset()

    def cmd_AUTH(self, arg):
        if self.helo is None:
            return self.reply(503, "5.5.1 EHLO first")
        if not self.opts.tls_ok(self.tls):
            return self.reply(530, "5.7.0 Must issue a STARTTLS command "
                              "first")
        if self.auth_user is not None:
            return self.reply(503, "5.5.1 Already authenticated")
        if self.mail_from is not None:
            return self.reply(503, "5.5.1 AUTH not allowed in a mail "
                              "transaction")
        parts = arg.split()
        if not parts or len(parts) > 2:
            return self.reply(501, "5.5.4 Syntax: AUTH mechanism "
                              "[initial-response]")
        mech = parts[0].upper()
        if mech not in self.opts.auth_mechs:
            return self.reply(504, "5.5.4 Unrecognized authentication type")
        initial = parts[1] if len(parts) == 2 else None
        if mech == "PLAIN":
            if initial is None:
                initial = self.challenge("")
            elif initial == "=":
                initial = ""
            if initial is None:
                return
            raw = self.b64(initial)
            if raw is None:
                return
            fields = raw.split(b"\0")
            if len(fields) != 3:
                return self.reply(501, "5.5.2 Malformed PLAIN response")
            _, user, password = fields
        else:
            if initial is None:
                initial = self.challenge("VXNlcm5hbWU6")
                if initial is None:
                    return
            user = self.b64(initial)
            if user is None:
                return
            resp = self.challenge("UGFzc3dvcmQ6")
            if resp is None:
                return
            password = self.b64(resp)
            if password is None:
                return
        ok_user = self.opts.user.encode() if self.opts.user else None
        ok_pw = (self.opts.password or "").encode()
        if ok_user is None or user != ok_user or password != ok_pw:
            return self.reply(535, "5.7.8 Authentication credentials "
                              "invalid")
        self.auth_user = user.decode("utf-8", "replace")
        self.reply(235, "2.7.0 Authentication successful")

    def challenge(self, text):
        """Send 334 text, return the client's line, None if cancelled."""
        if text:
            self.reply(334, text)
        else:
            self.conn.send("334 ")
        try:
            raw = self.conn.readline(AUTH_LINE_MAX)
        except LineTooLong:
            self.reply(500, "5.5.6 Authentication exchange line too long")
            return None
        line = raw.rstrip(b"\r\n").decode("ascii", "replace")
        if line == "*":
            self.reply(501, "5.7.0 Authentication cancelled")
            return None
        return line

    def b64(self, text):
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            self.reply(501, "5.5.2 Cannot decode response")
            return None

    # --- mail transaction -------------------------------------------------

    def check_ready(self):
        if self.helo is None:
            self.reply(503, "5.5.1 EHLO first")
            return False
        if not self.opts.tls_ok(self.tls):
            self.reply(530, "5.7.0 Must issue a STARTTLS command first")
            return False
        if self.opts.user and self.auth_user is None:
            self.reply(530, "5.7.0 Authentication required")
            return False
        return True

    def parse_path(self, arg, keyword):
        """(address, params) from 'FROM:<a> PARAM=...', or None."""
        if not arg.upper().startswith(keyword + ":"):
            self.reply(501, "5.5.4 Syntax: %s:<address>" % keyword)
            return None
        rest = arg[len(keyword) + 1:].lstrip(" ")
        path, _, params = rest.partition(" ")
        m = PATH_RE.match(path)
        if m is None:
            self.reply(501, "5.1.7 Bad address syntax")
            return None
        return m.group(1), params.split()

    def cmd_MAIL(self, arg):
        if not self.check_ready():
            return
        if self.mail_from is not None:
            return self.reply(503, "5.5.1 Nested MAIL command")
        parsed = self.parse_path(arg, "FROM")
        if parsed is None:
            return
        addr, params = parsed
        if addr and not MAILBOX_RE.match(addr):
            return self.reply(553, "5.1.7 Bad sender address")
        for p in params:
            key, _, value = p.partition("=")
            key = key.upper()
            if key == "SIZE":
                if not value.isdigit():
                    return self.reply(501, "5.5.4 Bad SIZE value")
                if int(value) > SIZE_MAX:
                    return self.reply(552, "5.3.4 Message too big")
            elif key == "BODY":
                if value.upper() not in ("7BIT", "8BITMIME"):
                    return self.reply(501, "5.5.4 Bad BODY value")
            else:
                return self.reply(555, "5.5.4 Unsupported parameter %s"
                                  % key)
        self.mail_from = addr
        self.reply(250, "2.1.0 Sender OK")

    def cmd_RCPT(self, arg):
        if self.mail_from is None:
            return self.reply(503, "5.5.1 MAIL first")
        parsed = self.parse_path(arg, "TO")
        if parsed is None:
            return
        addr, params = parsed
        if params:
            return self.reply(555, "5.5.4 Unsupported parameter")
        if not MAILBOX_RE.match(addr):
            return self.reply(553, "5.1.3 Bad recipient address")
        if self.server.opts.rcpt_reply:
            code = self.server.opts.rcpt_reply
            return self.reply(code, "5.1.1 No such user here" if code >= 500
                              else "4.2.1 Mailbox busy, try later")
        if len(self.rcpt_to) >= RCPT_MAX:
            return self.reply(452, "4.5.3 Too many recipients")
        self.rcpt_to.append(addr)
        self.reply(250, "2.1.5 Recipient OK")

    def cmd_DATA(self, arg):
        if arg:
            return self.reply(501, "5.5.4 No parameters allowed")
        if self.mail_from is None:
            return self.reply(503, "5.5.1 MAIL first")
        if not self.rcpt_to:
            return self.reply(503, "5.5.1 RCPT first")
        self.reply(354, "End data with <CR><LF>.<CR><LF>")
        data = bytearray()
        error = None
        at_line_start = True  # the previous line ended with CRLF
        while True:
            try:
                raw = self.conn.readline(TEXT_MAX)
            except LineTooLong:
                error = error or (500, "5.5.2 Line too long")
                at_line_start = True
                continue
            if not raw:
                return False  # connection closed inside DATA
            # Only CRLF . CRLF ends the data: no bare-LF smuggling.
            if at_line_start and raw == b".\r\n":
                break
            if not raw.endswith(b"\r\n") or b"\r" in raw[:-2]:
                error = error or (550, "5.6.0 Bare CR or LF in message")
            if at_line_start and raw.startswith(b"."):
                raw = raw[1:]
            at_line_start = raw.endswith(b"\r\n")
            data += raw
            if len(data) > SIZE_MAX:
                error = error or (552, "5.3.4 Message too big")
                data = bytearray()
        if error is not None:
            self.reset()
            return self.reply(*error)
        record = {
            "mail_from": self.mail_from,
            "rcpt_to": list(self.rcpt_to),
            "data": bytes(data).decode("utf-8", "replace"),
            "tls": self.tls,
            "auth_user": self.auth_user,
        }
        self.server.spool(record)
        self.reset()
        self.reply(250, "2.0.0 Message accepted")

    def cmd_RSET(self, arg):
        if arg:
            return self.reply(501, "5.5.4 No parameters allowed")
        self.reset()
        self.reply(250, "2.0.0 Reset")

    def cmd_NOOP(self, arg):
        self.reply(250, "2.0.0 OK")

    def cmd_VRFY(self, arg):
        if not arg:
            return self.reply(501, "5.5.4 VRFY needs an argument")
        self.reply(252, "2.5.0 Cannot VRFY user")

    def cmd_EXPN(self, arg):
        self.reply(502, "5.5.1 EXPN not implemented")

    def cmd_HELP(self, arg):
        self.reply(214, "2.0.0 See RFC 5321")

    def cmd_QUIT(self, arg):
        if arg:
            return self.reply(501, "5.5.4 No parameters allowed")
        self.reply(221, "2.0.0 Bye")
        return False


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, opts):
        self.opts = opts
        self.tls_ctx = None
        if opts.tls_cert:
            self.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
        self.lock = threading.Lock()
        family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
        self.address_family = family
        super().__init__((opts.host, opts.port), Handler)

    def spool(self, record):
        with self.lock, open(self.opts.spool, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def handle_error(self, request, client_address):
        # Clients hanging up or failing the TLS handshake are routine;
        # anything else is a bug in this fake and is shown on stderr.
        if not isinstance(sys.exc_info()[1], (OSError, ssl.SSLError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--spool", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--implicit-tls", action="store_true",
                    help="TLS from the first byte (smtps)")
    ap.add_argument("--require-tls", action="store_true",
                    help="530 for AUTH/MAIL before STARTTLS")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--rcpt-reply", type=int,
                    help="answer every RCPT with this code (550, 451)")
    ap.add_argument("--auth-mechs", default="PLAIN LOGIN",
                    help="mechanisms advertised, e.g. PLAIN")
    opts = ap.parse_args()
    if bool(opts.tls_cert) != bool(opts.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if (opts.implicit_tls or opts.require_tls) and not opts.tls_cert:
        ap.error("--implicit-tls and --require-tls need --tls-cert")
    opts.auth_mechs = [m.upper() for m in opts.auth_mechs.split()]
    for m in opts.auth_mechs:
        if m not in ("PLAIN", "LOGIN"):
            ap.error("unsupported mechanism " + m)
    opts.tls_ok = lambda tls: tls or not opts.require_tls

    server = Server(opts)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print("READY %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
