#!/usr/bin/env python3
"""`loftctl import` from an IMAP server that lies (issue 17, "Bad input
it must survive"): a scripted server on loopback (no Dovecot would send
these) whose

  - INBOX says RFC822.SIZE 99999 for a message of a few hundred bytes:
    imported as sent, the mismatch named with its UID;
  - folder "Big" announces a literal of 4 GB (4294967296 octets) for
    its only message: refused at once (nothing allocated or read), the
    run exits 1 naming the server and the size, and what came before
    stays imported;
  - LIST names a folder in invalid modified UTF-7 ("&Jjo"): named, not
    imported, the rest is.
INBOX arrives with the source's UIDVALIDITY and UIDs and each body as
sent; a second run imports nothing twice and says the same of "Big".

While the first run goes on (the server holds its EXAMINE of "Big" until
the test has seen what it waits for), an IMAP client in IDLE on Loft's
INBOX sees INBOX's 3 messages arrive: loftctl tells the running loftd
after each commit, not only at its end.
"""

import re
import socket
import subprocess
import sys
import threading
import time

from imapconv import Conv
from loftenv import SLOW, Loft, Results, load_scale

R = Results()
PW = 'migrate-liar-password-1'
USER = 'alice@example.test'
CAPS = b'IMAP4rev1 AUTH=PLAIN SASL-IR'
DATE = b'"01-Jan-2024 10:00:00 +0000"'


def msg(i):
    return (b'From: s%d@example.org\r\nSubject: liar %d\r\n'
            b'Message-ID: <liar%d@example.org>\r\n\r\nbody of %d\r\n'
            % (i, i, i, i))


INBOX = {1: msg(1), 2: msg(2), 3: msg(3)}
LIE = {2: 99999}                 # RFC822.SIZE the server claims
HUGE = 4294967296


class Liar:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.huge_sent = 0
        self.stop = False
        # EXAMINE "Big" waits for gate while held (the first run)
        self.held = True
        self.gate = threading.Event()
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
        f = conn.makefile('rb')
        out = conn.sendall
        out(b'* OK [CAPABILITY ' + CAPS + b'] liar ready\r\n')
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
                out(b'* LIST () "/" INBOX\r\n'
                    b'* LIST () "/" Big\r\n'
                    b'* LIST () "/" "&Jjo"\r\n' + tag + b' OK done\r\n')
            elif cmd == b'LSUB':
                out(tag + b' OK done\r\n')
            elif cmd == b'EXAMINE':
                box = rest.strip(b'"')
                if box == b'INBOX':
                    out(b'* 3 EXISTS\r\n* OK [UIDVALIDITY 4242] v\r\n'
                        b'* OK [UIDNEXT 4] n\r\n')
                elif box == b'Big':
                    if self.held:
                        self.gate.wait(120 * SLOW * load_scale())
                        self.held = False
                    out(b'* 1 EXISTS\r\n* OK [UIDVALIDITY 4343] v\r\n'
                        b'* OK [UIDNEXT 2] n\r\n')
                else:
                    out(tag + b' NO no such mailbox\r\n')
                    continue
                out(tag + b' OK [READ-ONLY] done\r\n')
            elif cmd == b'UID' and rest.upper().startswith(b'FETCH'):
                self.fetch(out, tag, box, rest)
            elif cmd == b'LOGOUT':
                out(b'* BYE bye\r\n' + tag + b' OK done\r\n')
                return
            else:
                out(tag + b' OK done\r\n')

    def fetch(self, out, tag, box, rest):
        body = b'BODY.PEEK[]' in rest.upper()
        if box == b'INBOX':
            for uid, data in sorted(INBOX.items()):
                if body:
                    out(b'* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n'
                        % (uid, uid, len(data), data))
                else:
                    out(b'* %d FETCH (UID %d FLAGS (\\Seen) INTERNALDATE '
                        b'%s RFC822.SIZE %d)\r\n'
                        % (uid, uid, DATE, LIE.get(uid, len(data))))
        elif box == b'Big':
            if body:
                # the announcement only: a client that believed it would
                # wait for 4 GB
                self.huge_sent += 1
                out(b'* 1 FETCH (UID 1 BODY[] {%d}\r\n' % HUGE)
                return
            out(b'* 1 FETCH (UID 1 FLAGS () INTERNALDATE %s RFC822.SIZE '
                b'%d)\r\n' % (DATE, HUGE))
        out(tag + b' OK done\r\n')

    def close(self):
        self.stop = True
        self.sock.close()


