#!/usr/bin/env python3
"""A Maildir whose files change under `loftctl import` (issue 17, "Bad
input it must survive": files vanishing during import). The import lists
a folder, then is held (LOFT_TEST_IMPORT_PAUSE) while the test

  - removes one message file (a mail client deleted it meanwhile),
  - renames another from new/ to cur/ with a flag (a client read it),
  - and truncates nothing (a Maildir file is never rewritten in place);

then it goes on. The vanished message is named with "vanished during the
import" and exit 1; every other message is imported once and whole (the
renamed one by its base name, with the flag its new name carries); the
account is consistent (`loftctl check`), nothing half-written; a second
run imports nothing more and says nothing is missing (exit 0: the
vanished file is no longer in the source).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from loftenv import SLOW, Loft, Results

R = Results()
PW = 'vanish-test-password-1'
A = 'alice@example.test'
N = 12


def body(i):
    return ('From: v%d@example.org\nTo: alice@example.test\n'
            'Subject: vanish %d\nMessage-ID: <v%d@example.org>\n'
            'Date: Sat, 3 Jan 2026 01:00:%02d +0000\n\nmessage %d\n%s'
            % (i, i, i, i, i, 'x' * (i * 997)))


def wait_for(cond, seconds):
    end = time.monotonic() + seconds * SLOW
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def main():
    tmp = tempfile.mkdtemp(prefix='loft-vanish-')
    md = os.path.join(tmp, 'Maildir')
    pause = os.path.join(tmp, 'pause')
    for d in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(md, d))
    names = {}
    for i in range(1, N + 1):
        base = '17000%05d.M%dP1.src' % (i, i)
        # odd ones unread in new/, even ones seen in cur/
        name = os.path.join('new', base) if i % 2 else \
            os.path.join('cur', base + ':2,S')
        with open(os.path.join(md, name), 'w') as f:
            f.write(body(i))
        names[i] = name
    gone, moved = 4, 7
    try:
        with Loft(users={A: PW}) as env:
            with open(pause, 'w'):
                pass
            envv = dict(os.environ, LOFT_TEST_IMPORT_PAUSE=pause)
            proc = subprocess.Popen([env.loftctl_bin, '--config',
                                     env.config_path, 'import', A, md],
                                    env=envv, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            ready = wait_for(lambda: os.path.exists(pause + '.ready'), 60)
            R.check('the import holds the listed folder', ready)
            os.unlink(os.path.join(md, names[gone]))
            base = os.path.basename(names[moved])
            os.rename(os.path.join(md, names[moved]),
                      os.path.join(md, 'cur', base + ':2,FS'))
            os.unlink(pause)
            out, err = proc.communicate(timeout=120 * SLOW)
            R.check('exit 1: a message could not be imported',
                    proc.returncode == 1, (proc.returncode, out, err))
            said = out + err
            R.check('the vanished file is named',
                    os.path.basename(names[gone]) in said and
                    'vanished during the import' in said, said)
            R.check('only that one is reported',
                    said.count('vanished during the import') == 1, said)

            imap = env.imap_login(A, PW)
            typ, st = imap.status('INBOX', '(MESSAGES)')
            R.check('every other message imported once',
                    b'MESSAGES %d' % (N - 1) in st[0], st)
            imap.select('INBOX', readonly=True)
            typ, data = imap.fetch('1:*', '(FLAGS BODY.PEEK[])')
            got = {}
            for item in data:
                if not isinstance(item, tuple):
                    continue
                text = item[1].replace(b'\r\n', b'\n').decode()
                i = int(text.split('Subject: vanish ')[1].split('\n')[0])
                got[i] = (item[0], text)
            R.check('the right ones', sorted(got) ==
                    [i for i in range(1, N + 1) if i != gone], sorted(got))
            R.check('each whole, byte for byte',
                    all(got[i][1] == body(i) for i in got),
                    [i for i in got if got[i][1] != body(i)])
            R.check('the renamed one with the flags of its new name',
                    moved in got and b'\\Flagged' in got[moved][0] and
                    b'\\Seen' in got[moved][0], got.get(moved, ('',))[0])
            imap.logout()
            rc, out, err = env.loftctl('check', A)
            R.check('check: consistent', rc == 0 and
                    out.strip() == A + ': consistent', (rc, out, err))
            rc, out, err = env.loftctl('import', A, md)
            R.check('a second run: exit 0', rc == 0, out + err)
            imap = env.imap_login(A, PW)
            typ, st = imap.status('INBOX', '(MESSAGES)')
            R.check('a second run: nothing imported twice',
                    b'MESSAGES %d' % (N - 1) in st[0], st)
            imap.logout()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
