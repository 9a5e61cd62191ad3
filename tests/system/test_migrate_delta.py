#!/usr/bin/env python3
"""loftctl migrate-store's last delta (issue 18, "Moving between
backends": each account "locked for seconds"): every kind of change a
user or an admin makes while the account is copied live is carried by the
delta under the lock, not by copying the account whole again.

One loftd with backend = sqlite and [store] postgres on a private
PostgreSQL 15 (tests/lib/pgenv.py). alice is moved sqlite -> postgres ->
sqlite; each time loftctl is paused after the live copy and its catch-up
rounds (LOFT_TEST_MOVE_LIVE_PAUSE, before the lock) while these are made:

  - EXPUNGE of an INBOX message (undelete keeps it; one more right
    before the lock, so the target's own removal of it in the delta
    falls in the same second), DELETE of a folder
    with two messages (both kept), `loftctl undelete` of what an earlier
    expunge kept (kept rows gone, messages back with new UIDs);
  - RENAME of a folder with three messages (its MAILBOXID and UIDVALIDITY
    stay: nothing of it is copied again);
  - POP3 RETR (the first-retrieval mark) and DELE under
    pop3_delete = hide (the hidden mark): neither moves a modseq;
  - a special-use role moved from one folder to another, and that
    folder's sortOrder (JMAP Mailbox/set);
  - bob's own \\Seen in alice's folder Team (per-user \\Seen) cleared
    on one message and set on another: no modseq of alice's folder moves;
    then Team's \\Seen mode set (loftctl mailbox set seen=shared, back
    to per-user on the second move);
  - METADATA: a private entry changed, a shared one removed;
  - a JMAP Identity's signature changed;
  - a Sieve script replaced;
  - one LMTP delivery;
  - IMAP logins (the last one, which pop3_delete = auto reads, is kept to
    the hour: one made before the move is not made anew by a login on
    the target).

After each move: loftctl says it did not copy the account whole under the
lock and that it copied exactly the delivered and undeleted messages
there; every folder, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, each message's
UID, MODSEQ, flags, EMAILID, THREADID and bytes, the roles, bob's \\Seen,
undelete's kept list, POP3's UIDL list, METADATA, the Identity and the
Sieve script are what they were on the source just before the lock.
Skipped (77) without PostgreSQL 15."""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from loftenv import Loft, Results, SLOW
from pgenv import Postgres
from lmtplib import Conv, deliver

r = Results()
ALICE = 'alice@example.test'
BOB = 'bob@example.test'
OTHER = 'Other Users/%s/' % ALICE
USING = ['urn:ietf:params:jmap:core', 'urn:ietf:params:jmap:mail',
         'urn:ietf:params:jmap:submission']


def imap_raw(loft, user, cmds):
    """Runs tagged commands on one connection: every line, decoded."""
    import socket
    s = socket.create_connection(('127.0.0.1', loft.port('imap')),
                                 timeout=30 * SLOW)
    f = s.makefile('rb')
    f.readline()
    lines = []
    for i, cmd in enumerate(['LOGIN %s %s' % (user, loft.users[user])] +
                            cmds + ['LOGOUT']):
        tag = 't%d' % i
        s.sendall(('%s %s\r\n' % (tag, cmd)).encode())
        while True:
            line = f.readline()
            if not line:
                break
            m = re.search(rb'\{(\d+)\}\r\n$', line)
            if m:
                line += f.read(int(m.group(1)))
                line += f.readline()
            line = line.decode('utf-8', 'replace')
            lines.append(line)
            if line.startswith(tag + ' '):
                break
    s.close()
    return lines


def tagged_ok(lines, n):
    return sum(1 for l in lines if re.match(r't\d+ OK', l)) == n


def imap_state(loft):
    """{folder: (uidvalidity, uidnext, highestmodseq,
    {uid: (flags, emailid, modseq, threadid, sha)})} of alice."""
    c = loft.imap_login(ALICE)
    typ, lst = c.list()
    names = []
    for line in lst:
        m = re.match(rb'\(([^)]*)\) "[^"]*" "?([^"]*)"?$', line)
        if m and b'\\Noselect' not in m.group(1):
            names.append(m.group(2).decode())
    state = {}
    for name in sorted(names):
        typ, st = c.status('"%s"' % name,
                           '(UIDVALIDITY UIDNEXT HIGHESTMODSEQ)')
        s = st[0].decode()
        uv = int(re.search(r'UIDVALIDITY (\d+)', s).group(1))
        un = int(re.search(r'UIDNEXT (\d+)', s).group(1))
        hm = int(re.search(r'HIGHESTMODSEQ (\d+)', s).group(1))
        c.select('"%s"' % name, readonly=True)
        typ, data = c.uid('FETCH', '1:*',
                          '(FLAGS MODSEQ EMAILID THREADID BODY.PEEK[])')
        msgs = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            head = item[0].decode()
            uid = int(re.search(r'UID (\d+)', head).group(1))
            flags = tuple(sorted(f for f in re.search(
                r'FLAGS \(([^)]*)\)', head).group(1).split()
                if f != '\\Recent'))
            msgs[uid] = (flags,
                         re.search(r'EMAILID \((\S+)\)', head).group(1),
                         int(re.search(r'MODSEQ \((\d+)\)', head).group(1)),
                         re.search(r'THREADID \((\S+)\)', head).group(1),
                         hashlib.sha256(item[1]).hexdigest())
        state[name] = (uv, un, hm, msgs)
    c.logout()
    return state


