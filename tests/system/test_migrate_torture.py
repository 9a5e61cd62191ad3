#!/usr/bin/env python3
"""Big and odd sources for `loftctl import` (issue 17, "Bad input it must
survive"), small by default so that `make test` spends seconds on it;
LOFT_TORTURE=1 runs the sizes the issue names (10,000 folders, a 2 GB
mbox, a 100 MB message: minutes and ~2.2 GB of disk in TMPDIR):

  - a Maildir++ tree with many folders whose names are in many scripts
    (modified UTF-7 as Dovecot writes them), one name that is invalid
    modified UTF-7: every good folder is imported with its name, the bad
    one is named and refused, exit 1;
  - a large mbox is streamed: every message imported, and loftctl's
    peak memory stays under a fixed bound (96 MiB, whatever the size);
  - a message over max_message_size inside an mbox: reported by its
    number with "(the rest is imported)", every other message imported;
  - always (also in make test), an mbox of more than 2 GiB that is
    mostly holes (a sparse file: no disk, seconds to read): a 100 MB
    message and one of about 1.9 GB, each a single line of NUL bytes,
    between small ones. Both are named "(the rest is imported)", the
    small ones imported, and loftctl's peak memory stays under the same
    bound: neither message nor line is held in memory.
"""

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from loftenv import LOFTCTL, SANITIZE, Loft, Results

R = Results()
PW = 'migrate-torture-password-1'
BIG = os.environ.get('LOFT_TORTURE') == '1'
FOLDERS = 10000 if BIG else 100
MBOX_BYTES = (2 << 30) if BIG else (32 << 20)
HUGE = (100 << 20) if BIG else (3 << 20)
# a max_message_size below HUGE: the huge message is over it
LIMIT = '64M' if BIG else '2M'
SCRIPTS = ['Français', 'Ελληνικά', 'Русский', '日本語', '中文',
           'العربية', 'עברית', 'हिन्दी', 'ไทย', '한국어', 'emoji 📬',
           'Türkçe', 'Čeština', 'Tiếng Việt', 'ქართული']


def mutf7(name):
    """RFC 3501 5.1.3 modified UTF-7, as Dovecot names Maildir++
    folders."""
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


def folder_names(n):
    return ['%s %05d' % (SCRIPTS[i % len(SCRIPTS)], i) for i in range(n)]


def make_tree(root, names):
    for d in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(root, d))
    for i, name in enumerate(names):
        sub = os.path.join(root, '.' + mutf7(name))
        for d in ('cur', 'new', 'tmp'):
            os.makedirs(os.path.join(sub, d))
        if i % 50 == 0:
            with open(os.path.join(sub, 'cur', '1700000000.M%dP1.x:2,S' % i),
                      'w') as f:
                f.write('Subject: folder %d\n\nhello %d\n' % (i, i))
    # "&" opening a run that is not base64: invalid modified UTF-7 but
    # UTF-8 (kept as it is); and a name that is neither (refused)
    for bad in (b'.Bad&Name', b'.Broken\xff'):
        for d in (b'cur', b'new', b'tmp'):
            os.makedirs(os.path.join(root.encode(), bad, d))


def make_mbox(path, total, huge_at):
    """An mbox of about total bytes of 8 KB messages, one of HUGE bytes
    at message huge_at; returns the number of messages."""
    line = ('x' * 76 + '\n')
    body8k = line * 100
    n = 0
    written = 0
    with open(path, 'w') as f:
        while written < total or n < huge_at:
            n += 1
            head = ('From s@example.org Sat Jan  3 01:05:34 2026\n'
                    'Subject: big %d\nMessage-ID: <big%d@example.org>\n\n'
                    % (n, n))
            f.write(head)
            if n == huge_at:
                for _ in range(HUGE // len(line)):
                    f.write(line)
                written += HUGE
            else:
                f.write(body8k)
                written += len(body8k)
            f.write('\n')
            written += len(head) + 1
    return n


SPARSE_TOTAL = (2 << 30) + (1 << 20)   # past 2 GiB: no 32-bit offsets
SPARSE_HUGE = 100 << 20


def make_sparse_mbox(path):
    """Five messages; the 2nd (100 MB) and 4th (the rest up to
    SPARSE_TOTAL) are holes, read as NUL bytes. Returns the file's
    size."""
    def head(n):
        return ('From s@example.org Sat Jan  3 01:05:34 2026\n'
                'Subject: sparse %d\nMessage-ID: <sparse%d@example.org>\n'
                '\n' % (n, n)).encode()
    with open(path, 'wb') as f:
        for n in range(1, 6):
            f.write(head(n))
            if n == 2:
                f.seek(SPARSE_HUGE, os.SEEK_CUR)
            elif n == 4:
                f.seek(SPARSE_TOTAL - f.tell(), os.SEEK_CUR)
            else:
                f.write(b'small message %d\n' % n)
            f.write(b'\n\n')
    return os.path.getsize(path)


def ctl(env, *args):
    """loftctl ARGS: (rc, out, err), bytes decoded leniently (a refused
    folder name is not UTF-8)."""
    r = subprocess.run([LOFTCTL, '--config', env.config_path] + list(args),
                       capture_output=True, timeout=3600)
    return (r.returncode, r.stdout.decode(errors='replace'),
            r.stderr.decode(errors='replace'))


def messages(env, address):
    rc, out, err = ctl(env, 'user', 'show', address)
    for line in out.splitlines():
        if line.startswith('usage:'):
            return int(line.split(',')[-1].split()[0])
    return -1


def run_rss(env, *args, stderr_path=None):
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        if stderr_path is not None:
            os.dup2(os.open(stderr_path, os.O_WRONLY | os.O_CREAT, 0o600), 2)
        os.execv(LOFTCTL, [LOFTCTL, '--config', env.config_path] + list(args))
    _, status, ru = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), ru.ru_maxrss


