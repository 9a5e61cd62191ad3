#!/usr/bin/env python3
"""`loftctl import` from an IMAP source that is hard to read (issue 17),
a private Dovecot on loopback (tests/lib/dovecotenv.py) whose Maildir++
hierarchy separator is "." (not Loft's "/"):

  - 1,000 folders (LOFT_TORTURE=1: 5,000), with names in modified UTF-7
    (accents, CJK, an emoji as a surrogate pair), "&" itself ("&-"),
    spaces, and three levels of hierarchy;
  - messages with NUL bytes, 8-bit bytes outside any charset, bare LF
    line ends, a line of 100,000 octets, and a 24 MB message
    (LOFT_TORTURE=1: 120 MB);
  - the server cuts the connection in the middle of a FETCH (a proxy
    closes it after so many bytes): the run exits 1 naming it, keeps
    what it stored, and the next run finishes;
  - the import killed with SIGKILL at random points, 10 rounds
    (LOFT_TORTURE_ROUNDS=N for more), then run to the end.
After each: every folder of the source is in Loft with the source's
UIDVALIDITY, and its UIDs, flags and bytes (as each server serves
BODY[]) are the source's: no message twice, none missing.
"""

import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from dovecotenv import Dovecot
from loftenv import Loft, Results, SLOW

R = Results()
T0 = time.monotonic()


def phase(what):
    print('%6.1f s  %s' % (time.monotonic() - T0, what), flush=True)
PW = 'migrate-torture-password-1'
SRC = 'src@example.test'
TORTURE = os.environ.get('LOFT_TORTURE') == '1'
FOLDERS = 5000 if TORTURE else 1000
HUGE = (120 if TORTURE else 24) * 1024 * 1024
ROUNDS = int(os.environ.get('LOFT_TORTURE_ROUNDS', '10'))
# Maildir++ names as Dovecot writes them (modified UTF-7, "." between
# levels); the IMAP names Loft must end up with ("/" between levels)
ODD = {
    '.&AMk-t&AOk-': 'Été',
    '.&ZeVnLIqe-': '日本語',
    '.&2D3eAA-': '\U0001f600',
    '.A&-B': 'A&B',
    '.With Space': 'With Space',
    '.Lists': 'Lists',
    '.Lists.Rust': 'Lists/Rust',
    '.Lists.Rust.&AMk-quipe': 'Lists/Rust/Équipe',
}


def odd_messages():
    """Bytes as files in a Maildir (LF line ends, as Dovecot keeps them)."""
    out = [
        b'Subject: nul\nFrom: a@x\n\nbefore\x00after\nmore\x00\n',
        b'Subject: 8bit\nFrom: a@x\n\n\xff\xfe\x80 raw \xe9t\xe9\n',
        b'Subject: bare lf\nFrom: a@x\n\none\ntwo\n\nthree\n',
        b'Subject: long line\nFrom: a@x\n\n' + b'y' * 100000 + b'\n',
        b'Subject: no body\nFrom: a@x\n',
    ]
    for i in range(60):
        out.append(b'Subject: plain %d\nFrom: s%d@x\nMessage-ID: <p%d@x>\n\n'
                   b'message %d\n' % (i, i, i, i))
    return out


