"""A raw POP3 client for conversation tests: exact bytes on the wire.

    p = Pop3.connect(env)                 # reads the greeting
    p.cmd('USER alice@example.test')      # -> b'+OK ...'
    status, lines = p.multi('LIST')       # multi-line reply, dot-unstuffed
    p.send(b'STAT\r\nNOOP\r\n'); p.line(); p.line()   # pipelining

Also a SCRAM-SHA-256 client (RFC 5802/7677) for AUTH, and helpers to put
mail into a Loft account (LMTP) shared by the POP3 test files.
"""

import base64
import hashlib
import hmac
import os
import socket
import ssl

from loftenv import SLOW, Loft, client_tls_context


class Pop3:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b''
        self.greeting = None

    @classmethod
    def connect(cls, env, proto='pop3', tls=None, port=None, host='127.0.0.1',
                timeout=20):
        port = port or env.port(proto)
        s = socket.create_connection((host, port), timeout=timeout * SLOW)
        if tls is None:
            tls = proto == 'pop3s'
        if tls:
            s = client_tls_context().wrap_socket(s, server_hostname='localhost')
        p = cls(s)
        p.greeting = p.line()
        return p

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError('connection closed')
        self.buf += chunk

    def line(self):
        """One line without its CRLF (bytes)."""
        while b'\r\n' not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def raw_multi(self):
        """The raw body of a multi-line reply up to and including the
        terminating '.\\r\\n' (still dot-stuffed)."""
        while True:
            if self.buf.startswith(b'.\r\n'):
                end = 0
                break
            i = self.buf.find(b'\r\n.\r\n')
            if i >= 0:
                end = i + 2
                break
            self._fill()
        raw, self.buf = self.buf[:end + 3], self.buf[end + 3:]
        return raw

    def multi(self, command=None):
        """(status line, [lines]) of a multi-line reply, unstuffed; if the
        status is -ERR, lines is None."""
        if command is not None:
            self.send(command + '\r\n')
        status = self.line()
        if not status.startswith(b'+OK'):
            return status, None
        raw = self.raw_multi()
        return status, unstuff(raw)

    def cmd(self, command):
        self.send(command + '\r\n')
        return self.line()

    def closed(self, timeout=5):
        """True if the server closes the connection (EOF) within timeout."""
        self.sock.settimeout(timeout * SLOW)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except OSError:
            return True

    def starttls(self):
        self.sock = client_tls_context().wrap_socket(self.sock,
                                                     server_hostname='localhost')

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def login(self, user, password):
        r = self.cmd('USER ' + user)
        if not r.startswith(b'+OK'):
            return r
        return self.cmd('PASS ' + password)


def unstuff(raw):
    """Lines of a dot-stuffed multi-line body (raw ends with '.\\r\\n')."""
    assert raw.endswith(b'.\r\n')
    body = raw[:-3]
    lines = body.split(b'\r\n')[:-1] if body else []
    return [l[1:] if l.startswith(b'.') else l for l in lines]


def message_bytes(lines):
    """The message a RETR reply carried (lines joined with CRLF)."""
    return b''.join(l + b'\r\n' for l in lines)


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def scram_login(p, user, password, initial=True):
    """AUTH SCRAM-SHA-256; returns (final status line, server signature ok)."""
    nonce = b64(os.urandom(18))
    first_bare = 'n=%s,r=%s' % (user.replace('=', '=3D').replace(',', '=2C'), nonce)
    client_first = 'n,,' + first_bare
    if initial:
        r = p.cmd('AUTH SCRAM-SHA-256 ' + b64(client_first))
    else:
        r = p.cmd('AUTH SCRAM-SHA-256')
        if r != b'+ ':
            return r, False
        r = p.cmd(b64(client_first))
    if not r.startswith(b'+ '):
        return r, False
    server_first = base64.b64decode(r[2:]).decode()
    attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
    if not attrs['r'].startswith(nonce):
        return b'bad nonce', False
    salted = hashlib.pbkdf2_hmac('sha256', password.encode(),
                                 base64.b64decode(attrs['s']), int(attrs['i']))
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = 'c=%s,r=%s' % (b64('n,,'), attrs['r'])
    auth_msg = ','.join([first_bare, server_first, without_proof]).encode()
    sig = hmac.new(stored_key, auth_msg, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    r = p.cmd(b64(without_proof + ',p=' + b64(proof)))
    if not r.startswith(b'+ '):
        return r, False
    server_final = base64.b64decode(r[2:]).decode()
    server_key = hmac.new(salted, b'Server Key', hashlib.sha256).digest()
    expect = b64(hmac.new(server_key, auth_msg, hashlib.sha256).digest())
    ok = server_final == 'v=' + expect
    return p.cmd(''), ok


def deliver(env, rcpt, data, sender='sender@example.org'):
    """Delivers one message over LMTP; raises if it was refused."""
    if isinstance(data, str):
        data = data.encode()
    c = env.lmtp()
    try:
        c.ehlo('test.example')
        refused = c.sendmail(sender, [rcpt], data)
        if refused:
            raise RuntimeError('LMTP refused: %r' % (refused,))
    finally:
        try:
            c.quit()
        except Exception:
            pass


def simple_message(n, body=None, subject=None):
    subject = subject or 'message %d' % n
    body = body if body is not None else 'Body of message %d.\r\nSecond line.\r\n' % n
    return ('From: sender@example.org\r\nTo: alice@example.test\r\n'
            'Subject: %s\r\nMessage-ID: <m%d@example.org>\r\n\r\n%s'
            % (subject, n, body)).encode()


def make_env(extra=None, users=None, imap=True):
    """A Loft (not started; use as a context manager); imap=False leaves
    the IMAP listeners out, for tests that only speak POP3 and LMTP."""
    env = Loft(extra=extra, users=users, start=False)
    if not imap:
        for sec in ('imap', 'imaps'):
            env.sections.pop(sec, None)
        env.write_config()
    env._start = True
    return env
