#!/usr/bin/env python3
"""`loftctl import` over IMAP as a pipeline (issue 17, "as fast as the
machine allows"): a scripted server on loopback that

  - holds a folder "Many" of 200 messages (four UID FETCH batches of
    64): its first body FETCH gets its tagged OK only once the next UID
    FETCH has come (for up to 10 s), i.e. loftctl sends the next batch's
    command before it has read the last one's reply, so the source
    prepares it meanwhile and no round trip per batch is waited for;
    and that next command is answered first, its tagged OK before the
    first one's (RFC 9051 5.5 lets a server complete pipelined commands
    in any order): every message arrives once, UIDs kept, bodies as
    sent;
  - sends INBOX's 60 messages slowly, in one FETCH response, one every
    0.25 s, until the test's IMAP client in IDLE on Loft's INBOX has
    seen one: loftctl commits a batch that is half a second old even
    when it is far from full, so a running loftd's IDLE clients see
    mail while the source is still sending (before, nothing was
    committed before 128 messages or the folder's end).
A second run imports nothing twice.
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
PW = 'migrate-pipeline-password-1'
USER = 'alice@example.test'
CAPS = b'IMAP4rev1 AUTH=PLAIN SASL-IR'
DATE = b'"01-Jan-2024 10:00:00 +0000"'
SLOW_N = 60
MANY_N = 200


def msg(box, i):
    return (b'From: s%d@example.org\r\nSubject: %s %d\r\n'
            b'Message-ID: <pipe-%s-%d@example.org>\r\n\r\nbody %d of %s\r\n'
            % (i, box, i, box, i, i, box))


BOXES = {b'INBOX': {i: msg(b'INBOX', i) for i in range(1, SLOW_N + 1)},
         b'Many': {i: msg(b'Many', i) for i in range(1, MANY_N + 1)}}
UIDVALIDITY = {b'INBOX': 5151, b'Many': 5252}


def uid_set(s):
    out = []
    for part in s.split(b','):
        if b':' in part:
            a, b = part.split(b':')
            out.extend(range(int(a), int(b) + 1 if b != b'*' else 10 ** 6))
        else:
            out.append(int(part))
    return out


class Source:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.first_run = True
        self.seen = threading.Event()    # the test's IDLE saw mail
        self.seen_at = None              # INBOX messages sent by then
        self.pipelined = None            # the next FETCH came early
        self.out_of_order = False
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
                self.first_run = False

    def session(self, conn):
        f = conn.makefile('rb')
        out = conn.sendall
        out(b'* OK [CAPABILITY ' + CAPS + b'] pipeline ready\r\n')
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
                out(b'* LIST () "/" INBOX\r\n* LIST () "/" Many\r\n'
                    + tag + b' OK done\r\n')
            elif cmd == b'LSUB':
                out(tag + b' OK done\r\n')
            elif cmd == b'EXAMINE':
                box = rest.strip(b'"')
                if box not in BOXES:
                    out(tag + b' NO no such mailbox\r\n')
                    continue
                n = len(BOXES[box])
                out(b'* %d EXISTS\r\n* OK [UIDVALIDITY %d] v\r\n'
                    b'* OK [UIDNEXT %d] n\r\n%s OK [READ-ONLY] done\r\n'
                    % (n, UIDVALIDITY[box], n + 1, tag))
            elif cmd == b'UID' and rest.upper().startswith(b'FETCH'):
                body = b'BODY.PEEK[]' in rest.upper()
                if not body:
                    self.fetch_meta(out, tag, box)
                elif box == b'Many' and self.pipelined is None:
                    # the first body FETCH: its reply but for the OK,
                    # then wait for the next command
                    self.fetch_bodies(out, box, rest)
                    conn.settimeout(10 * SLOW * load_scale())
                    try:
                        nxt = f.readline()
                    except (socket.timeout, OSError):
                        nxt = b''
                    conn.settimeout(None)
                    self.pipelined = bool(nxt)
                    if nxt:
                        p2 = nxt.rstrip(b'\r\n').split(b' ', 2)
                        # answered first, the held one after it
                        self.fetch_bodies(out, box, p2[2])
                        out(p2[0] + b' OK done\r\n')
                        self.out_of_order = True
                    out(tag + b' OK done\r\n')
                else:
                    self.fetch_bodies(out, box, rest,
                                      slow=box == b'INBOX' and
                                      self.first_run)
                    out(tag + b' OK done\r\n')
            elif cmd == b'LOGOUT':
                out(b'* BYE bye\r\n' + tag + b' OK done\r\n')
                return
            else:
                out(tag + b' OK done\r\n')

    def fetch_meta(self, out, tag, box):
        for uid, data in sorted(BOXES[box].items()):
            out(b'* %d FETCH (UID %d FLAGS (\\Seen) INTERNALDATE %s'
                b' RFC822.SIZE %d)\r\n' % (uid, uid, DATE, len(data)))
        out(tag + b' OK done\r\n')

    def fetch_bodies(self, out, box, rest, slow=False):
        m = re.match(rb'FETCH (\S+) ', rest, re.I)
        sent = 0
        for uid in uid_set(m.group(1)):
            data = BOXES[box].get(uid)
            if data is None:
                continue
            out(b'* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n'
                % (uid, uid, len(data), data))
            sent += 1
            if slow and not self.seen.is_set():
                time.sleep(0.25)
                if self.seen.is_set() and self.seen_at is None:
                    self.seen_at = sent

    def close(self):
        self.stop = True
        self.sock.close()


def folder(env, box):
    imap = env.imap_login(USER, PW)
    imap.select(box, readonly=True)
    uv = int(imap.response('UIDVALIDITY')[1][0])
    typ, data = imap.uid('FETCH', '1:*', '(BODY.PEEK[])')
    imap.logout()
    got = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb'UID (\d+)', item[0]).group(1))
            if uid in got:
                got[uid] = None   # twice
            else:
                got[uid] = item[1]
    return uv, got


def first_run(env, src, url):
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
    proc.stdin = None
    t0 = time.monotonic()
    seen = idle.expect(r'^\* \d+ EXISTS',
                       timeout=(SLOW_N * 0.25 + 30) * SLOW * load_scale(),
                       name='IDLE sees INBOX mail during the import')
    src.seen.set()
    if seen:
        print('IDLE saw mail %.1f s after the import started'
              % (time.monotonic() - t0))
    out, err = proc.communicate(timeout=300 * SLOW)
    idle.send(b'DONE\r\n')
    idle.expect(r'^i OK', name='IDLE done')
    idle.close()
    R.check('IDLE saw INBOX mail while the source was still sending it'
            ' (one of %d every 0.25 s; seen after %s)'
            % (SLOW_N, src.seen_at), src.seen_at is not None and
            src.seen_at < SLOW_N, src.seen_at)
    return proc.returncode, out, err


def main():
    src = Source()
    url = 'imap://alice%%40example.test@127.0.0.1:%d' % src.port
    with Loft(users={USER: PW}) as env:
        for run in (1, 2):
            if run == 1:
                rc, out, err = first_run(env, src, url)
            else:
                rc, out, err = env.loftctl('import', USER, url,
                                           input=PW + '\n', timeout=300)
            text = out + err
            R.check('run %d: exit 0' % run, rc == 0, text)
            if run == 1:
                R.check('run 1: the next UID FETCH came before the last'
                        ' one\'s tagged reply (pipelined)',
                        src.pipelined is True, src.pipelined)
                R.check('run 1: every message imported',
                        re.search(r'INBOX: %d imported' % SLOW_N, text) and
                        re.search(r'Many: %d imported' % MANY_N, text),
                        text)
            else:
                R.check('run 2: nothing twice',
                        re.search(r'INBOX: 0 imported, %d already there'
                                  % SLOW_N, text) and
                        re.search(r'Many: 0 imported, %d already there'
                                  % MANY_N, text), text)
            for box in (b'INBOX', b'Many'):
                uv, got = folder(env, box.decode())
                want = BOXES[box]
                R.check('run %d: %s: UIDVALIDITY and UIDs kept, each'
                        ' message once, bodies as sent' % (run, box.decode()),
                        uv == UIDVALIDITY[box] and
                        sorted(got) == sorted(want) and
                        all(got[u] == want[u] for u in want),
                        (uv, len(got), [u for u in want
                                        if got.get(u) != want[u]][:5]))
    src.close()
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
