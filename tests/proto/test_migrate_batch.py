#!/usr/bin/env python3
"""Import in batches, a Dovecot home's Sieve scripts, backup prune and a
restore into folders that hold mail (issue 17, docs/backup.md):

  - a Dovecot home (Maildir/ with 300 messages, more than two commit
    batches, and Pigeonhole's sieve/ with .dovecot.sieve naming the
    active script): every message once with UIDVALIDITY and UIDs kept,
    both scripts imported, the same one active; a second run imports
    nothing and keeps the scripts;
  - search indexing after the import: loftctl leaves it to loftd (told at
    the end), which has the account open (an IMAP session held through
    the import, so no open of the account kicks its indexer): `user show`
    reaches search_unindexed = 0, and SEARCH BODY finds exactly the
    message before and after;
  - `backup prune`: needs --keep or --older-than (exit 2); --dry-run
    removes nothing; --keep 1 removes the older snapshots and a killed
    run's directory but keeps what the newest one names (an unchanged
    account's manifest from an older run is moved into it), and the
    blobs only removed snapshots named; verify passes and a restore from
    the pruned backup gives every message and the ACL entries;
  - restore into the account itself after some messages were expunged:
    only those come back (matched by content and internal date, with
    new UIDs); a second restore adds nothing; two of them removed again
    come back with a third (no resume mark keeps them out);
  - `restore DEST` without ADDRESS into a fresh server makes every
    account of the snapshot with its mail (the same password logs in);
  - on a terminal, import's progress line (messages, MB, rates, an ETA
    from the Maildir's file count), also while a re-run finds every
    message already there; none without a terminal.
"""

import os
import pty
import re
import shutil
import subprocess
import sys
import tempfile
import time

from loftenv import BACKEND, SLOW, Loft, Results

R = Results()
PW = 'migrate-batch-password-1'
USERS = {a + '@example.test': PW for a in ('alice', 'bob', 'carol')}
N = 300
SIEVE_MAIN = 'require "fileinto";\nif header :contains "subject" "x" ' \
             '{ fileinto "Junk"; }\n'
SIEVE_OTHER = 'keep;\n'


def body(i):
    return ('From: s%d@example.org\nSubject: batch %d\n'
            'Message-ID: <m%d@example.org>\n\nmessage %d\n' % (i, i, i, i))


