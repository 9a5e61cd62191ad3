#!/usr/bin/env python3
"""`loftctl import` from an IMAP server with 10,000 folders whose names
hold, between them, every letter, digit and symbol of Python's Unicode
database outside ASCII (issue 17, "Bad input it must survive": "an IMAP
source that ... has 10,000 folders with names in every charset"). A
scripted server on loopback lists them in modified UTF-7 (astral code
points as surrogate pairs, RFC 3501 5.1.3), one message in every 500th;
Loft must

  - have every folder afterwards, its name decoded exactly (LIST);
  - keep each folder's UIDVALIDITY (sampled over STATUS) and the
    messages' UIDs;
  - say one summary line per folder, and exit 0;
  - import nothing more on a second run.

Commit 16a2f37 said this was part of proto/test_migrate_imap_liar in
make test; it was not. It runs with LOFT_FOLDERS folders: make test
with 1,000 (the names then hold every 10th code point; about 12 s),
`make test-scaleout` with 10,000 (every code point; 55 s for the import
and 47 s for the second run here, at a load of 7-10 on 2 cores).
"""

import base64
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import unicodedata

from loftenv import SLOW, Loft, Results

R = Results()
PW = 'imap-folders-password-1'
USER = 'alice@example.test'
CAPS = b'IMAP4rev1 AUTH=PLAIN SASL-IR'
DATE = b'"01-Jan-2024 10:00:00 +0000"'
N = int(os.environ.get('LOFT_FOLDERS', '1000'))


def mutf7(name):
    out, run = [], []

    def flush():
        if run:
            b = base64.b64encode(''.join(run).encode('utf-16-be'))
            out.append('&' + b.decode().rstrip('=').replace('/', ',') + '-')
            run.clear()
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append('&-' if ch == '&' else ch)
        else:
            run.append(ch)
    flush()
    return ''.join(out)


def unmutf7(s):
    out = []
    i = 0
    while i < len(s):
        if s[i] != '&':
            out.append(s[i])
            i += 1
            continue
        j = s.index('-', i)
        if j == i + 1:
            out.append('&')
        else:
            b = s[i + 1:j].replace(',', '/')
            b += '=' * (-len(b) % 4)
            out.append(base64.b64decode(b).decode('utf-16-be'))
        i = j + 1
    return ''.join(out)


def code_points():
    """Every letter, digit (number) and symbol outside ASCII."""
    return [chr(c) for c in range(0x80, 0x110000)
            if unicodedata.category(chr(c))[0] in 'LNS']


