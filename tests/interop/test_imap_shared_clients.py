#!/usr/bin/env python3
"""Real clients on another account's mailbox (issue 15): alice shares
Family/Bills with bob (lrsw).
- mbsync (isync) as bob syncs "Other Users/alice@example.test/Family/Bills"
  to a Maildir: every message pulled; a message bob reads on the device
  becomes his own \\Seen on the server (alice's unchanged); alice's new
  message and expunge reach the device at the next sync; a third sync has
  nothing to do.
- imapflow (npm) as bob reads NAMESPACE, lists the mailbox, STATUS, opens
  and fetches it, sets his own \\Seen, and idles in it while alice
  appends."""

import glob
import os
import re
import subprocess
import sys
import tempfile

from clients import mbsync_rc, node_json
from imapconv import Conv
from loftenv import Loft, Results, SLOW

HERE = os.path.dirname(os.path.abspath(__file__))
ALICE, APW = 'alice@example.test', 'tea-party-rabbit-hole'
BOB, BPW = 'bob@example.test', 'can-we-fix-it-yes'
SHARED = 'Other Users/alice@example.test/Family/Bills'
N = 20
r = Results()


def message(i):
    return ('From: biller%d@example.net\r\nTo: %s\r\nSubject: bill %d\r\n'
            'Message-ID: <bill%d@example.net>\r\n\r\nAmount due: %d.\r\n'
            % (i, ALICE, i, i, i))


def append(c, box, text):
    _, t = c.run('APPEND "%s" {%d+}\r\n%s' % (box, len(text), text), 'OK')
    m = re.search(r'APPENDUID \d+ (\d+)', t or '')
    return int(m.group(1)) if m else None


def flags(env, user, pw, box):
    c = Conv(env.raw('imap'), None)
    c.login(user, pw)
    c.run('EXAMINE "%s"' % box)
    lines, _ = c.run('UID FETCH 1:* (FLAGS)')
    c.run('LOGOUT')
    out = {}
    for l in lines:
        u, f = re.search(r'UID (\d+)', l), re.search(r'FLAGS \(([^)]*)\)', l)
        if u and f:
            out[int(u.group(1))] = set(f.group(1).split())
    return out


def local_files(root):
    return [f for d in ('cur', 'new')
            for f in glob.glob(os.path.join(root, '**', d, '*'), recursive=True)]


def uid_of(path):
    m = re.search(r',U=(\d+)', os.path.basename(path))
    return int(m.group(1)) if m else None


def mbsync(rc, name):
    p = subprocess.run(['mbsync', '-c', rc, '-a'], capture_output=True, text=True,
                       timeout=300 * SLOW)
    r.check(name, p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:])
    return p


