#!/usr/bin/env python3
"""Import, backup and restore keep an account as it was (issue 17; on the
postgres backend, issue 18: run as pg/test_import_restore with
LOFT_TEST_BACKEND=postgres, where each Loft has a database of its own):

  - `loftctl import` of a Maildir with a dovecot-uidlist keeps its
    UIDVALIDITY, UIDs (with their gaps), UIDNEXT, flags and a kept POP3
    UIDL;
  - after changes over IMAP (a keyword, a copy of a message into another
    folder, an expunge), `loftctl backup`, then `loftctl restore` into a
    fresh server: every folder's UIDVALIDITY, UIDNEXT and MAILBOXID,
    every message's UID, FLAGS, INTERNALDATE, EMAILID, THREADID and bytes,
    and the POP3 UIDLs are the same; the first folder's MODSEQs are kept,
    and no MODSEQ or HIGHESTMODSEQ is below the source's;
  - the restore run again stores nothing more;
  - exact (a folder that never held mail): after a STORE that touched
    several messages at once (one modseq for all) and EXPUNGEs, the
    restored server answers `UID FETCH 1:* (MODSEQ)`, `STATUS
    (HIGHESTMODSEQ)` and a QRESYNC SELECT from a cache taken before
    them (its VANISHED (EARLIER) and FETCHes) byte for byte as the
    source did: each message's modseq, HIGHESTMODSEQ and the expunge log
    come back, and the account's counter is not below the source's.
  - undelete's kept messages (the two EXPUNGEs above) are in the backup:
    after the restore `loftctl user show` reports the same kept count and
    size, `undelete --list` the same lines (folder, old UID, removal
    time), a second restore adds none, and `loftctl undelete` brings the
    INBOX message back, which an IMAP client sees with its flags (without
    \Deleted), date and bytes;
  - a POP3 DELE under pop3_delete = hide alone (no change counter moves)
    makes the next backup run write a new manifest, and a restore from it
    keeps the message hidden.
"""

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time

from imapconv import Conv
from jmapclient import Jmap
from loftenv import Loft, Results

R = Results()
PW = 'restore-test-password-1'
A = 'alice@example.test'
UIDVALIDITY = 424242


def body(i, reply_to=None):
    refs = 'In-Reply-To: <r%d@example.org>\n' % reply_to if reply_to else ''
    return ('From: s%d@example.org\nTo: alice@example.test\n'
            'Subject: restore %d\nMessage-ID: <r%d@example.org>\n%s'
            'Date: Sat, 3 Jan 2026 01:0%d:00 +0000\n\nmessage %d\n'
            % (i, i, i, refs, i % 10, i))