def make_home(home):
    md = os.path.join(home, 'Maildir')
    for d in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(md, d))
    lines = ['3 V777001 N%d Gfeedface' % (N + 1)]
    for i in range(1, N + 1):
        base = '17100%05d.M%dP1.src' % (i, i)
        with open(os.path.join(md, 'cur', base + ':2,S'), 'w') as f:
            f.write(body(i))
        lines.append('%d :%s' % (i, base))
    with open(os.path.join(md, 'dovecot-uidlist'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.makedirs(os.path.join(home, 'sieve', 'tmp'))
    with open(os.path.join(home, 'sieve', 'main.sieve'), 'w') as f:
        f.write(SIEVE_MAIN)
    with open(os.path.join(home, 'sieve', 'other.sieve'), 'w') as f:
        f.write(SIEVE_OTHER)
    os.symlink('sieve/main.sieve', os.path.join(home, '.dovecot.sieve'))


def inbox(env, address):
    """(UIDVALIDITY, [(uid, message-id)]) of INBOX."""
    imap = env.imap_login(address, PW)
    imap.select('INBOX', readonly=True)
    uv = int(imap.response('UIDVALIDITY')[1][0])
    typ, data = imap.uid('FETCH', '1:*',
                         '(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
    imap.logout()
    out = []
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb'UID (\d+)', item[0]).group(1))
            mid = re.search(rb'<([^>]+)>', item[1])
            out.append((uid, mid.group(1).decode() if mid else None))
    return uv, sorted(out)


def expunge(env, address, uids):
    imap = env.imap_login(address, PW)
    imap.select('INBOX')
    imap.uid('STORE', ','.join(str(u) for u in uids), '+FLAGS', '(\\Deleted)')
    imap.expunge()
    imap.logout()


def blobs(dest):
    out = set()
    for sub in os.listdir(os.path.join(dest, 'blobs')):
        out.update(os.listdir(os.path.join(dest, 'blobs', sub)))
    return out


def snaps(dest):
    return sorted(os.listdir(os.path.join(dest, 'snapshots')))


def unindexed(env, address):
    rc, out, err = env.loftctl('user', 'show', address)
    m = re.search(r'^  search_unindexed = (\d+)$', out, re.M)
    return int(m.group(1)) if rc == 0 and m else None


def search_body(imap, text):
    typ, data = imap.uid('SEARCH', 'BODY', '"%s"' % text)
    return typ, data[0].split() if typ == 'OK' else data


def main():
    tmp = tempfile.mkdtemp(prefix='loft-migrate-batch-')
    home = os.path.join(tmp, 'home')
    make_home(home)
    dest = os.path.join(tmp, 'backup')
    alice, bob, carol = sorted(USERS)
    with Loft(users=USERS) as env:
        # ---- a Dovecot home, in batches ----
        # a session holds the account open in loftd through the import
        held = env.imap_login(alice, PW)
        held.select('INBOX')
        rc, out, err = env.loftctl('import', alice, home, timeout=300)
        R.check('import of a Dovecot home: exit 0', rc == 0, out + err)
        # exact at once, indexed or not ("message 150" is only in 150's
        # body; "message 15" would match 150-159 too, as a substring)
        held.noop()
        R.check('SEARCH BODY right after the import',
                search_body(held, 'message 150') == ('OK', [b'150']),
                search_body(held, 'message 150'))
        left = unindexed(env, alice)
        deadline = time.monotonic() + 120 * SLOW
        while left != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
            left = unindexed(env, alice)
        R.check('loftd indexed what the import added (search_unindexed'
                ' = 0)', left == 0, left)
        R.check('SEARCH BODY once indexed',
                search_body(held, 'message 150') == ('OK', [b'150']),
                search_body(held, 'message 150'))
        held.logout()
        R.check('every message, UIDs kept', re.search(
            r'INBOX: %d imported, 0 already there, 0 failed \(UIDVALIDITY'
            r' and UIDs kept\)' % N, out), out)
        uv, msgs = inbox(env, alice)
        R.check('UIDVALIDITY and UIDs as in dovecot-uidlist',
                uv == 777001 and [u for u, _ in msgs] ==
                list(range(1, N + 1)), (uv, msgs[:3]))
        R.check('each message once',
                len({m for _, m in msgs}) == N, len(msgs))
        R.check('Sieve scripts imported, the active one named',
                re.search(r'sieve: 2 scripts imported, 0 already there;'
                          r' active: main', out), out)
        rc, out, err = env.loftctl('sieve', 'list', alice)
        R.check('both scripts, main active',
                sorted(out.split('\n')[:2]) ==
                ['main (active)\t%d' % len(SIEVE_MAIN),
                 'other\t%d' % len(SIEVE_OTHER)], out + err)
        rc, out, err = env.loftctl('sieve', 'get', alice, 'main')
        R.check('the script byte for byte', out == SIEVE_MAIN, out + err)
        rc, out, err = env.loftctl('import', alice, home, timeout=300)
        R.check('second run: nothing imported, scripts kept',
                rc == 0 and re.search(r'INBOX: 0 imported, %d already'
                                      r' there' % N, out) and
                re.search(r'sieve: 0 scripts imported, 2 already there',
                          out), out + err)

        # ---- backup prune (and ACLs in the backup) ----
        rc, out, err = env.loftctl('acl', 'set', alice + '/INBOX', bob, 'lr')
        R.check('acl set', rc == 0, out + err)
        imap = env.imap_login(bob, PW)
        for i in range(1, 21):
            imap.append('INBOX', None, None,
                        ('Subject: bob %d\r\nMessage-ID: <bob%d@x>\r\n\r\n'
                         'bob %d\r\n' % (i, i, i)).encode())
        imap.logout()
        for k in range(3):
            if k == 2:
                expunge(env, bob, [1, 2, 3])
                # gone for good: past undelete's period (kept messages
                # are in a backup since 74bed66, with their blobs)
                rc, out, err = env.loftctl('retention', 'run', bob,
                                           '--now', '+15d')
                R.check('retention purges the expunged mail', rc == 0 and
                        'deleted purged 3' in out,
                        out + err)
            rc, out, err = env.loftctl('backup', alice, bob, dest,
                                       timeout=300)
            R.check('backup %d: exit 0' % (k + 1), rc == 0, out + err)
        three = snaps(dest)
        R.check('three snapshots', len(three) == 3, three)
        rc, out, err = env.loftctl('backup', 'prune', dest)
        R.check('prune without --keep/--older-than: usage', rc == 2,
                out + err)
        rc, out, err = env.loftctl('backup', 'prune', dest, '--older-than',
                                   '30d')
        R.check('--older-than 30d: nothing pruned', rc == 0 and
                snaps(dest) == three and '0 snapshots pruned' in out,
                out + err)
        # a run killed long ago (no SNAPSHOT)
        dead = os.path.join(dest, 'snapshots', '2000-01-01T000000Z')
        os.makedirs(dead)
        with open(os.path.join(dead, 'x@example.test.json'), 'w') as f:
            f.write('{}')
        before = snaps(dest)
        nblobs = len(blobs(dest))
        rc, out, err = env.loftctl('backup', 'prune', dest, '--keep', '1',
                                   '--dry-run')
        R.check('--dry-run removes nothing', rc == 0 and
                snaps(dest) == before and len(blobs(dest)) == nblobs and
                'dry run: 2 snapshots pruned, 1 kept; 3 blobs' in out,
                out + err)
        rc, out, err = env.loftctl('backup', 'prune', dest, '--keep', '1')
        R.check('--keep 1: exit 0', rc == 0, out + err)
        R.check('--keep 1: the newest alone (the dead run too)',
                snaps(dest) == before[-1:],
                (snaps(dest), before))
        R.check('--keep 1: the blobs of expunged mail removed',
                len(blobs(dest)) == nblobs - 3 and
                '2 snapshots pruned, 1 kept; 3 blobs removed' in out,
                (len(blobs(dest)), nblobs, out))
        with open(os.path.join(dest, 'snapshots', before[-1],
                               'SNAPSHOT')) as f:
            index = f.read()
        R.check('the unchanged account now named in the kept snapshot',
                '"file":"%s/%s.json"' % (before[-1], alice) in index, index)
        rc, out, err = env.loftctl('backup', 'verify', dest, timeout=300)
        R.check('verify after prune: exit 0', rc == 0, out + err)
        rc, out, err = env.loftctl('restore', dest, alice, '--as', carol,
                                   timeout=300)
        R.check('restore from the pruned backup: exit 0', rc == 0,
                out + err)
        rc, out, err = env.loftctl('acl', 'get', carol + '/INBOX')
        R.check('restore brings the ACL entries back',
                re.search(r'^%s lr$' % re.escape(bob), out, re.M), out + err)
        R.check('restore from the pruned backup: every message',
                [m for _, m in inbox(env, carol)[1]] ==
                [m for _, m in msgs], len(inbox(env, carol)[1]))

        # ---- restore into folders that hold mail ----
        have = inbox(env, bob)[1]
        expunge(env, bob, [u for u, _ in have[:5]])
        rc, out, err = env.loftctl('restore', dest, bob, timeout=300)
        R.check('restore into the account: only what it lacks',
                rc == 0 and re.search(r'INBOX: 5 imported, 12 already'
                                      r' there', out), out + err)
        after = inbox(env, bob)[1]
        R.check('restore into the account: each message once',
                sorted(m for _, m in after) == sorted(m for _, m in have),
                (after, have))
        gone = {m for _, m in have[:5]}
        R.check('restore into the account: new UIDs',
                all(u > have[-1][0] for u, m in after if m in gone), after)
        rc, out, err = env.loftctl('restore', dest, bob, timeout=300)
        R.check('a second restore adds nothing',
                rc == 0 and re.search(r'INBOX: 0 imported, 17 already'
                                      r' there', out) and
                len(inbox(env, bob)[1]) == 17, out + err)
        # what a restore brought back and the user removed again is
        # missing again: the next restore brings it (content, not marks)
        again = [u for u, m in inbox(env, bob)[1] if m in gone][:2]
        expunge(env, bob, again)
        rc, out, err = env.loftctl('restore', dest, bob, timeout=300)
        R.check('restored, removed again, restored again',
                rc == 0 and re.search(r'INBOX: 2 imported, 15 already'
                                      r' there', out) and
                sorted(m for _, m in inbox(env, bob)[1]) ==
                sorted(m for _, m in have), out + err)
    # ---- restore without ADDRESS: every account, into a fresh server ----
    with Loft(users={}) as fresh:
        rc, out, err = fresh.loftctl('restore', dest, timeout=300)
        R.check('restore DEST: exit 0', rc == 0, out + err)
        R.check('restore DEST: every account made',
                '%s: account made from the backup' % alice in out and
                '%s: account made from the backup' % bob in out, out + err)
        fresh.users[alice] = fresh.users[bob] = PW
        R.check('restore DEST: the mail of each',
                len(inbox(fresh, alice)[1]) == N and
                len(inbox(fresh, bob)[1]) == 17,
                (len(inbox(fresh, alice)[1]), len(inbox(fresh, bob)[1])))
    # ---- the progress line on a terminal ----
    with Loft(users={alice: PW}) as env:
        progress(env, tmp, alice)
    shutil.rmtree(tmp, ignore_errors=True)
    return R.finish()


# enough to take several of the line's 250 ms steps: the first line
# comes at the first message, before an ETA can be estimated (50 done or
# 1 s), and 3,000 often finished before the next one on sqlite. postgres
# imported 27 a second here at a load of 27 (sqlite 830; each body a file
# fsynced, ten round trips a message): 20,000 took 522 s, 1,000 are many
# steps.
MANY = 1000 if BACKEND == 'postgres' else 20000


def progress(env, tmp, address):
    """On a terminal, import shows a progress line with messages, bytes,
    rate and an ETA (the Maildir's files counted first; no ETA was ever
    shown: nothing set the total it needs); a run that finds every
    message already there still shows where it is; without a terminal
    nothing but the summary."""
    md = os.path.join(tmp, 'many')
    for sub in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(md, sub))
    for i in range(MANY):
        with open(os.path.join(md, 'cur', '%d.M%d.host:2,S' % (i, i)),
                  'wb') as f:
            f.write(b'Subject: p%d\r\n\r\n%s\r\n' % (i, b'x' * 200))

    def on_tty():
        master, slave = pty.openpty()
        p = subprocess.Popen([env.loftctl_bin, '--config', env.config_path,
                              'import', address, md], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        seen = b''
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:          # EIO: loftctl closed its end
                break
            if not chunk:
                break
            seen += chunk
        out = p.stdout.read().decode()
        p.wait(timeout=120 * SLOW)
        os.close(master)
        return p.returncode, out, seen.decode(errors='replace')

    rc, out, err = on_tty()
    lines = [x for x in re.split(r'[\r\n]', err) if 'msg/s' in x]
    R.check('import on a terminal: exit 0', rc == 0, out + err)
    R.check('a progress line: messages, MB, msg/s, MB/s',
            any(re.search(r'INBOX: \d+ messages, [\d.]+ MB, \d+ msg/s, '
                          r'[\d.]+ MB/s', x) for x in lines), lines[:3])
    R.check('... with an ETA', any(re.search(r', ETA \d+(s|m\d\ds|h\d\dm)',
                                              x) for x in lines), lines[:5])
    rc, out, err = on_tty()
    R.check('again: every message already there, and said so as it goes',
            rc == 0 and 'INBOX: 0 imported, %d already there' % MANY in out and
            re.search(r'\(\d+ already there\)', err), (out, err[-300:]))
    rc, out, err = env.loftctl('import', address, md)
    R.check('without a terminal: no progress line',
            rc == 0 and 'msg/s' not in err and 'ETA' not in err, err)


if __name__ == '__main__':
    sys.exit(main())