with Loft(users={ALICE: APW, BOB: BPW}) as env, \
        tempfile.TemporaryDirectory(prefix='loft-shared-') as tmp:
    a = Conv(env.raw('imap'), r)
    a.login(ALICE, APW)
    a.run('CREATE Family/Bills', 'OK')
    a.run('SETACL Family/Bills bob@example.test lrsw', 'OK')
    uids = [append(a, 'Family/Bills', message(i)) for i in range(1, N + 1)]

    # ---- mbsync ------------------------------------------------------------
    maildir = os.path.join(tmp, 'mail')
    os.makedirs(maildir)
    rc = os.path.join(tmp, 'mbsyncrc')
    mbsync_rc(rc, env, BOB, BPW, maildir, '''Channel shared
Far :remote:
Near :local:
Patterns "Other Users/alice@example.test/*"
Create Near
Expunge Both
SyncState *
''')
    mbsync(rc, 'mbsync: first sync of the shared folder')
    local = os.path.join(maildir, 'Other Users', 'alice@example.test',
                         'Family', 'Bills')
    files = local_files(local)
    r.check('mbsync: %d messages pulled' % N, len(files) == N,
            (len(files), os.listdir(maildir)))
    r.check('mbsync: files carry the server UIDs',
            sorted(filter(None, map(uid_of, files))) == uids, files[:3])
    r.check('mbsync: nothing of bob\'s own pulled by this channel',
            not os.path.isdir(os.path.join(maildir, 'INBOX', 'cur'))
            or not local_files(os.path.join(maildir, 'INBOX')))

    # bob reads three on the device; alice expunges one, adds one
    read = set(uids[:3])
    for path in files:
        if uid_of(path) in read:
            base, _, info = os.path.basename(path).partition(':2,')
            os.rename(path, os.path.join(os.path.dirname(path).replace('/new', '/cur'),
                                         base + ':2,' + ''.join(sorted(set(info + 'S')))))
    a.run('SELECT Family/Bills', 'OK')
    a.run('UID STORE %d +FLAGS.SILENT (\\Deleted)' % uids[-1], 'OK')
    a.run('UID EXPUNGE %d' % uids[-1], 'OK')
    a.run('UNSELECT', 'OK')
    new_uid = append(a, 'Family/Bills', message(N + 1))
    mbsync(rc, 'mbsync: second sync')
    bob_flags = flags(env, BOB, BPW, SHARED)
    alice_flags = flags(env, ALICE, APW, 'Family/Bills')
    r.check('mbsync: bob\'s reads are his \\Seen on the server',
            all('\\Seen' in bob_flags.get(u, ()) for u in read), bob_flags)
    r.check('mbsync: alice\'s \\Seen unchanged (per-user)',
            not any('\\Seen' in f for f in alice_flags.values()), alice_flags)
    files = local_files(local)
    got = set(filter(None, map(uid_of, files)))
    r.check('mbsync: the owner\'s new message pulled', new_uid in got, sorted(got))
    r.check('mbsync: the owner\'s expunge applied', uids[-1] not in got, sorted(got))
    r.check('mbsync: same count both sides', len(files) == len(bob_flags),
            (len(files), len(bob_flags)))
    p = mbsync(rc, 'mbsync: third sync')
    r.check('mbsync: nothing left to do',
            len(local_files(local)) == len(flags(env, BOB, BPW, SHARED)))

    # ---- imapflow ---------------------------------------------------------------
    if not os.path.isdir(os.path.join(HERE, 'node_modules', 'imapflow')):
        print('imapflow is not installed: run `make npm` (npm ci in tests/interop)')
        r.check('imapflow installed', False)
    else:
        out, p = node_json(os.path.join(HERE, 'imapflow-shared.js'),
                           [env.port('imap'), BOB, BPW, ALICE, APW, SHARED,
                            'Family/Bills'], 120 * SLOW, HERE)
        r.check('imapflow ran', 'error' not in out, out.get('error'))
        if 'error' not in out:
            ns = out.get('namespaces') or {}
            other = [n.get('prefix') for n in (ns.get('other') or [])]
            r.check('imapflow: NAMESPACE other users', other == ['Other Users/'], ns)
            paths = {f['path']: f for f in out['folders']}
            r.check('imapflow: LIST has the shared folder', SHARED in paths,
                    sorted(paths))
            r.check('imapflow: no special use on another\'s folders',
                    all(f['specialUse'] is None for p_, f in paths.items()
                        if p_.startswith('Other Users/')), out['folders'])
            r.check('imapflow: STATUS', out['status']['messages'] == N
                    and out['status']['unseen'] == N - 3, out['status'])
            r.check('imapflow: opened with every message', out['exists'] == N,
                    out['exists'])
            subjects = [m['subject'] for m in out['fetched']]
            r.check('imapflow: fetched envelopes', len(subjects) == N
                    and 'bill %d' % (N + 1) in subjects, subjects)
            r.check('imapflow: own \\Seen set', '\\Seen' in out['seenAfter'],
                    out['seenAfter'])
            idle = out['idle']
            r.check('imapflow: IDLE hears the owner\'s APPEND',
                    idle is not None and idle['count'] == N + 1, idle)
            if idle:
                print('imapflow: owner APPEND to reader EXISTS in %d ms' % idle['ms'])
            r.check('imapflow: the owner\'s unseen count is the owner\'s',
                    out['ownerUnseen'] == N + 1, out['ownerUnseen'])
        if p.returncode != 0:
            print(p.stderr[-2000:])

sys.exit(r.finish())