def write_folder(root, entries, uidnext):
    """entries: (uid, flags, text, uidl or None)."""
    for d in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    lines = ['3 V%d N%d Gfeedface' % (UIDVALIDITY, uidnext)]
    for uid, flags, text, uidl in entries:
        base = '17000%05d.M%dP1.src' % (uid, uid)
        with open(os.path.join(root, 'cur', base + ':2,' + flags), 'w') as f:
            f.write(text)
        lines.append('%d %s:%s' % (uid, 'P%s ' % uidl if uidl else '', base))
    with open(os.path.join(root, 'dovecot-uidlist'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def make_maildir(root):
    write_folder(root, [(1, 'S', body(1), 'kept-uidl-one'),
                        (2, 'FS', body(2, reply_to=1), None),
                        (5, '', body(5), None),
                        (6, 'RS', body(6), None)], 9)
    write_folder(os.path.join(root, '.Projects'),
                 [(3, 'S', body(7), None), (4, '', body(8), None)], 5)


def snapshot(env):
    """{folder: (status, {uid: fields})} over IMAP, and POP3's UIDLs."""
    imap = env.imap_login(A, PW)
    out = {}
    typ, lines = imap.list('""', '*')
    for line in lines:
        name = re.search(rb' "?([^"]*)"?$', line).group(1).decode()
        typ, st = imap.status('"%s"' % name,
                              '(UIDVALIDITY UIDNEXT HIGHESTMODSEQ MAILBOXID)')
        status = {k.decode(): v.decode() for k, v in
                  re.findall(rb'([A-Z]+) \(?([^ )]+)',
                             st[0][st[0].index(b'('):])}
        imap.select('"%s"' % name, readonly=True)
        typ, data = imap.uid('FETCH', '1:*', '(FLAGS MODSEQ INTERNALDATE'
                             ' EMAILID THREADID BODY.PEEK[])')
        msgs = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            head = item[0]
            uid = int(re.search(rb'UID (\d+)', head).group(1))
            flags = sorted(f for f in re.search(
                rb'FLAGS \(([^)]*)\)', head).group(1).split()
                if f != b'\\Recent')
            fields = {k: (re.search(k + rb'[ (]+([^ )]+)', head) or
                          re.search(k + rb' "([^"]+)"', head))
                      for k in (rb'MODSEQ', rb'EMAILID', rb'THREADID')}
            date = re.search(rb'INTERNALDATE "([^"]+)"', head).group(1)
            msgs[uid] = (flags, date, item[1]) + tuple(
                v.group(1) if v else None for v in fields.values())
        out[name] = (status, msgs)
        imap.close()
    imap.logout()
    pop = env.pop3_login(A, PW)
    uidls = sorted(pop.uidl()[1])
    pop.quit()
    return out, uidls


def claim_recent(env, names):
    """A read-write SELECT of each folder: its \\Recent claimed, so the
    answers compared below do not differ by them."""
    imap = env.imap_login(A, PW)
    for name in names:
        imap.select('"%s"' % name)
        imap.close()
    imap.logout()


def exact_answers(env, caches):
    """What a CONDSTORE/QRESYNC client is told, as the server's lines:
    per folder, UID FETCH 1:* (MODSEQ), STATUS HIGHESTMODSEQ and a QRESYNC
    SELECT from an old cache (uidvalidity, modseq, known UIDs)."""
    c = Conv(env.raw('imap'), R)
    c.login(A, PW)
    c.run('ENABLE QRESYNC', 'OK')
    out = {}
    for name, (uv, modseq, known) in sorted(caches.items()):
        st, _ = c.run('STATUS "%s" (HIGHESTMODSEQ MESSAGES UIDNEXT)' % name)
        sel, _ = c.run('SELECT "%s" (QRESYNC (%d %d %s))'
                       % (name, uv, modseq, known))
        fetch, _ = c.run('UID FETCH 1:* (MODSEQ)')
        c.run('UNSELECT')
        out[name] = (st, sel, fetch)
    c.run('LOGOUT', 'OK', [r'^\* BYE'])
    c.close()
    return out


def old_cache(env, name):
    """(UIDVALIDITY, HIGHESTMODSEQ, UIDs) of name now: a client's cache."""
    imap = env.imap_login(A, PW)
    typ, st = imap.status('"%s"' % name, '(UIDVALIDITY HIGHESTMODSEQ)')
    uv = int(re.search(rb'UIDVALIDITY (\d+)', st[0]).group(1))
    ms = int(re.search(rb'HIGHESTMODSEQ (\d+)', st[0]).group(1))
    imap.select('"%s"' % name, readonly=True)
    typ, data = imap.uid('SEARCH', 'ALL')
    imap.logout()
    uids = data[0].decode().split()
    return uv, ms, ','.join(uids) if uids else '1'


def seal(doc):
    """A backup JSON file's bytes with its own checksum (docs/backup.md:
    the SHA-256 of its compact form, keys sorted, "sha256": "")."""
    doc['sha256'] = ''
    compact = json.dumps(doc, sort_keys=True, separators=(',', ':'),
                         ensure_ascii=False).encode()
    doc['sha256'] = hashlib.sha256(compact).hexdigest()
    return json.dumps(doc, sort_keys=True, separators=(',', ':'),
                      ensure_ascii=False).encode()


def as_format_1(dest, old):
    """old: a copy of the backup in dest as loftctl wrote it before
    loft-backup-2 (no expunge log, no horizon)."""
    shutil.copytree(dest, old)
    snaps = sorted(os.listdir(os.path.join(old, 'snapshots')))
    sdir = os.path.join(old, 'snapshots', snaps[-1])
    with open(os.path.join(sdir, 'SNAPSHOT')) as f:
        index = json.load(f)
    for entry in index['accounts']:
        path = os.path.join(old, 'snapshots', entry['file'])
        with open(path) as f:
            doc = json.load(f)
        doc['format'] = 'loft-backup-1'
        for mb in doc['mailboxes']:
            mb.pop('expunged', None)
            mb.pop('expunge_horizon', None)
        data = seal(doc)
        with open(path, 'wb') as f:
            f.write(data)
        entry['sha256'] = doc['sha256']
        entry.pop('format', None)
    index['format'] = 'loft-backup-1'
    with open(os.path.join(sdir, 'SNAPSHOT'), 'wb') as f:
        f.write(seal(index))


# ---- what an account has beside its mail (docs/backup.md) -----------

XUSING = ['urn:ietf:params:jmap:core', 'urn:ietf:params:jmap:mail',
          'urn:ietf:params:jmap:submission',
          'urn:ietf:params:jmap:vacationresponse']


def imap_lines(env, cmds):
    c = Conv(env.raw('imap'))
    out = []
    try:
        c.run('LOGIN %s %s' % (A, PW), 'OK')
        for cmd in cmds:
            lines, _ = c.run(cmd, '(OK|NO|BAD)')
            out.extend(lines)
    finally:
        c.close()
    return out


def extra_state(env):
    """METADATA, JMAP Identity and VacationResponse as clients see them."""
    meta = sorted(l.strip() for l in imap_lines(env, [
        'GETMETADATA "" /private/vendor/loft-test/srv',
        'GETMETADATA INBOX (/shared/comment /private/comment)'])
        if l.startswith('* METADATA'))
    j = Jmap(env, A, PW)
    ids = sorted((i['id'], i.get('name'), i.get('textSignature'))
                 for i in j.ok('Identity/get', {}, using=XUSING)['list'])
    vac = [(v.get('isEnabled'), v.get('textBody'))
           for v in j.ok('VacationResponse/get', {}, using=XUSING)['list']]
    return meta, ids, vac


def extra_setup(env):
    """Set through IMAP, JMAP and POP3 before the backup; returns the URL
    GENURLAUTH made and what extra_state says."""
    lines = imap_lines(env, [
        'SETMETADATA "" (/private/vendor/loft-test/srv "server value")',
        'SETMETADATA INBOX (/shared/comment "inbox shared" '
        '/private/comment "inbox private")',
        'GENURLAUTH "imap://alice%%40example.test@loft.example.test/INBOX;'
        'UIDVALIDITY=%d/;UID=1;URLAUTH=authuser" INTERNAL' % UIDVALIDITY])
    m = re.search(r'GENURLAUTH "([^"]+)"', ''.join(lines))
    R.check('extra: SETMETADATA and GENURLAUTH', m is not None, lines)
    j = Jmap(env, A, PW)
    a = j.ok('Identity/set', {'create': {'i1': {
        'name': 'Alice Restored', 'email': A,
        'textSignature': 'from the backup'}}}, using=XUSING)
    R.check('extra: Identity/set', (a.get('created') or {}).get('i1'), a)
    a = j.ok('VacationResponse/set', {'update': {'singleton': {
        'isEnabled': True, 'textBody': 'Restored away.'}}}, using=XUSING)
    R.check('extra: VacationResponse/set',
            'singleton' in (a.get('updated') or {}), a)
    # POP3 hides the last message (pop3_delete = hide)
    rc, out, err = env.loftctl('user', 'set', A, 'pop3_delete=hide')
    R.check('extra: pop3_delete=hide', rc == 0, out + err)
    pop = env.pop3_login(A, PW)
    n = len(pop.list()[1])
    pop.retr(1)
    pop.dele(n)
    pop.quit()
    return (m.group(1) if m else ''), extra_state(env)


def extra_check(env, url, state, where):
    got = extra_state(env)
    R.check('%s: METADATA entries as before' % where,
            got[0] == state[0] and len(got[0]) == 2, (got[0], state[0]))
    R.check('%s: JMAP Identity and VacationResponse as before' % where,
            got[1:] == state[1:] and
            any(i[1] == 'Alice Restored' for i in got[1]), (got, state))
    lines = imap_lines(env, ['URLFETCH "%s"' % url])
    R.check('%s: an URLAUTH URL made before the backup fetches' % where,
            any(re.search(r'^\* URLFETCH "[^"]+" \{\d+\}', l) for l in lines),
            lines)


def kept_usage(env):
    """(bytes, messages) `loftctl user show` reports as kept."""
    rc, out, err = env.loftctl('user', 'show', A)
    m = re.search(r'^deleted \(kept for undelete\): (\d+) bytes .*?, (\d+) '
                  r'messages', out, re.M)
    return (int(m.group(1)), int(m.group(2))) if m else (rc, out + err)


def kept_list(env):
    rc, out, err = env.loftctl('undelete', A, '--list')
    return sorted(l for l in out.splitlines() if l.strip()) if rc == 0 \
        else (rc, out + err)


def manifest_file(dest):
    """The account file the newest SNAPSHOT names for A."""
    snaps = sorted(os.listdir(os.path.join(dest, 'snapshots')))
    with open(os.path.join(dest, 'snapshots', snaps[-1], 'SNAPSHOT')) as f:
        idx = json.load(f)
    return snaps[-1], [a['file'] for a in idx['accounts']
                       if a['address'] == A]


def main():
    tmp = tempfile.mkdtemp(prefix='loft-restore-')
    md = os.path.join(tmp, 'Maildir')
    dest = os.path.join(tmp, 'backup')
    make_maildir(md)
    try:
        with Loft(users={A: PW}) as env:
            rc, out, err = env.loftctl('import', A, md)
            R.check('import: exit 0', rc == 0, out + err)
            imap = env.imap_login(A, PW)
            typ, st = imap.status('INBOX', '(UIDVALIDITY UIDNEXT MESSAGES)')
            R.check('import: INBOX keeps UIDVALIDITY and UIDNEXT',
                    b'UIDVALIDITY %d' % UIDVALIDITY in st[0] and
                    b'UIDNEXT 9' in st[0] and b'MESSAGES 4' in st[0], st)
            imap.select('INBOX')
            typ, data = imap.uid('SEARCH', 'ALL')
            R.check('import: INBOX UIDs 1 2 5 6', data[0] == b'1 2 5 6', data)
            typ, data = imap.uid('FETCH', '2', '(FLAGS)')
            R.check('import: UID 2 \\Flagged \\Seen',
                    b'\\Flagged' in data[0] and b'\\Seen' in data[0], data)
            imap.logout()
            # a client's cache of each folder before the changes below
            caches = {n: old_cache(env, n) for n in ('INBOX', 'Projects')}
            jstate = Jmap(env, A, PW).state('Email')
            imap = env.imap_login(A, PW)
            imap.select('INBOX')
            imap.uid('STORE', '5', '+FLAGS', '($Work)')
            imap.uid('COPY', '1', 'Projects')
            # one STORE over several messages: one modseq for all
            imap.uid('STORE', '1:6', '+FLAGS', '($Multi)')
            # what undelete is to bring back after the restore
            typ, data = imap.uid('FETCH', '6', '(FLAGS INTERNALDATE'
                                 ' BODY.PEEK[])')
            gone6 = (sorted(f for f in re.search(
                rb'FLAGS \(([^)]*)\)', data[0][0]).group(1).split()
                if f != b'\\Recent'),
                re.search(rb'INTERNALDATE "([^"]+)"', data[0][0]).group(1),
                data[0][1])
            imap.uid('STORE', '6', '+FLAGS', '(\\Deleted)')
            imap.expunge()
            imap.select('Projects')
            imap.uid('STORE', '3:5', '+FLAGS', '(\\Answered)')
            imap.uid('STORE', '4', '+FLAGS', '(\\Deleted)')
            imap.expunge()
            imap.create('Empty')
            imap.logout()
            url, xstate = extra_setup(env)
            claim_recent(env, ('INBOX', 'Projects'))
            told = exact_answers(env, caches)
            ms = re.findall(r'MODSEQ \((\d+)\)', ' '.join(told['INBOX'][2]))
            R.check('source: one STORE gave several messages one modseq',
                    len(ms) == 3 and len(set(ms)) < len(ms), told['INBOX'])
            R.check('source: the QRESYNC SELECT reports the expunge',
                    any(l.startswith('* VANISHED (EARLIER) 6')
                        for l in told['INBOX'][1]), told['INBOX'])
            before, uidls = snapshot(env)
            R.check('import: the kept POP3 UIDL served',
                    any(u.endswith(b' kept-uidl-one') for u in uidls), uidls)
            R.check('snapshot: INBOX, Projects, Empty among the folders',
                    {'Empty', 'INBOX', 'Projects'} <= set(before),
                    sorted(before))
            R.check('snapshot: the copy in Projects is the same Email',
                    'INBOX' in before and 'Projects' in before and
                    len(before['Projects'][1]) == 2 and
                    before['INBOX'][1].get(1, (0,) * 6)[4] is not None and
                    before['INBOX'][1].get(1, (0,) * 6)[4] ==
                    before['Projects'][1].get(5, (1,) * 6)[4], before)
            rc, out, err = env.loftctl('check', A)
            R.check('check after the import: consistent', rc == 0 and
                    out.strip() == A + ': consistent', (rc, out, err))
            kept_before, list_before = kept_usage(env), kept_list(env)
            R.check('source: two messages kept for undelete',
                    isinstance(kept_before[1], int) and
                    kept_before[1] == 2 and len(list_before) == 2,
                    (kept_before, list_before))
            rc, out, err = env.loftctl('backup', A, dest)
            R.check('backup: exit 0', rc == 0, out + err)
            first, _ = manifest_file(dest)
            # POP3 hides one more (pop3_delete = hide: no modseq moves);
            # the next run must write the account again
            pop = env.pop3_login(A, PW)
            pop.dele(1)
            pop.quit()
            time.sleep(1.1)   # a snapshot is named by its second
            rc, out, err = env.loftctl('backup', A, dest)
            R.check('backup after a POP3 hide: exit 0', rc == 0, out + err)
            second, files = manifest_file(dest)
            R.check('backup after a POP3 hide alone: a new manifest',
                    second != first and files ==
                    ['%s/%s.json' % (second, A)], (first, second, files))
            _, uidls_now = snapshot(env)
            R.check('source: POP3 hides one more now',
                    len(uidls_now) == len(uidls) - 1, (uidls, uidls_now))
            uidls = uidls_now

        with Loft(users={A: PW}) as env2:
            rc, out, err = env2.loftctl('restore', dest, A)
            R.check('restore into a fresh server: exit 0', rc == 0,
                    out + err)
            after, uidls2 = snapshot(env2)
            for name in sorted(set(before) | set(after)):
                b = before.get(name, (None, {}))
                a = after.get(name, (None, {}))
                keep = ('UIDVALIDITY', 'UIDNEXT', 'MAILBOXID')
                R.check('%s: UIDVALIDITY UIDNEXT MAILBOXID as before' % name,
                        a[0] is not None and b[0] is not None and
                        all(a[0].get(k) == b[0].get(k) for k in keep),
                        (b[0], a[0]))
                # never below a modseq a client saw (nothing to fetch)
                R.check('%s: HIGHESTMODSEQ not below the old one' % name,
                        a[0] is not None and b[0] is not None and
                        int(a[0].get('HIGHESTMODSEQ', 0)) >=
                        int(b[0].get('HIGHESTMODSEQ', 1 << 62)),
                        (b[0], a[0]))
                R.check('%s: UIDs as before' % name,
                        sorted(a[1]) == sorted(b[1]),
                        (sorted(b[1]), sorted(a[1])))
                for uid in sorted(b[1]):
                    was, now = b[1][uid], a[1].get(uid, (None,) * 6)
                    R.check('%s UID %d: flags, date, bytes, EMAILID,'
                            ' THREADID as before' % (name, uid),
                            now[:3] + now[4:] == was[:3] + was[4:],
                            (was, now))
                    # kept, or above it when an earlier folder's restore
                    # took the counter past it (a client that cached it
                    # fetches the flags again, never a body)
                    R.check('%s UID %d: MODSEQ not below the old one'
                            % (name, uid), now[3] is not None and
                            int(now[3]) >= int(was[3]), (was[3], now[3]))
                    if name == 'INBOX':
                        R.check('INBOX UID %d: MODSEQ kept' % uid,
                                now[3] == was[3], (was[3], now[3]))
            R.check('POP3 UIDLs as before (the hidden ones hidden)',
                    uidls2 == uidls, (uidls, uidls2))
            R.check('restored: user show reports the same kept count and'
                    ' size', kept_usage(env2) == kept_before,
                    (kept_before, kept_usage(env2)))
            R.check('restored: undelete --list the same (folder, UID,'
                    ' removal time)', kept_list(env2) == list_before,
                    (list_before, kept_list(env2)))
            extra_check(env2, url, xstate, 'restored')
            claim_recent(env2, ('INBOX', 'Projects'))
            told2 = exact_answers(env2, caches)
            for name in sorted(told):
                for what, b, a in zip(('STATUS', 'QRESYNC SELECT',
                                       'UID FETCH (MODSEQ)'),
                                      told[name], told2[name]):
                    R.check('%s: %s answered as at the source, byte for'
                            ' byte' % (name, what), a == b, (b, a))
            for name in sorted(before):
                R.check('%s: HIGHESTMODSEQ as at the source' % name,
                        after.get(name, ({},))[0].get('HIGHESTMODSEQ') ==
                        before[name][0].get('HIGHESTMODSEQ'),
                        (before[name][0], after.get(name)))
            # counters, UIDNEXT, HIGHESTMODSEQ, bodies as the store checks
            rc, out, err = env2.loftctl('check', A)
            R.check('check after the restore: consistent', rc == 0 and
                    out.strip() == A + ': consistent', (rc, out, err))
            rc, out, err = env2.loftctl('restore', dest, A)
            R.check('restore again: exit 0', rc == 0, out + err)
            again, _ = snapshot(env2)
            R.check('restore again: no kept message added twice',
                    kept_usage(env2) == kept_before and
                    kept_list(env2) == list_before,
                    (kept_before, kept_usage(env2)))
            R.check('restore again: nothing more stored, nothing changed',
                    {n: (st.get('UIDNEXT'), msgs)
                     for n, (st, msgs) in again.items()} ==
                    {n: (st.get('UIDNEXT'), msgs)
                     for n, (st, msgs) in after.items()}, (after, again))
            # JMAP: the backup has no tombstones, so a state from before
            # its instant cannot be answered (the client asks again);
            # a state taken after the restore is answered exactly
            j = Jmap(env2, A, PW)
            name, args = j.one('Email/changes', {'sinceState': jstate})
            R.check('JMAP: Email/changes from before the backup:'
                    ' cannotCalculateChanges', name == 'error' and
                    args.get('type') == 'cannotCalculateChanges',
                    (name, args))
            now = j.state('Email')
            imap = env2.imap_login(A, PW)
            imap.select('INBOX')
            imap.uid('STORE', '2', '-FLAGS', '(\\Flagged)')
            imap.logout()
            name, args = j.one('Email/changes', {'sinceState': now})
            R.check('JMAP: Email/changes after the restore: the one change',
                    name == 'Email/changes' and args.get('updated') ==
                    [before['INBOX'][1][2][4].decode()] and
                    not args.get('created') and not args.get('destroyed'),
                    (name, args))
            # undelete in the restored server brings back what the
            # source kept: the INBOX message with its flags and date
            rc, out, err = env2.loftctl('undelete', A, '--folder', 'INBOX')
            R.check('restored: undelete INBOX: one message back',
                    rc == 0 and ': 1 messages' in out, out + err)
            imap = env2.imap_login(A, PW)
            imap.select('INBOX', readonly=True)
            typ, data = imap.uid('FETCH', '1:*', '(FLAGS INTERNALDATE'
                                 ' BODY.PEEK[])')
            imap.logout()
            back = [(sorted(f for f in re.search(
                rb'FLAGS \(([^)]*)\)', d[0]).group(1).split()
                if f != b'\\Recent'),
                re.search(rb'INTERNALDATE "([^"]+)"', d[0]).group(1), d[1])
                for d in data if isinstance(d, tuple)]
            R.check('restored: the undeleted message as it was (flags'
                    ' without \\Deleted, date, bytes)', gone6 in back,
                    (gone6, back))
            R.check('restored: one kept message left',
                    kept_usage(env2)[1:] == (1,), kept_usage(env2))

        # a backup of format 1 (no expunge log) still restores; the
        # folder's modseqs come back, and as the log is not known a
        # resync from an older modseq is not incremental: every UID the
        # client names that is gone is reported VANISHED
        old = os.path.join(tmp, 'backup-1')
        as_format_1(dest, old)
        with Loft(users={A: PW}) as env3:
            rc, out, err = env3.loftctl('restore', old, A)
            R.check('restore of a loft-backup-1 backup: exit 0', rc == 0,
                    out + err)
            after1, _ = snapshot(env3)
            R.check('loft-backup-1: UIDs, flags, dates, bodies, ids as'
                    ' before', {n: {u: m[:3] + m[4:] for u, m in
                                    msgs.items()}
                                for n, (st, msgs) in after1.items()
                                if n in ('INBOX', 'Projects')} ==
                    {n: {u: m[:3] + m[4:] for u, m in msgs.items()}
                     for n, (st, msgs) in before.items()
                     if n in ('INBOX', 'Projects')}, (before, after1))
            claim_recent(env3, ('INBOX', 'Projects'))
            told3 = exact_answers(env3, caches)
            R.check('loft-backup-1: UID FETCH (MODSEQ) as at the source',
                    told3['INBOX'][2] == told['INBOX'][2],
                    (told['INBOX'][2], told3['INBOX'][2]))
            R.check('loft-backup-1: QRESYNC from an old cache: the'
                    ' expunged UID reported VANISHED',
                    any(re.match(r'\* VANISHED \(EARLIER\) (.*,)?6(,|$)', l)
                        for l in told3['INBOX'][1]), told3['INBOX'][1])
            R.check('loft-backup-1: Projects: the expunged UID reported'
                    ' VANISHED', any(re.match(
                        r'\* VANISHED \(EARLIER\) (.*,)?4(,|:|$)', l)
                        for l in told3['Projects'][1]),
                    told3['Projects'][1])

        # messages a restore leaves out (--since after them all) are, to
        # a client that cached the source, expunged now: its resync is
        # told they vanished, and HIGHESTMODSEQ is above the source's
        later = time.strftime('%Y-%m-%d', time.gmtime(time.time() + 2 * 86400))
        with Loft(users={A: PW}) as env4:
            rc, out, err = env4.loftctl('restore', dest, A, '--since', later)
            R.check('restore --since after every message: exit 0',
                    rc == 0, out + err)
            told4 = exact_answers(env4, caches)
            for name, known in (('INBOX', {1, 2, 5, 6}),
                                ('Projects', {3, 4})):
                gone = set()
                for line in told4[name][1]:
                    m = re.match(r'\* VANISHED \(EARLIER\) (\S+)$', line)
                    for part in (m.group(1).split(',') if m else ()):
                        lo, _, hi = part.partition(':')
                        gone |= set(range(int(lo), int(hi or lo) + 1))
                R.check('--since: %s: a QRESYNC from the old cache is told'
                        ' every message left out vanished' % name,
                        gone == known, (gone, told4[name][1]))
                hms = int(re.search(r'HIGHESTMODSEQ (\d+)',
                                    told4[name][0][0]).group(1))
                R.check('--since: %s: HIGHESTMODSEQ above the source\'s'
                        % name, hms > int(before[name][0]['HIGHESTMODSEQ']),
                        (hms, before[name][0]))

        # a restore stopped part way (here by the quota, as a kill would
        # stop it between two commits) and run again: every message's
        # modseq as at the source all the same (the first run kept the
        # modseq each message got as marks of its own)
        with Loft(users={A: PW}) as env5:
            rc, out, err = env5.loftctl('user', 'quota', A, '450')
            R.check('quota 450 bytes', rc == 0, out + err)
            rc, out, err = env5.loftctl('restore', dest, A)
            R.check('restore over quota: stops, exit 1', rc == 1, out + err)
            imap = env5.imap_login(A, PW)
            typ, st = imap.status('INBOX', '(MESSAGES)')
            imap.logout()
            R.check('... with part of INBOX stored', b'MESSAGES 2' in st[0],
                    st)
            rc, out, err = env5.loftctl('user', 'quota', A, '10M')
            rc, out, err = env5.loftctl('restore', dest, A)
            R.check('restore run again: exit 0', rc == 0, out + err)
            claim_recent(env5, ('INBOX', 'Projects'))
            told5 = exact_answers(env5, caches)
            for name in sorted(told):
                for what, b, a in zip(('STATUS', 'QRESYNC SELECT',
                                       'UID FETCH (MODSEQ)'),
                                      told[name], told5[name]):
                    R.check('stopped and run again: %s: %s as at the'
                            ' source' % (name, what), a == b, (b, a))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