def main():
    tmp = tempfile.mkdtemp(prefix='loft-migrate-torture-')
    names = folder_names(FOLDERS)
    tree = os.path.join(tmp, 'Maildir')
    make_tree(tree, names)
    mbox = os.path.join(tmp, 'big.mbox')
    huge_at = 7
    count = make_mbox(mbox, MBOX_BYTES, huge_at)
    size = os.path.getsize(mbox)
    print('%d folders, mbox %d bytes, %d messages' % (FOLDERS, size, count))
    users = {'alice@example.test': PW, 'bob@example.test': PW,
             'carol@example.test': PW}
    extra = {'limits': {'max_message_size': LIMIT},
             'store': {'fsync': 'no'}}
    with Loft(users=users, extra=extra) as env:
        rc, out, err = ctl(env, 'import', 'alice@example.test', tree)
        R.check('many folders: exit 1 (one refused)', rc == 1, err[-500:])
        R.check('a name neither modified UTF-7 nor UTF-8 refused, named',
                re.search(r'Broken.+: folder name is neither modified UTF-7'
                          r' nor UTF-8: not imported', err), err[-500:])
        imap = env.imap_login('alice@example.test', PW)
        typ, lines = imap.list('""', '*')
        imap.logout()
        got = set()
        for line in lines:
            m = re.search(rb' "(?:[^"\\]|\\.)*" "?((?:[^"\\]|\\.)*)"?$', line)
            if m:
                got.add(imaplib_decode(m.group(1)))
        R.check('every good folder, its name kept',
                set(names) <= got, sorted(set(names) - got)[:5])
        R.check('invalid modified UTF-7 that is UTF-8: kept as it is',
                'Bad&Name' in got, sorted(got)[:5])
        R.check('summary line per folder',
                len(re.findall(r'^.* \d{5}: ', out, re.M)) == FOLDERS,
                len(re.findall(r'^.* \d{5}: ', out, re.M)))

        rc, rss = run_rss(env, 'import', 'bob@example.test', mbox)
        R.check('big mbox: exit 1 (the huge message refused)', rc == 1, rc)
        n = messages(env, 'bob@example.test')
        R.check('big mbox: every other message imported', n == count - 1,
                (n, count))
        rc, out, err = ctl(env, 'import', 'bob@example.test', mbox)
        R.check('the huge message named, the rest imported',
                re.search(r'big: message %d: .*\(the rest is imported\)'
                          % huge_at, err), err[-500:])
        R.check('a second run imports nothing more',
                re.search(r'big: 0 imported, %d already there, 1 failed'
                          % (count - 1), out), out)
        # streamed: a fixed bound whatever the file's size (a commit
        # batch holds at most 8 MB of bodies; ~36 MB is loftctl's own)
        print('loftctl peak memory %d KiB for an mbox of %d bytes'
              % (rss, size))
        # (AddressSanitizer's shadow and quarantine are not loftctl's)
        R.check('streamed: loftctl peak memory under 96 MiB',
                SANITIZE or rss < 96 * 1024, (rss, size))

        # ---- more than 2 GiB, mostly holes ----
        sparse = os.path.join(tmp, 'sparse.mbox')
        ssize = make_sparse_mbox(sparse)
        errf = os.path.join(tmp, 'sparse.err')
        t0 = time.monotonic()
        rc, rss = run_rss(env, 'import', 'carol@example.test', sparse,
                          stderr_path=errf)
        with open(errf, errors='replace') as f:
            err = f.read()
        print('sparse mbox of %d bytes: %.1f s, loftctl peak memory %d KiB'
              % (ssize, time.monotonic() - t0, rss))
        R.check('2 GiB mbox: exit 1 (two messages refused)', rc == 1,
                (rc, err[-500:]))
        for n, what in ((2, '100 MB'), (4, '1.9 GB')):
            R.check('the %s message named, the rest imported' % what,
                    re.search(r'sparse: message %d: .*\(the rest is'
                              r' imported\)' % n, err), err[-500:])
        R.check('2 GiB mbox: the three small messages imported',
                messages(env, 'carol@example.test') == 3,
                messages(env, 'carol@example.test'))
        R.check('2 GiB mbox streamed: loftctl peak memory under 96 MiB',
                SANITIZE or rss < 96 * 1024, (rss, ssize))
    shutil.rmtree(tmp, ignore_errors=True)
    return R.finish()


def imaplib_decode(raw):
    """A LIST name (modified UTF-7) as text."""
    s = raw.decode()
    out, i = [], 0
    while i < len(s):
        if s[i] == '&':
            j = s.index('-', i)
            chunk = s[i + 1:j]
            if chunk == '':
                out.append('&')
            else:
                b = chunk.replace(',', '/')
                b += '=' * (-len(b) % 4)
                out.append(base64.b64decode(b).decode('utf-16-be'))
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return ''.join(out)


if __name__ == '__main__':
    sys.exit(main())