def roles(loft):
    lines = imap_raw(loft, ALICE, ['LIST "" "*" RETURN (SPECIAL-USE)'])
    from jmapclient import Jmap
    j = Jmap(loft, ALICE)
    order = sorted((m['name'], m.get('role'), m.get('sortOrder'))
                   for m in j.ok('Mailbox/get', {'ids': None})['list'])
    return sorted(l.strip() for l in lines if l.startswith('* LIST') and
                  re.search(r'\\(Sent|Drafts|Trash|Junk|Archive|All|'
                            r'Flagged)\b', l)) + order


def bob_seen(loft):
    lines = imap_raw(loft, BOB, ['EXAMINE "%sTeam"' % OTHER,
                                 'UID FETCH 1:* (FLAGS)'])
    return sorted(l.strip() for l in lines if 'FETCH' in l and 'UID' in l)


def kept(loft):
    rc, out, err = loft.loftctl('undelete', ALICE, '--list')
    return sorted(l for l in out.splitlines() if l.strip())


def uidls(loft):
    p = loft.pop3_login(ALICE)
    try:
        return [l.split()[1] for l in p.uidl()[1]]
    finally:
        p.quit()


def metadata(loft):
    lines = imap_raw(loft, ALICE, [
        'GETMETADATA INBOX (/shared/comment /private/comment)',
        'GETMETADATA "" /private/vendor/loft-test/srv'])
    return sorted(l.strip() for l in lines if l.startswith('* METADATA'))


def identities(loft):
    from jmapclient import Jmap
    j = Jmap(loft, ALICE)
    return sorted((i['id'], i.get('name'), i.get('textSignature'))
                  for i in j.ok('Identity/get', {}, using=USING)['list'])


def sieve(loft):
    rc, out, err = loft.loftctl('sieve', 'get', ALICE, 'main')
    rc2, out2, err2 = loft.loftctl('sieve', 'list', ALICE)
    return out, out2


def sync_login(loft):
    """When alice's last IMAP login was (pop3_delete = auto reads it),
    Unix seconds, from loftctl user show."""
    import calendar
    rc, out, err = loft.loftctl('user', 'show', ALICE)
    m = re.search(r'^last IMAP login: (\S+Z)', out, re.M)
    return calendar.timegm(time.strptime(m.group(1), '%Y-%m-%dT%H:%M:%SZ')) \
        if m else out + err


def seen_mode(loft):
    rc, out, err = loft.loftctl('mailbox', 'get', ALICE + '/Team')
    return out + err


def full_state(loft):
    return {'imap': imap_state(loft), 'roles': roles(loft),
            'seen_mode': seen_mode(loft),
            'bob_seen': bob_seen(loft), 'kept': kept(loft),
            'uidls': uidls(loft), 'metadata': metadata(loft),
            'identities': identities(loft), 'sieve': sieve(loft)}


def state_diff(before, after):
    """'' when after is before (HIGHESTMODSEQs and MODSEQs exact)."""
    for k in before:
        if before[k] != after[k]:
            if k != 'imap':
                return '%s: %s / %s' % (k, before[k], after[k])
            b, a = before[k], after[k]
            if sorted(b) != sorted(a):
                return 'folders %s / %s' % (sorted(b), sorted(a))
            for name in b:
                if b[name] != a[name]:
                    return '%s: %s / %s' % (name, b[name], a[name])
    return ''


def lmtp(loft, subject):
    c = Conv.tcp(loft.port('lmtp'), timeout=30 * SLOW)
    try:
        rr, dr = deliver(c, 'x@example.org', [ALICE],
                         'From: x@example.org\r\nSubject: %s\r\n\r\nhi'
                         '\r\n' % subject)
        return '%s' % (dr[0][0] if dr else rr)
    finally:
        c.close()


def msg(subject):
    return ('From: a@example.org\r\nSubject: %s\r\nMessage-ID: <%s@x>\r\n'
            '\r\nbody of %s\r\n' % (subject, subject.replace(' ', '.'),
                                    subject)).encode()