def huge_message():
    line = b'z' * 998 + b'\n'
    return b'Subject: huge\nFrom: a@x\n\n' + line * (HUGE // len(line))


def make_source(dc):
    """Writes SRC's Maildir before Dovecot starts."""
    md = os.path.join(dc.mail_dir, SRC, 'Maildir')
    t = 1700000000

    def folder(name, msgs):
        d = os.path.join(md, name) if name else md
        for sub in ('cur', 'new', 'tmp'):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        if name:
            open(os.path.join(d, 'maildirfolder'), 'w').close()
        for i, data in enumerate(msgs):
            flags = 'S' if i % 3 == 0 else ('F' if i % 3 == 1 else '')
            p = os.path.join(d, 'cur', '%d.M%dP1.src:2,%s' % (t + i, i,
                                                               flags))
            with open(p, 'wb') as f:
                f.write(data)
            os.utime(p, (t + i, t + i))
    folder('', odd_messages() + [huge_message()])
    for i, name in enumerate(sorted(ODD)):
        folder(name, odd_messages()[i:i + 3])
    for i in range(FOLDERS - len(ODD)):
        folder('.Bulk%04d' % i, [b'Subject: bulk %d\nFrom: b@x\n\nbulk\n' % i]
               if i % 10 == 0 else [])
    for root, dirs, files in os.walk(os.path.join(dc.mail_dir, SRC)):
        for x in dirs + files:
            os.chown(os.path.join(root, x), dc.uid, dc.gid)
    os.chown(os.path.join(dc.mail_dir, SRC), dc.uid, dc.gid)


def lit(data):
    return hashlib.sha256(data).hexdigest()


def folder_states(imap, sep):
    """{IMAP name with "/": (UIDVALIDITY, [(uid, flags, sha256 of
    BODY[])])} of every selectable folder."""
    typ, lines = imap.list('""', '*')
    names = []
    for line in lines:
        m = re.match(rb'\(([^)]*)\) (?:"(.)"|NIL) (.*)$', line)
        if m is None or b'\\Noselect' in m.group(1):
            continue
        raw = m.group(3)
        if raw.startswith(b'"'):
            raw = raw[1:-1].replace(b'\\"', b'"').replace(b'\\\\', b'\\')
        names.append(raw.decode())
    out = {}
    for name in names:
        typ, _ = imap.select('"%s"' % name.replace('\\', '\\\\')
                             .replace('"', '\\"'), readonly=True)
        if typ != 'OK':
            continue
        uv = int(imap.response('UIDVALIDITY')[1][0])
        typ, data = imap.uid('FETCH', '1:*', '(FLAGS BODY.PEEK[])')
        msgs = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            uid = int(re.search(rb'UID (\d+)', item[0]).group(1))
            flags = re.search(rb'FLAGS \(([^)]*)\)', item[0])
            fl = set(flags.group(1).decode().split()) - {'\\Recent'} \
                if flags else set()
            msgs.append((uid, tuple(sorted(fl)), lit(item[1])))
        out[imaplib_decode(name).replace(sep, '/')] = (uv, sorted(msgs))
    return out


def imaplib_decode(name):
    """Modified UTF-7 (RFC 3501 5.1.3) to text."""
    out, i = [], 0
    while i < len(name):
        if name[i] == '&':
            j = name.index('-', i)
            if j == i + 1:
                out.append('&')
            else:
                b64 = name[i + 1:j].replace(',', '/')
                b64 += '=' * (-len(b64) % 4)
                import base64
                out.append(base64.b64decode(b64).decode('utf-16-be'))
            i = j + 1
        else:
            out.append(name[i])
            i += 1
    return ''.join(out)


class CutProxy:
    """A TCP proxy to Dovecot's IMAP that closes a connection after
    cut_after bytes from the server (None: passes everything)."""

    def __init__(self, port, cut_after=None):
        self.port_to = port
        self.cut_after = cut_after
        self.cuts = 0
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(('127.0.0.1', self.port_to))
            threading.Thread(target=self._pipe, args=(c, s, None),
                             daemon=True).start()
            threading.Thread(target=self._pipe,
                             args=(s, c, self.cut_after), daemon=True).start()

    def _pipe(self, a, b, limit):
        n = 0
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if limit is not None and n + len(data) >= limit:
                    b.sendall(data[:max(0, limit - n)])
                    self.cuts += 1
                    break
                b.sendall(data)
                n += len(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def close(self):
        self.sock.close()


def run_import(env, address, port, pwfile, **kw):
    src = 'imap://%s@127.0.0.1:%d' % (SRC.replace('@', '%40'), port)
    return subprocess.run([env.loftctl_bin, '--config', env.config_path,
                           'import', address, src, '--password-file',
                           pwfile], capture_output=True, text=True,
                          timeout=1800 * SLOW, **kw)


def compare(what, want, got):
    missing = sorted(set(want) - set(got))
    R.check('%s: every folder of the source' % what, not missing,
            missing[:5])
    bad = [n for n in want if n in got and got[n] != want[n]]
    R.check('%s: UIDVALIDITY, UIDs, flags and bytes of each folder' % what,
            not bad, [(n, want[n][0], got[n][0], len(want[n][1]),
                       len(got[n][1])) for n in bad[:3]])


def main():
    if not Dovecot.available():
        R.check('dovecot installed', False)
        return R.finish()
    tmp = tempfile.mkdtemp(prefix='loft-migrate-torture-')
    os.chmod(tmp, 0o755)
    pwfile = os.path.join(tmp, 'pw')
    with open(pwfile, 'w') as f:
        f.write(PW + '\n')
    users = {'cut@example.test': PW, 'kill@example.test': PW}
    dc = Dovecot(users={SRC: PW}, fsync=False, start=False)
    try:
        make_source(dc)
        dc.start()
        imap = dc.imap_login(SRC)
        typ, lines = imap.list('""', '""')
        sep = re.search(rb'\(.*\) "(.)"', lines[0]).group(1).decode()
        R.check('the source\'s separator is not "/"', sep != '/', sep)
        phase('source ready')
        want = folder_states(imap, sep)
        imap.logout()
        phase('source read')
        R.check('the source has every folder', len(want) == FOLDERS + 1,
                len(want))
        # fsync = no: the kills are of loftctl, not of the machine (the
        # page cache keeps what was written); 1,000 folders' commits
        # each waited for the disk
        with Loft(users=users,
                  extra={'limits': {'max_message_size': '200M'},
                         'store': {'fsync': 'no'}}) as env:
            # ---- a connection cut in the middle of a FETCH ----
            proxy = CutProxy(dc.ports['imap'], cut_after=HUGE // 2)
            t0 = time.monotonic()
            first = run_import(env, 'cut@example.test', proxy.port, pwfile)
            R.check('cut mid-FETCH: exit 1, said', first.returncode == 1 and
                    proxy.cuts >= 1, (first.returncode, proxy.cuts,
                                      first.stderr[-600:]))
            proxy.cut_after = None
            second = run_import(env, 'cut@example.test', proxy.port, pwfile)
            full = time.monotonic() - t0
            R.check('cut mid-FETCH: the next run finishes',
                    second.returncode == 0, second.stderr[-600:])
            proxy.close()
            phase('cut run and the next (%.1f s)' % full)
            imap = env.imap_login('cut@example.test', PW)
            compare('after the cut', want, folder_states(imap, '/'))
            imap.logout()
            phase('compared')

            # ---- killed -9 at random points ----
            rng = random.Random(os.getpid())
            kills = 0
            src = 'imap://%s@127.0.0.1:%d' % (SRC.replace('@', '%40'),
                                             dc.ports['imap'])
            cmd = [env.loftctl_bin, '--config', env.config_path, 'import',
                   'kill@example.test', src, '--password-file', pwfile]
            for k in range(ROUNDS):
                p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                # somewhere in the first run's time (the later runs skip
                # what is there: they end sooner, some before the kill)
                try:
                    p.wait(timeout=rng.uniform(0.05, full / 4))
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    kills += 1
            phase('%d rounds, %d killed' % (ROUNDS, kills))
            R.check('killed at least once', kills >= 1, kills)
            last = run_import(env, 'kill@example.test', dc.ports['imap'],
                              pwfile)
            R.check('after %d kills: the last run exits 0' % kills,
                    last.returncode == 0, last.stderr[-600:])
            phase('last run')
            imap = env.imap_login('kill@example.test', PW)
            compare('after the kills', want, folder_states(imap, '/'))
            imap.logout()
            phase('compared')
            again = run_import(env, 'kill@example.test', dc.ports['imap'],
                               pwfile)
            R.check('a run after that imports nothing',
                    again.returncode == 0 and
                    not re.search(r': [1-9]\d* imported', again.stdout),
                    again.stdout[-600:])
    finally:
        dc.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
