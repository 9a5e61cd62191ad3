"""SMTP test helpers: a sink that remembers what it got, raw-socket
conversations, and mailbox checks through IMAP.

    from smtpconv import Sink, connect, cmd, recv_reply, inbox_count, wait_for
"""

import socket
import threading
import time

from loftenv import SLOW


class Sink:
    """A minimal SMTP server in a thread: remembers every message."""

    def __init__(self, port=0):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', port))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.messages = []
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    def _session(self, c):
        f = c.makefile('rb')
        c.sendall(b'220 sink ESMTP\r\n')
        env = {'rcpts': []}
        while True:
            line = f.readline()
            if not line:
                break
            up = line.upper()
            if up.startswith(b'EHLO'):
                c.sendall(b'250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n')
            elif up.startswith(b'MAIL'):
                env = {'from': line, 'rcpts': []}
                c.sendall(b'250 2.1.0 ok\r\n')
            elif up.startswith(b'RCPT'):
                env['rcpts'].append(line)
                c.sendall(b'250 2.1.5 ok\r\n')
            elif up.startswith(b'DATA'):
                c.sendall(b'354 go\r\n')
                data = b''
                while True:
                    l2 = f.readline()
                    if l2 in (b'.\r\n', b''):
                        break
                    data += l2
                env['data'] = data
                with self.lock:
                    self.messages.append(env)
                c.sendall(b'250 2.0.0 queued\r\n')
            elif up.startswith(b'QUIT'):
                c.sendall(b'221 bye\r\n')
                break
            else:
                c.sendall(b'250 ok\r\n')
        c.close()


def recv_reply(s):
    data = b''
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b'\r\n')
        if len(lines) >= 2 and len(lines[-2]) >= 4 and lines[-2][3:4] == b' ':
            return data


def cmd(s, line):
    s.sendall(line + b'\r\n')
    return recv_reply(s)


def inbox_count(env, user):
    m = env.imap_login(user)
    typ, data = m.select('INBOX')
    n = int(data[0])
    m.logout()
    return n


def inbox_last(env, user):
    m = env.imap_login(user)
    m.select('INBOX')
    typ, data = m.fetch(b'*', '(BODY.PEEK[])')
    m.logout()
    return data[0][1]


def wait_for(cond, timeout=20):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def connect(port, timeout=20):
    """A raw socket to 127.0.0.1:port and its greeting."""
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout * SLOW)
    return s, recv_reply(s)


def inbox_messages(env, user, mailbox='INBOX'):
    """Every message of a mailbox, raw."""
    m = env.imap_login(user)
    typ, data = m.select(mailbox)
    out = []
    if int(data[0]) > 0:
        typ, data = m.fetch(b'1:*', '(BODY.PEEK[])')
        out = [d[1] for d in data if isinstance(d, tuple)]
    m.logout()
    return out


def b64(data):
    import base64
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def scram_sha256(client, user, password):
    """AUTH SCRAM-SHA-256 (RFC 7677) over an smtplib.SMTP client, computed
    here; returns (final code, whether the server's signature verified)."""
    import base64
    import hashlib
    import hmac
    import os
    nonce = b64(os.urandom(18))
    first_bare = 'n=%s,r=%s' % (user.replace('=', '=3D').replace(',', '=2C'), nonce)
    code, resp = client.docmd('AUTH', 'SCRAM-SHA-256 ' + b64('n,,' + first_bare))
    if code != 334:
        return code, False
    server_first = base64.b64decode(resp).decode()
    attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
    if not attrs['r'].startswith(nonce):
        return 0, False
    salted = hashlib.pbkdf2_hmac('sha256', password.encode(),
                                 base64.b64decode(attrs['s']), int(attrs['i']))
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = 'c=%s,r=%s' % (b64('n,,'), attrs['r'])
    auth_msg = ','.join([first_bare, server_first, without_proof]).encode()
    sig = hmac.new(stored_key, auth_msg, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    code, resp = client.docmd(b64(without_proof + ',p=' + b64(proof)))
    if code != 334:
        return code, False
    server_final = base64.b64decode(resp).decode()
    server_key = hmac.new(salted, b'Server Key', hashlib.sha256).digest()
    ok = server_final == 'v=' + b64(hmac.new(server_key, auth_msg,
                                             hashlib.sha256).digest())
    code, resp = client.docmd('')
    return code, ok


def dkim_records(env):
    """{b'selector._domainkey.domain.': b'v=DKIM1; ...'} from loftctl."""
    import re
    rc, out, err = env.loftctl('dkim', 'list', '--records')
    recs = {}
    for line in out.splitlines():
        m = re.match(r'(\S+)\s+\d+\s+IN\s+TXT\s+(.*)$', line)
        if m:
            data = ''.join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2)))
            recs[m.group(1).encode()] = data.encode()
    return recs