def setup(loft):
    c = loft.imap_login(ALICE)
    for name in ('Work', 'Work/2026', 'Team', 'Gone1', 'Gone2'):
        c.create(name)
    for i in range(8):
        c.append('INBOX', ['(\\Seen)', None, '(\\Flagged $x)'][i % 3], None,
                 msg('inbox %d' % i))
    for i in range(3):
        c.append('Work/2026', None, None, msg('work %d' % i))
        c.append('Team', None, None, msg('team %d' % i))
    for g in ('Gone1', 'Gone2'):
        for i in range(2):
            c.append(g, '(\\Answered)', None, msg('%s %d' % (g, i)))
    # one kept for undelete before the move
    c.select('INBOX')
    c.uid('STORE', '1', '+FLAGS', '(\\Deleted)')
    c.expunge()
    c.logout()
    lines = imap_raw(loft, ALICE, [
        'SETACL Team %s lrs' % BOB,
        'SETMETADATA INBOX (/shared/comment "shared 0" /private/comment '
        '"private 0")',
        'SETMETADATA "" (/private/vendor/loft-test/srv "server")'])
    r.check('setup: SETACL, SETMETADATA', tagged_ok(lines, 5), lines)
    lines = imap_raw(loft, BOB, ['SELECT "%sTeam"' % OTHER,
                                 'UID STORE 1:2 +FLAGS (\\Seen)'])
    r.check('setup: bob sees two of Shared', tagged_ok(lines, 4), lines)
    from jmapclient import Jmap
    j = Jmap(loft, ALICE)
    a = j.ok('Identity/set', {'create': {'i': {
        'name': 'Alice', 'email': ALICE, 'textSignature': 'sig 0'}}},
        using=USING)
    ident = (a.get('created') or {}).get('i', {}).get('id')
    r.check('setup: Identity/set', ident is not None, a)
    rc, out, err = loft.loftctl('sieve', 'put', ALICE, 'main', '--activate',
                                input='keep;\n')
    r.check('setup: sieve put', rc == 0, out + err)
    rc, out, err = loft.loftctl('user', 'set', ALICE, 'pop3_delete=hide')
    r.check('setup: pop3_delete=hide', rc == 0, out + err)
    return ident


def live_changes(loft, n, ident, names):
    """Every kind of change, made while loftctl waits before the lock.
    Returns how many messages the delta must copy."""
    # undelete first: the kept rows of earlier expunges go, the messages
    # come back with new UIDs
    rc, out, err = loft.loftctl('undelete', ALICE, '--folder', 'INBOX')
    m = re.search(r': (\d+) messages', out)
    back = int(m.group(1)) if m else -1
    r.check('%d: loftctl undelete during the copy' % n, rc == 0 and back >= 1,
            out + err)
    c = loft.imap_login(ALICE)
    c.select('INBOX')
    uids = c.uid('SEARCH', 'ALL')[1][0].split()
    c.uid('STORE', uids[2], '+FLAGS', '(\\Deleted)')
    t1, _ = c.expunge()
    c.close()
    t2, _ = c.delete('Gone%d' % n)
    t3, _ = c.rename(names[0], names[1])
    c.logout()
    r.check('%d: EXPUNGE, DELETE, RENAME during the copy' % n,
            (t1, t2, t3) == ('OK', 'OK', 'OK'), (t1, t2, t3))
    p = loft.pop3_login(ALICE)
    p.retr(1)
    p.dele(2)
    p.quit()
    from jmapclient import Jmap
    j = Jmap(loft, ALICE)
    boxes = {m['name']: m for m in j.ok('Mailbox/get', {'ids': None})['list']}
    frm, to = ('Archive', 'Work') if n == 1 else ('Work', 'Archive')
    a = j.ok('Mailbox/set', {'update': {boxes[frm]['id']: {'role': None},
                                        boxes[to]['id']: {'role': 'archive',
                                                          'sortOrder': 7 + n}}})
    r.check('%d: JMAP: the archive role moves to %s' % (n, to),
            len(a.get('updated') or {}) == 2, a)
    a = j.ok('Identity/set', {'update': {ident: {
        'textSignature': 'sig %d' % n}}}, using=USING)
    r.check('%d: JMAP: Identity changed' % n, ident in (a.get('updated') or
                                                        {}), a)
    lines = imap_raw(loft, BOB, ['SELECT "%sTeam"' % OTHER,
                                 'UID STORE %d -FLAGS (\\Seen)' % n,
                                 'UID STORE 3 +FLAGS (\\Seen)'])
    r.check('%d: bob: his own \\Seen cleared and set' % n,
            tagged_ok(lines, 5), lines)
    mode = 'shared' if n == 1 else 'per-user'
    rc, out, err = loft.loftctl('mailbox', 'set', ALICE + '/Team',
                                'seen=' + mode)
    r.check('%d: loftctl mailbox set Team seen=%s' % (n, mode), rc == 0,
            out + err)
    lines = imap_raw(loft, ALICE, [
        'SETMETADATA INBOX (/private/comment "private %d" /shared/comment '
        '%s)' % (n, 'NIL' if n == 1 else '"shared %d"' % n)])
    r.check('%d: SETMETADATA changed and removed' % n, tagged_ok(lines, 3),
            lines)
    rc, out, err = loft.loftctl('sieve', 'put', ALICE, 'main', '--activate',
                                input='# version %d\nkeep;\n' % n)
    r.check('%d: sieve put' % n, rc == 0, out + err)
    code = lmtp(loft, 'delivered during copy %d' % n)
    r.check('%d: LMTP during the copy: 250' % n, code.startswith('250'),
            code)
    # last, just before the lock: the delta's own removal of it at the
    # target most often falls in the same second (a kept row in the
    # place of the source's, with other flags: \Deleted is set after)
    c = loft.imap_login(ALICE)
    c.select('INBOX')
    uids = c.uid('SEARCH', 'ALL')[1][0].split()
    c.uid('STORE', uids[3], '+FLAGS', '(\\Deleted)')
    t1, _ = c.expunge()
    c.logout()
    r.check('%d: EXPUNGE right before the lock' % n, t1 == 'OK', t1)
    return back + 1