def folder_names(n):
    cps = code_points()
    if n < 10000:
        cps = cps[::10]
    per = -(-len(cps) // n)
    names = []
    for i in range(n):
        chunk = ''.join(cps[i * per:(i + 1) * per])
        names.append('%s %05d' % (chunk, i))
    return names, len(cps)


def msg(i):
    return (b'From: f%d@example.org\r\nSubject: folder %d\r\n'
            b'Message-ID: <folder%d@example.org>\r\n\r\nbody %d\r\n'
            % (i, i, i, i))


class Server:
    def __init__(self, names):
        self.names = names
        self.by_wire = {mutf7(n).encode(): i for i, n in enumerate(names)}
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self.session(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def session(self, conn):
        # one answer is several writes: without this, Nagle and the
        # client's delayed ACK cost 40 ms a command
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = conn.makefile('rb')
        out = conn.sendall
        out(b'* OK [CAPABILITY ' + CAPS + b'] ready\r\n')
        box = None
        while True:
            line = f.readline()
            if not line:
                return
            parts = line.rstrip(b'\r\n').split(b' ', 2)
            tag, cmd = parts[0], parts[1].upper() if len(parts) > 1 else b''
            rest = parts[2] if len(parts) > 2 else b''
            if cmd == b'CAPABILITY':
                out(b'* CAPABILITY ' + CAPS + b'\r\n' + tag + b' OK done\r\n')
            elif cmd in (b'AUTHENTICATE', b'LOGIN'):
                out(tag + b' OK [CAPABILITY ' + CAPS + b'] in\r\n')
            elif cmd == b'LIST':
                lines = [b'* LIST () "/" INBOX\r\n']
                lines += [b'* LIST () "/" "%s"\r\n' % w for w in self.by_wire]
                out(b''.join(lines) + tag + b' OK done\r\n')
            elif cmd == b'LSUB':
                out(tag + b' OK done\r\n')
            elif cmd == b'EXAMINE':
                box = rest.strip(b'"')
                i = self.by_wire.get(box)
                if box == b'INBOX':
                    out(b'* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n'
                        b'* OK [UIDNEXT 1] n\r\n')
                elif i is None:
                    out(tag + b' NO no such mailbox\r\n')
                    continue
                else:
                    has = i % 500 == 0
                    out(b'* %d EXISTS\r\n* OK [UIDVALIDITY %d] v\r\n'
                        b'* OK [UIDNEXT %d] n\r\n'
                        % (1 if has else 0, 100000 + i, 8 if has else 1))
                out(tag + b' OK [READ-ONLY] done\r\n')
            elif cmd == b'UID' and rest.upper().startswith(b'FETCH'):
                i = self.by_wire.get(box)
                if i is not None and i % 500 == 0:
                    data = msg(i)
                    if b'BODY.PEEK[]' in rest.upper():
                        out(b'* 1 FETCH (UID 7 BODY[] {%d}\r\n%s)\r\n'
                            % (len(data), data))
                    else:
                        out(b'* 1 FETCH (UID 7 FLAGS (\\Seen) INTERNALDATE'
                            b' %s RFC822.SIZE %d)\r\n' % (DATE, len(data)))
                out(tag + b' OK done\r\n')
            elif cmd == b'LOGOUT':
                out(b'* BYE bye\r\n' + tag + b' OK done\r\n')
                return
            else:
                out(tag + b' OK done\r\n')

    def close(self):
        self.stop = True
        self.sock.close()


def run_import(env, url):
    t0 = time.monotonic()
    p = subprocess.run([env.loftctl_bin, '--config', env.config_path,
                        'import', USER, url], input=PW + '\n',
                       capture_output=True, text=True,
                       timeout=1200 * SLOW)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def main():
    names, ncp = folder_names(N)
    print('%d folders, %d code points' % (N, ncp))
    srv = Server(names)
    url = 'imap://alice%%40example.test@127.0.0.1:%d' % srv.port
    try:
        with Loft(users={USER: PW}) as env:
            rc, out, err, secs = run_import(env, url)
            print('import of %d folders: %.1f s' % (N, secs))
            R.check('import: exit 0', rc == 0, (rc, out[-2000:], err[-2000:]))
            imap = env.imap_login(USER, PW)
            typ, lines = imap.list('""', '*')
            have = set()
            for line in lines:
                m = re.search(rb' "/" "?(.*?)"?$', line)
                if m:
                    have.add(unmutf7(m.group(1).decode()))
            missing = [n for n in names if n not in have]
            R.check('every folder there, its name exact',
                    not missing, (len(missing), missing[:3]))
            rnd = random.Random(17)
            sample = rnd.sample(range(N), min(N, 40)) + [0, N - 1]
            bad = []
            for i in sample:
                typ, st = imap.status('"%s"' % mutf7(names[i]),
                                      '(UIDVALIDITY UIDNEXT MESSAGES)')
                want = b'UIDVALIDITY %d' % (100000 + i)
                if typ != 'OK' or want not in st[0]:
                    bad.append((i, st))
            R.check('UIDVALIDITY kept (sampled)', not bad, bad[:3])
            imap.select('"%s"' % mutf7(names[0]), readonly=True)
            typ, data = imap.uid('SEARCH', 'ALL')
            R.check('a folder with mail: its UID kept', data[0] == b'7',
                    data)
            imap.logout()
            summary = [n for n in names if n in out]
            R.check('one summary line per folder',
                    len(summary) == N, (len(summary), out[-500:]))
            rc, out, err, secs = run_import(env, url)
            print('second run: %.1f s' % secs)
            R.check('second run: exit 0', rc == 0, (rc, err[-2000:]))
            imap = env.imap_login(USER, PW)
            typ, lines = imap.list('""', '*')
            imap.logout()
            R.check('second run: no folder added', len(lines) == len(have),
                    (len(lines), len(have)))
    finally:
        srv.close()
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
