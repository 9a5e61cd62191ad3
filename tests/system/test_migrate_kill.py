#!/usr/bin/env python3
"""`loftctl import` killed -9 at random points and run again (issue 17):
every message is stored once, the source's UIDs are kept, and a running
loftd's IMAP sees the mail as it arrives. Once for a Maildir with a
dovecot-uidlist, once for an mbox with X-UID headers; then a third run
imports nothing, and a --dry-run says nothing is left to import. Also: an import over quota stops, says where the next
run resumes, and the next run (quota raised) finishes."""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from loftenv import LOFTCTL, Loft, Results

R = Results()
PW = 'migrate-kill-password-1'
N = 600


def body(i):
    return ('From: s%d@example.org\nSubject: kill test %d\n'
            'Message-ID: <k%d@example.org>\n\nmessage %d\n' % (i, i, i, i))


def make_maildir(root):
    for d in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(root, d))
    lines = ['3 V424242 N%d Gfeedface' % (N + 1)]
    for i in range(1, N + 1):
        base = '17000%05d.M%dP1.src' % (i, i)
        with open(os.path.join(root, 'cur', base + ':2,S'), 'w') as f:
            f.write(body(i))
        lines.append('%d :%s' % (i, base))
    with open(os.path.join(root, 'dovecot-uidlist'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def make_mbox(path):
    with open(path, 'w') as f:
        for i in range(1, N + 1):
            f.write('From s@example.org Sat Jan  3 01:05:34 2026\n')
            if i == 1:
                f.write('X-IMAPbase: 515151 %d\n' % (N + 1))
            f.write('X-UID: %d\nStatus: RO\n' % i)
            f.write(body(i) + '\n')


def count(env, address, folder):
    imap = env.imap_login(address, PW)
    typ, st = imap.status(folder, '(MESSAGES UIDNEXT UIDVALIDITY)')
    imap.logout()
    m = re.search(rb'MESSAGES (\d+) UIDNEXT (\d+) UIDVALIDITY (\d+)', st[0])
    return tuple(int(x) for x in m.groups())


def uids(env, address, folder):
    imap = env.imap_login(address, PW)
    imap.select(folder, readonly=True)
    typ, data = imap.uid('SEARCH', 'ALL')
    typ2, subj = imap.uid('FETCH', '1:*', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    imap.logout()
    subjects = [x[1].strip() for x in subj if isinstance(x, tuple)]
    return [int(u) for u in data[0].split()], subjects


def killed_runs(env, address, source, folder, kills=3):
    """Runs the import and kills it -9 at a random point, kills times (a
    run that finished first is not counted), then lets a last run finish.
    The point is a message count drawn at random, watched over one IMAP
    connection while the import runs: a time would be too late on a fast
    machine (600 messages can take under 0.4 s) and a count is the same
    point on a loaded one."""
    cmd = [LOFTCTL, '--config', env.config_path, 'import', address, source]
    rng = random.Random(17)
    done_kills = 0
    imap = env.imap_login(address, PW)

    def stored():
        typ, st = imap.status(folder, '(MESSAGES)')
        return int(re.search(rb'MESSAGES (\d+)', st[0]).group(1))
    for k in range(kills):
        have = stored()
        if have >= N - 2:
            break
        target = rng.randint(have + 1, have + max(1, (N - have) // 2))
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        while p.poll() is None:
            if stored() >= target:
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        p.wait()
        if p.returncode == -signal.SIGKILL:
            done_kills += 1
        err = p.stderr.read().decode(errors='replace')
        p.stderr.close()
        print('%s run %d: killed=%s (aimed at %d) at %d messages %s' % (
            address, k, p.returncode == -signal.SIGKILL, target,
            stored(), err))
    imap.logout()
    rc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return done_kills, rc


def main():
    tmp = tempfile.mkdtemp(prefix='loft-migrate-kill-')
    md = os.path.join(tmp, 'Maildir')
    mb = os.path.join(tmp, 'INBOX.mbox')
    make_maildir(md)
    make_mbox(mb)
    users = {'alice@example.test': PW, 'bob@example.test': PW,
             'carol@example.test': PW}
    with Loft(users=users) as env:
        for address, source, uv in (('alice@example.test', md, 424242),
                                    ('bob@example.test', mb, 515151)):
            kills, rc = killed_runs(env, address, source, 'INBOX')
            R.check('%s: killed at least once' % address, kills >= 1, kills)
            R.check('%s: the last run exits 0' % address, rc.returncode == 0,
                    rc.stdout + rc.stderr)
            n, uidnext, uidvalidity = count(env, address, 'INBOX')
            R.check('%s: each message once' % address, n == N, n)
            R.check('%s: UIDVALIDITY kept' % address, uidvalidity == uv,
                    uidvalidity)
            R.check('%s: UIDNEXT kept' % address, uidnext == N + 1, uidnext)
            got, subjects = uids(env, address, 'INBOX')
            R.check('%s: UIDs kept' % address, got == list(range(1, N + 1)),
                    got[:10])
            R.check('%s: no duplicate' % address,
                    len(set(subjects)) == N, len(set(subjects)))
            rc = subprocess.run([LOFTCTL, '--config', env.config_path,
                                 'import', address, source],
                                capture_output=True, text=True, timeout=300)
            R.check('%s: a third run imports nothing' % address,
                    rc.returncode == 0 and
                    re.search(r'INBOX: 0 imported, %d already there' % N,
                              rc.stdout), rc.stdout + rc.stderr)
            # a dry run says the same (for an mbox it said all N were
            # still "to import")
            rc = subprocess.run([LOFTCTL, '--config', env.config_path,
                                 'import', address, source, '--dry-run'],
                                capture_output=True, text=True, timeout=300)
            R.check('%s: --dry-run: 0 to import, all already there'
                    % address, rc.returncode == 0 and
                    re.search(r'INBOX: 0 to import, %d already there' % N,
                              rc.stdout), rc.stdout + rc.stderr)

        # over quota: stops, says so, resumes
        rc, out, err = env.loftctl('user', 'quota', 'carol@example.test',
                                   '20K')
        R.check('quota set', rc == 0, out + err)
        rc, out, err = env.loftctl('import', 'carol@example.test', md)
        R.check('over quota: exit 1', rc == 1, out + err)
        R.check('over quota: where the next run resumes',
                'over quota: nothing more imported; the next run resumes'
                in err, err)
        first = count(env, 'carol@example.test', 'INBOX')[0]
        R.check('over quota: some imported', 0 < first < N, first)
        env.loftctl('user', 'quota', 'carol@example.test', 'none')
        rc, out, err = env.loftctl('import', 'carol@example.test', md)
        R.check('after the quota is raised: exit 0', rc == 0, out + err)
        got, subjects = uids(env, 'carol@example.test', 'INBOX')
        R.check('after the quota is raised: all, UIDs kept',
                got == list(range(1, N + 1)), got[:10])
    shutil.rmtree(tmp, ignore_errors=True)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