def move_live(loft, work, n, to, ident, names):
    pause = os.path.join(work, 'pause')
    open(pause, 'w').close()
    p = subprocess.Popen([loft.loftctl_bin, '--config', loft.config_path,
                          'migrate-store', ALICE, '--to', to],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ,
                                             LOFT_TEST_MOVE_LIVE_PAUSE=pause))
    deadline = time.monotonic() + 120 * SLOW
    while not os.path.exists(pause + '.ready') and \
            time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    ready = os.path.exists(pause + '.ready')
    r.check('%d: loftctl reaches the live pause' % n, ready)
    if not ready:
        p.kill()
        out, err = p.communicate()
        print(out, err)
        return
    want = live_changes(loft, n, ident, names)
    before = full_state(loft)
    login = sync_login(loft)
    os.unlink(pause)
    out, err = p.communicate(timeout=300 * SLOW)
    os.unlink(pause + '.ready')
    print(out.strip())
    if err.strip():
        print(err.strip())
    r.check('%d: migrate-store --to %s' % (n, to), p.returncode == 0 and
            'moved to %s' % to in out, out + err)
    r.check('%d: the delta carried every change: not copied whole under '
            'the lock' % n, 'copied whole' not in out and
            'did not carry over' not in err, out + err)
    m = re.search(r'under the lock (\d+) changes, (\d+) of them messages',
                  out)
    r.check('%d: under the lock, only the %d messages delivered or '
            'undeleted were copied' % (n, want),
            m is not None and int(m.group(2)) == want, out)
    after = full_state(loft)
    diff = state_diff(before, after)
    r.check('%d: everything as on the source before the lock (UIDs, '
            'MODSEQs, roles, \\Seen, kept, POP3, METADATA, JMAP, Sieve)'
            % n, diff == '', diff)
    # kept to the hour (a login after the move writes nothing); the
    # database's clock offset may move it by a second
    r.check('%d: the last IMAP login kept (pop3_delete = auto)' % n,
            isinstance(login, int) and isinstance(sync_login(loft), int)
            and abs(sync_login(loft) - login) <= 1,
            (login, sync_login(loft)))
    r.check('%d: the renamed folder is there, the deleted one gone' % n,
            names[1] in after['imap'] and names[0] not in after['imap'] and
            'Gone%d' % n not in after['imap'], sorted(after['imap']))


def main():
    if not Postgres.available():
        print('0 passed, 0 failed (skipped: no PostgreSQL 15 binaries)')
        return 77
    pg = Postgres()
    work = tempfile.mkdtemp(prefix='loft-migdelta-')
    try:
        extra = {'store': {'postgres': pg.new_database(),
                           'blob_dir': os.path.join(work, 'blobs')}}
        with Loft(extra=extra) as loft:
            try:
                ident = setup(loft)
                move_live(loft, work, 1, 'postgres', ident,
                          ('Work/2026', 'Work/2027'))
                move_live(loft, work, 2, 'sqlite', ident,
                          ('Work/2027', 'Work/2026'))
                errors = [l for l in loft.log().splitlines()
                          if re.search(r'Z error ', l) and
                          'being moved' not in l]
                r.check('no error in the log', not errors, errors[:5])
            except Exception:
                print(loft.log()[-6000:])
                raise
    finally:
        pg.close()
        shutil.rmtree(work, ignore_errors=True)
    return r.finish()


if __name__ == '__main__':
    sys.exit(main())
