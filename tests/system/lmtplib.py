"""Small helpers shared by the LMTP tests (tests/proto/test_lmtp.py and
tests/system/test_*.py): a raw LMTP conversation that shows every reply
line as the server sent it, and reading messages back through IMAP.

    c = Conv.tcp(port)                 # reads the 220 greeting
    code, lines = c.cmd('LHLO test')   # one reply (multi-line joined)
    c.send(b'...'); c.reply()          # pipelining: send, then read replies
"""

import re
import socket
import time


class Conv:
    def __init__(self, sock, timeout=20):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b''
        self.greeting = self.reply()

    @classmethod
    def tcp(cls, port, timeout=20):
        return cls(socket.create_connection(('127.0.0.1', port),
                                            timeout=timeout), timeout)

    @classmethod
    def unix(cls, path, timeout=20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        return cls(s, timeout)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('connection closed; buffered %r' % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return line.rstrip(b'\r').decode('utf-8', 'replace')

    def reply(self):
        """(code, [text lines]) of one possibly multi-line reply."""
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if len(line) < 4 or line[3] != '-':
                break
        return int(lines[-1][:3]), lines

    def cmd(self, line):
        self.send(line + '\r\n')
        return self.reply()

    def closed(self, wait=5):
        """True if the server closed the connection (within wait s)."""
        self.sock.settimeout(wait)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def dot_stuff(msg):
    """Message bytes -> DATA payload ending in CRLF.CRLF."""
    if isinstance(msg, str):
        msg = msg.encode()
    out = re.sub(rb'(^|\n)\.', rb'\1..', msg)
    if not out.endswith(b'\n'):
        out += b'\r\n'
    return out + b'.\r\n'


def deliver(conv, sender, rcpts, msg, lhlo=True):
    """One transaction; returns (rcpt replies, data replies) as codes lines."""
    if lhlo:
        conv.cmd('LHLO test.client')
    code, lines = conv.cmd('MAIL FROM:<%s>' % sender)
    assert code == 250, lines
    rr = [conv.cmd('RCPT TO:<%s>' % r) for r in rcpts]
    ok = sum(1 for c, _ in rr if c == 250)
    if ok == 0:
        conv.cmd('RSET')
        return rr, []
    code, lines = conv.cmd('DATA')
    assert code == 354, lines
    conv.send(dot_stuff(msg))
    return rr, [conv.reply() for _ in range(ok)]


def imap_messages(env, address, mailbox='INBOX'):
    """[raw bytes] of every message in mailbox, in UID order (IMAP)."""
    c = env.imap_login(address)
    try:
        typ, _ = c.select('"%s"' % mailbox, readonly=True)
        if typ != 'OK':
            return None
        typ, data = c.uid('FETCH', '1:*', '(BODY.PEEK[])')
        out = []
        for item in data:
            if isinstance(item, tuple):
                out.append(item[1])
        return out
    finally:
        try:
            c.logout()
        except Exception:
            pass


def wait_for(pred, timeout=10, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def imap_up(env):
    try:
        c = env.imap()
        c.logout()
        return True
    except Exception:
        return False


def message_count(env, address, mailbox='INBOX'):
    """Messages in mailbox: IMAP STATUS when IMAP is up, else the counts of
    `loftctl user show` (a line naming the mailbox, then its count)."""
    if imap_up(env):
        c = env.imap_login(address)
        try:
            typ, data = c.status('"%s"' % mailbox, '(MESSAGES)')
            if typ != 'OK':
                return None
            m = re.search(rb'MESSAGES (\d+)', data[0])
            return int(m.group(1))
        finally:
            c.logout()
    rc, out, err = env.loftctl('user', 'show', address)
    if rc != 0:
        raise RuntimeError('loftctl user show: ' + out + err)
    for line in out.splitlines():
        m = re.match(r'\s+"?%s"?:\s*(\d+) messages' % re.escape(mailbox), line)
        if m:
            return int(m.group(1))
    return 0