def inbox(env):
    imap = env.imap_login(USER, PW)
    imap.select('INBOX', readonly=True)
    uv = int(imap.response('UIDVALIDITY')[1][0])
    typ, data = imap.uid('FETCH', '1:*', '(BODY.PEEK[])')
    imap.logout()
    got = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb'UID (\d+)', item[0]).group(1))
            got[uid] = item[1]
    return uv, got


def idle_during_import(env, liar, url):
    """Runs the first import while a client IDLEs on Loft's INBOX; the
    server holds the import at "Big" until IDLE shows INBOX's mail."""
    idle = Conv(env.raw('imap'), R)
    idle.login(USER, PW)
    idle.run('SELECT INBOX', 'OK', [r'^\* 0 EXISTS'])
    idle.send(b'i IDLE\r\n')
    idle.expect(r'^\+ ', name='IDLE continuation')
    proc = subprocess.Popen([env.loftctl_bin, '--config', env.config_path,
                             'import', USER, url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdin.write(PW + '\n')
    proc.stdin.close()
    proc.stdin = None   # communicate() below must not flush it
    t0 = time.monotonic()
    seen = idle.expect(r'^\* 3 EXISTS', timeout=60 * SLOW * load_scale(),
                       name='IDLE sees INBOX\'s 3 messages while the'
                       ' import runs')
    running = proc.poll() is None
    if seen:
        print('IDLE saw them %.1f s after the import started'
              % (time.monotonic() - t0))
    R.check('... and the import was still running then (held at "Big")',
            seen and running, running)
    liar.gate.set()
    out, err = proc.communicate(timeout=120 * SLOW)
    idle.send(b'DONE\r\n')
    idle.expect(r'^i OK', name='IDLE done')
    idle.close()
    return proc.returncode, out, err


def main():
    liar = Liar()
    url = 'imap://alice%%40example.test@127.0.0.1:%d' % liar.port
    with Loft(users={USER: PW}) as env:
        for run in (1, 2):
            if run == 1:
                rc, out, err = idle_during_import(env, liar, url)
            else:
                rc, out, err = env.loftctl('import', USER, url,
                                           input=PW + '\n', timeout=120)
            text = out + err
            R.check('run %d: exit 1 (a message was refused)' % run,
                    rc == 1, text)
            R.check('run %d: the 4 GB literal refused, named' % run,
                    re.search(r'Big.*announces a literal of 4294967296'
                              r' bytes: refused', text), text)
            R.check('run %d: "Big" counts its message failed' % run,
                    re.search(r'^Big: 0 imported, 0 already there,'
                              r' 1 failed', out, re.M), out)
            R.check('run %d: the invalid folder name named' % run,
                    re.search(r'&Jjo.*not valid modified UTF-7', text),
                    text)
            if run == 1:
                R.check('run 1: the size lie named, imported as sent',
                        re.search(r'INBOX.*UID 2.*RFC822.SIZE said 99999'
                                  r' bytes, the body has %d: imported as'
                                  r' sent' % len(INBOX[2]), text), text)
                R.check('run 1: INBOX 3 imported',
                        re.search(r'INBOX: 3 imported', text), text)
            else:
                R.check('run 2: INBOX nothing twice',
                        re.search(r'INBOX: 0 imported, 3 already there',
                                  text), text)
            uv, got = inbox(env)
            R.check('run %d: UIDVALIDITY and UIDs kept' % run,
                    uv == 4242 and sorted(got) == [1, 2, 3], (uv, sorted(got)))
            R.check('run %d: bodies as sent' % run,
                    all(got.get(u) == INBOX[u] for u in INBOX), got)
            imap = env.imap_login(USER, PW)
            typ, data = imap.list()
            typ2, st = imap.status('Big', '(MESSAGES)')
            imap.logout()
            R.check('run %d: no invalid folder' % run,
                    not any(b'&Jjo' in x for x in data), data)
            R.check('run %d: nothing half imported into "Big"' % run,
                    typ2 == 'OK' and b'MESSAGES 0' in st[0], (typ2, st))
        R.check('the server announced the literal each run',
                liar.huge_sent == 2, liar.huge_sent)
    liar.close()
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
