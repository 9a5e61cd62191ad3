#!/usr/bin/env python3
"""loftctl migrate-store (issue 18, "Moving between backends"): one loftd
with backend = sqlite and [store] postgres on a private PostgreSQL 15
(tests/lib/pgenv.py) moves an account sqlite -> postgres -> sqlite.

- the account has folders, flags, keywords, a copy of one message in a
  second folder and an expunge; after each move every folder has the same
  UIDVALIDITY and UIDNEXT, every message the same UID, flags, keywords,
  EMAILID, THREADID and bytes, and HIGHESTMODSEQ is not lower;
- accounts.db's users.mail_store says where it lives; the source's copy
  is gone after the move (the sqlite index directory);
- an IMAP client in IDLE during the move gets * BYE [UNAVAILABLE],
  reconnects, and a QRESYNC SELECT with its old state gets no message it
  had (no new UID: nothing to download);
- while the account is locked (loftctl paused by LOFT_TEST_MOVE_PAUSE
  after its copy), an LMTP delivery gets 451 and an IMAP LOGIN NO
  [UNAVAILABLE]; the retry after the move lands;
- mbsync (if installed) synced before the move downloads nothing after;
- kill -9 of loftctl while the account is locked: the row is unchanged,
  the account is served from the source with all its mail, the lock is
  gone, and the move run again succeeds;
- what an account has beside its mail moves too (bob, first, sqlite ->
  postgres -> sqlite): METADATA entries of the server and of INBOX (private and
  shared), an URLAUTH URL made before the move still fetches, JMAP
  Identity and VacationResponse (same ids and values), a vacation reply
  sent before the move is not sent again to the same sender after it,
  Sieve duplicate sees a Message-ID it saw before the move, and a
  message POP3 hid (pop3_delete = hide) stays hidden from POP3;
- undelete's kept messages move too (bob): one EXPUNGEd from a folder and
  one removed with the folder by DELETE; after each move `loftctl user
  show` reports the same kept count and size and `undelete --list` the
  same lines (folder, old UID, removal time), and back on sqlite
  `loftctl undelete` makes the folder again with both messages, which an
  IMAP client sees with their flags (without \\Deleted), keywords, dates
  and bytes;
- a JMAP EmailSubmission bob made before the moves is the same after each
  (EmailSubmission/get: same id, emailId, identityId, undoStatus);
- the move copies while the account is served (two phases): with loftctl
  paused after that copy (LOFT_TEST_MOVE_LIVE_PAUSE), LMTP gets 250 and
  IMAP STORE/EXPUNGE/CREATE/APPEND work; all of it is in the moved account
  with exact MODSEQs, and only it was copied under the lock; kill -9 of
  loftctl in that phase changes nothing and a rerun moves the account.
Skipped (77) without PostgreSQL 15."""

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from loftenv import Loft, Results, SLOW
from pgenv import Postgres
from lmtplib import Conv, deliver, imap_messages, wait_for
from smtpconv import Sink

r = Results()
USER = 'alice@example.test'


def imap_state(loft, pw):
    """{folder: (uidvalidity, uidnext, highestmodseq,
    {uid: (flags, emailid, threadid, sha)})}"""
    c = loft.imap_login(USER, pw)
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
            eid = re.search(r'EMAILID \((\S+)\)', head).group(1)
            eid += ' MODSEQ ' + re.search(r'MODSEQ \((\d+)\)', head).group(1)
            tid = re.search(r'THREADID \((\S+)\)', head).group(1)
            msgs[uid] = (flags, eid, tid,
                         hashlib.sha256(item[1]).hexdigest())
        state[name] = (uv, un, hm, msgs)
    c.logout()
    return state


def same_state(before, after):
    """'' when after keeps everything of before (HIGHESTMODSEQ may grow)."""
    if sorted(before) != sorted(after):
        return 'folders %s / %s' % (sorted(before), sorted(after))
    for name in before:
        b, a = before[name], after[name]
        if b[0] != a[0] or b[1] != a[1]:
            return '%s: UIDVALIDITY/UIDNEXT %s/%s' % (name, b[:2], a[:2])
        if a[2] != b[2]:
            return '%s: HIGHESTMODSEQ %d -> %d' % (name, b[2], a[2])
        if b[3] != a[3]:
            return '%s: messages %s / %s' % (name, b[3], a[3])
    return ''


def import_one(loft, work, folder):
    """loftctl import of a one-message mbox into USER's folder."""
    path = os.path.join(work, folder)
    with open(path, 'w') as f:
        f.write('From a@example.org Mon Jan  1 00:00:00 2024\nFrom: '
                'a@example.org\nSubject: imported into %s\n\nhi\n' % folder)
    return loft.loftctl('import', USER, path)


def mail_store(loft):
    return loft.accounts_sql('SELECT mail_store FROM users WHERE address = ?',
                             (USER,))[0][0]


def user_dir_exists(loft):
    uid = loft.accounts_sql('SELECT id FROM users WHERE address = ?',
                            (USER,))[0][0]
    for root, dirs, files in os.walk(os.path.join(loft.data_dir, 'mail')):
        if '.moving' in root:
            continue
        if str(uid) in dirs and 'index.db' in os.listdir(
                os.path.join(root, str(uid))):
            return True
    return False


def sqlite_files_held(loft):
    """Files of USER's sqlite copy that a process (loftd's) holds open."""
    uid = loft.accounts_sql('SELECT id FROM users WHERE address = ?',
                            (USER,))[0][0]
    mail = os.path.realpath(os.path.join(loft.data_dir, 'mail'))
    held = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir('/proc/%s/fd' % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                t = os.readlink('/proc/%s/fd/%s' % (pid, fd))
            except OSError:
                continue
            parts = t.split('/')
            if t.startswith(mail + '/') and '.moving' not in parts and \
                    str(uid) in parts:
                held.append(t)
    return held


def lmtp_deliver(loft, subject, rcpts=(USER,)):
    """The final reply of one LMTP delivery to USER (to several: the
    replies after DATA, one per recipient, joined)."""
    s = socket.create_connection(('127.0.0.1', loft.port('lmtp')),
                                 timeout=30 * SLOW)
    f = s.makefile('rb')

    def reply():
        while True:
            line = f.readline().decode()
            if not line or line[3:4] != '-':
                return line

    reply()
    s.sendall(b'LHLO test\r\n')
    reply()
    s.sendall(b'MAIL FROM:<x@example.org>\r\n')
    reply()
    for rcpt in rcpts:
        s.sendall(('RCPT TO:<%s>\r\n' % rcpt).encode())
        rc = reply()
        if not rc.startswith('250'):
            s.close()
            return rc
    s.sendall(('DATA\r\n').encode())
    reply()
    s.sendall(('Subject: %s\r\nFrom: x@example.org\r\n\r\nhello\r\n.\r\n'
               % subject).encode())
    rc = ''.join(reply() for _ in rcpts)
    s.sendall(b'QUIT\r\n')
    s.close()
    return rc


class Idler(threading.Thread):
    """IDLE on INBOX with QRESYNC; records what the server said."""

    def __init__(self, loft, pw):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(('127.0.0.1', loft.port('imap')),
                                             timeout=60 * SLOW)
        self.f = self.sock.makefile('rb')
        self.f.readline()
        for cmd in ('a LOGIN %s %s' % (USER, pw), 'b ENABLE QRESYNC',
                    'c SELECT INBOX', 'd IDLE'):
            self.sock.sendall((cmd + '\r\n').encode())
            tag = cmd.split()[0]
            while True:
                line = self.f.readline().decode()
                if line.startswith(tag + ' ') or line.startswith('+'):
                    break
        self.lines = []
        self.bye = threading.Event()

    def run(self):
        try:
            while True:
                line = self.f.readline().decode()
                if not line:
                    break
                self.lines.append(line)
                if line.startswith('* BYE'):
                    self.bye.set()
        except OSError:
            pass
        self.bye.set()


def populate(loft, pw):
    c = loft.imap_login(USER, pw)
    c.create('Work')
    c.create('Work/2026')
    for i in range(6):
        flags = ['(\\Seen)', '(\\Flagged $Label1)', None][i % 3]
        c.append('INBOX', flags, None,
                 ('From: a@example.org\r\nSubject: inbox %d\r\nMessage-ID: '
                  '<m%d@example.org>\r\n\r\nbody %d\r\n' % (i, i, i)).encode())
    c.append('Work/2026', '($Work)', None,
             b'From: b@example.org\r\nSubject: work\r\n\r\nwork\r\n')
    c.select('INBOX')
    typ, st = c.status('INBOX', '(HIGHESTMODSEQ)')
    before_expunge = int(re.search(rb'HIGHESTMODSEQ (\d+)', st[0]).group(1))
    c.uid('STORE', '2', '+FLAGS', '(\\Deleted)')
    c.expunge()
    c.uid('COPY', '3', 'Work')
    c.uid('STORE', '4', '+FLAGS', '(\\Answered custom1)')
    c.logout()
    return before_expunge


def mbsync_setup(loft, pw, work):
    if shutil.which('mbsync') is None:
        return None
    md = os.path.join(work, 'maildir')
    os.makedirs(md)
    rc = os.path.join(work, 'mbsyncrc')
    with open(rc, 'w') as f:
        f.write('IMAPAccount a\nHost 127.0.0.1\nPort %d\nUser %s\nPass %s\n'
                'SSLType None\nAuthMechs LOGIN\n\n'
                'IMAPStore remote\nAccount a\n\n'
                'MaildirStore local\nPath %s/\nInbox %s/INBOX\n'
                'SubFolders Verbatim\n\n'
                'Channel c\nFar :remote:\nNear :local:\nPatterns *\n'
                'Create Near\nSyncState *\n'
                % (loft.port('imap'), USER, pw, md, md))
    return rc, md


def mbsync_run(cfg):
    p = subprocess.run(['mbsync', '-V', '-c', cfg[0], 'c'],
                       capture_output=True, text=True, timeout=120 * SLOW)
    files = sum(len(fs) for root, ds, fs in os.walk(cfg[1])
                if os.path.basename(root) in ('cur', 'new'))
    return p.returncode, files, p.stdout + p.stderr


def move(loft, to, env=None, wait=True):
    cmd = [loft.loftctl_bin, '--config', loft.config_path, 'migrate-store',
           USER, '--to', to]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ, **(env or {})))
    if not wait:
        return p
    out, err = p.communicate(timeout=120 * SLOW)
    return p.returncode, out, err


def wait_file(path, timeout):
    deadline = time.monotonic() + timeout * SLOW
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# ---- what an account has beside its mail (bob) ------------------------

BOB = 'bob@example.test'
EXTRA_USING = ['urn:ietf:params:jmap:core', 'urn:ietf:params:jmap:mail',
               'urn:ietf:params:jmap:submission',
               'urn:ietf:params:jmap:vacationresponse']


def imap_raw(loft, user, cmds):
    """Runs tagged commands on one connection; every line, decoded."""
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


def lmtp_from(loft, sender, rcpt, data):
    c = Conv.tcp(loft.port('lmtp'), timeout=30 * SLOW)
    try:
        return deliver(c, sender, [rcpt], data)
    finally:
        c.close()


def pal_msg(subject, msgid, frm='pal@remote.test'):
    return ('From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\n'
            '\r\nHello.\r\n' % (frm, BOB, subject, msgid))


def sink_count(sink, text, rcpt='pal@remote.test'):
    """Replies with text to rcpt (the 'to both' delivery below makes
    bob's vacation answer its own sender too)."""
    return sum(1 for m in sink.messages
               if text.encode() in m.get('data', b'') and
               any(rcpt.encode() in x for x in m.get('rcpts', [])))


def pop3_uidls(loft):
    p = loft.pop3_login(BOB)
    try:
        return [l.split()[1] for l in p.uidl()[1]]
    finally:
        p.quit()


def extra_setup(loft, sink):
    """bob, on sqlite: everything the move must carry, set as a user
    would. Returns what the checks compare with."""
    from jmapclient import Jmap
    st = {}
    c = loft.imap_login(BOB, loft.users[BOB])
    for i in range(3):
        c.append('INBOX', None, None,
                 ('From: x@example.org\r\nSubject: bob %d\r\nMessage-ID: '
                  '<bob%d@example.org>\r\nContent-Type: text/plain\r\n\r\n'
                  'bob body %d\r\n' % (i, i, i)).encode())
    typ, dat = c.status('INBOX', '(UIDVALIDITY)')
    uv = int(re.search(rb'UIDVALIDITY (\d+)', dat[0]).group(1))
    c.logout()
    lines = imap_raw(loft, BOB, [
        'SETMETADATA "" (/private/vendor/loft-test/srv "server value")',
        'SETMETADATA INBOX (/shared/comment "inbox shared" '
        '/private/comment "inbox private")'])
    r.check('SETMETADATA before the move',
            sum(1 for l in lines if re.match(r't[12] OK', l)) == 2, lines)
    rump = ('imap://bob%%40example.test@loft.example.test/INBOX;UIDVALIDITY='
            '%d/;UID=1;URLAUTH=authuser' % uv)
    lines = imap_raw(loft, BOB, ['GENURLAUTH "%s" INTERNAL' % rump])
    m = re.search(r'GENURLAUTH "([^"]+)"', ''.join(lines))
    r.check('GENURLAUTH before the move', m is not None, lines)
    st['url'] = m.group(1) if m else ''
    j = Jmap(loft, BOB)
    a = j.ok('Identity/set', {'create': {'i1': {
        'name': 'Bob Moved', 'email': BOB,
        'textSignature': 'Bob, before the move'}}}, using=EXTRA_USING)
    ident = (a.get('created') or {}).get('i1', {}).get('id')
    r.check('Identity/set before the move', ident is not None, a)
    st['identity'] = ident
    a = j.ok('VacationResponse/set', {'update': {'singleton': {
        'isEnabled': True, 'subject': 'Bob is away',
        'textBody': 'Bob moved house.'}}}, using=EXTRA_USING)
    r.check('VacationResponse/set before the move',
            'singleton' in (a.get('updated') or {}), a)
    # a message sent through JMAP: its EmailSubmission object
    boxes = {m.get('role'): m['id'] for m in
             j.ok('Mailbox/get', {'ids': None})['list']}
    a = j.ok('Email/set', {'create': {'d': {
        'mailboxIds': {boxes['drafts']: True}, 'keywords': {'$draft': True},
        'from': [{'email': BOB}], 'to': [{'email': 'sub@remote.test'}],
        'subject': 'sent before the move',
        'bodyValues': {'b': {'value': 'Submitted.'}},
        'textBody': [{'partId': 'b', 'type': 'text/plain'}]}}})
    eid = (a.get('created') or {}).get('d', {}).get('id')
    a = j.ok('EmailSubmission/set', {'create': {'s': {
        'identityId': ident, 'emailId': eid}}}, using=EXTRA_USING)
    r.check('EmailSubmission/set before the move',
            's' in (a.get('created') or {}), a)
    r.check('the submission reached the smarthost', wait_for(
        lambda: any(b'sent before the move' in m.get('data', b'')
                    for m in sink.messages), timeout=30 * SLOW),
        len(sink.messages))
    st['jmap'] = jmap_extra(loft)
    r.check('an EmailSubmission before the move', len(st['jmap'][2]) == 1,
            st['jmap'])
    # Sieve: duplicate files a Message-ID seen before into Dups
    rc, out, err = loft.loftctl('sieve', 'put', BOB, 'dups', '--activate',
                                input='require ["duplicate", "fileinto", '
                                '"mailbox"];\nif duplicate {\n  fileinto '
                                ':create "Dups"; stop;\n}\n')
    r.check('sieve put (duplicate)', rc == 0, out + err)
    lmtp_from(loft, 'pal@remote.test', BOB,
              pal_msg('vacation 1', 'v1@remote.test'))
    r.check('vacation reply before the move',
            wait_for(lambda: sink_count(sink, 'Bob moved house.') >= 1,
                     timeout=30 * SLOW), len(sink.messages))
    lmtp_from(loft, 'dup@remote.test', BOB,
              pal_msg('dup 1', 'same@remote.test', frm='dup@remote.test'))
    # POP3: DELE under pop3_delete = hide
    rc, out, err = loft.loftctl('user', 'set', BOB, 'pop3_delete=hide')
    r.check('pop3_delete=hide', rc == 0, out + err)
    p = loft.pop3_login(BOB)
    uidls = [l.split()[1] for l in p.uidl()[1]]
    p.retr(2)
    p.dele(1)
    p.quit()
    st['uidls'] = uidls[1:]
    r.check('POP3 hides what it deleted', pop3_uidls(loft) == uidls[1:],
            (uidls, pop3_uidls(loft)))
    st['replies'] = sink_count(sink, 'Bob moved house.')
    st['meta'] = metadata_lines(loft)
    kept_setup(loft, st)
    return st


def kept_state(loft):
    """What loftctl says undelete keeps for bob: (user show's line,
    undelete --list's lines)."""
    rc, out, err = loft.loftctl('user', 'show', BOB)
    m = re.search(r'^deleted \(kept for undelete\):.*$', out, re.M)
    rc2, out2, err2 = loft.loftctl('undelete', BOB, '--list')
    return (m.group(0) if m else out + err,
            sorted(l for l in out2.splitlines() if l.strip()))


def old_messages(loft):
    """Folder Old as an IMAP client sees it: sorted (flags, date, bytes)."""
    c = loft.imap_login(BOB, loft.users[BOB])
    try:
        return old_messages_of(c)
    finally:
        c.logout()


def kept_setup(loft, st):
    """Two of bob's messages kept for undelete: one EXPUNGEd from Old,
    one removed with Old itself."""
    c = loft.imap_login(BOB, loft.users[BOB])
    c.create('Old')
    for i, flags in ((1, '(\\Flagged $Keep)'), (2, '(\\Seen)')):
        c.append('Old', flags, '"0%d-Mar-2021 10:1%d:00 +0000"' % (i, i),
                 ('From: old@example.org\r\nSubject: old %d\r\n'
                  'Message-ID: <old%d@example.org>\r\n\r\nold body %d\r\n'
                  % (i, i, i)).encode())
    st['old'] = old_messages_of(c)
    c.select('Old')
    c.uid('STORE', '1', '+FLAGS', '(\\Deleted)')
    c.expunge()
    c.close()
    typ, _ = c.delete('Old')
    c.logout()
    r.check('kept: DELETE Old', typ == 'OK', typ)
    st['kept'] = kept_state(loft)
    r.check('kept: two messages kept for undelete',
            len(st['kept'][1]) == 2 and ', 2 messages' in st['kept'][0],
            st['kept'])


def old_messages_of(c):
    typ, _ = c.select('Old', readonly=True)
    if typ != 'OK':
        return []
    typ, data = c.uid('FETCH', '1:*', '(FLAGS INTERNALDATE BODY.PEEK[])')
    c.close()
    return sorted((sorted(f for f in re.search(
        rb'FLAGS \(([^)]*)\)', d[0]).group(1).split()
        if f != b'\\Recent'), re.search(
        rb'INTERNALDATE "([^"]+)"', d[0]).group(1), d[1])
        for d in data if isinstance(d, tuple))


def metadata_lines(loft):
    lines = imap_raw(loft, BOB, [
        'GETMETADATA "" /private/vendor/loft-test/srv',
        'GETMETADATA INBOX (/shared/comment /private/comment)'])
    return sorted(l.strip() for l in lines if l.startswith('* METADATA'))


def jmap_extra(loft):
    from jmapclient import Jmap
    j = Jmap(loft, BOB)
    ids = j.ok('Identity/get', {}, using=EXTRA_USING)['list']
    vac = j.ok('VacationResponse/get', {}, using=EXTRA_USING)['list']
    subs = j.ok('EmailSubmission/get', {'ids': None},
                using=EXTRA_USING)['list']
    return (sorted((i['id'], i.get('name'), i.get('textSignature'))
                   for i in ids),
            [(v.get('id'), v.get('isEnabled'), v.get('textBody'))
             for v in vac],
            sorted((x['id'], x.get('emailId'), x.get('identityId'),
                    x.get('undoStatus')) for x in subs))


def extra_check(loft, sink, st, where):
    meta = metadata_lines(loft)
    r.check('%s: METADATA entries kept' % where,
            meta == st['meta'] and len(meta) == 2, (meta, st['meta']))
    lines = imap_raw(loft, BOB, ['URLFETCH "%s"' % st['url']])
    r.check('%s: an URLAUTH URL made before still fetches' % where,
            any('bob body 0' in l for l in lines), lines)
    got = jmap_extra(loft)
    r.check('%s: JMAP EmailSubmission kept (same id, Email, identity)'
            % where, got[2] == st['jmap'][2], (got[2], st['jmap'][2]))
    r.check('%s: JMAP Identity and VacationResponse kept' % where,
            got[:2] == st['jmap'][:2] and any(i[0] == st['identity']
                                      for i in got[0]), (got, st['jmap']))
    lmtp_from(loft, 'pal@remote.test', BOB,
              pal_msg('vacation again', 'v-%s@remote.test' % where))
    time.sleep(3 * SLOW)
    r.check('%s: no second vacation reply to the same sender' % where,
            sink_count(sink, 'Bob moved house.') == st['replies'],
            sink_count(sink, 'Bob moved house.'))
    # vacation is still on: a sender it never answered gets its reply
    new = 'new-%s@remote.test' % where.replace(' ', '-')
    lmtp_from(loft, new, BOB, pal_msg('vacation new', 'n-%s@remote.test'
                                      % where.replace(' ', '-'), frm=new))
    r.check('%s: vacation answers a new sender' % where,
            wait_for(lambda: sink_count(sink, 'Bob moved house.', new) == 1,
                     timeout=30 * SLOW), len(sink.messages))
    lmtp_from(loft, 'dup@remote.test', BOB,
              pal_msg('dup %s' % where, 'same@remote.test',
                      frm='dup@remote.test'))
    dups = imap_messages(loft, BOB, 'Dups') or []
    r.check('%s: Sieve duplicate remembers a Message-ID from before'
            % where, any(('dup %s' % where).encode() in m for m in dups),
            len(dups))
    r.check('%s: POP3 still hides what it deleted' % where,
            pop3_uidls(loft)[:len(st['uidls'])] == st['uidls'],
            (pop3_uidls(loft), st['uidls']))
    got = kept_state(loft)
    r.check('%s: user show reports the same kept messages' % where,
            got[0] == st['kept'][0], (got[0], st['kept'][0]))
    r.check('%s: undelete --list the same (folder, UID, removal time)'
            % where, got[1] == st['kept'][1], (got[1], st['kept'][1]))


# ---- two phases: the account stays live while it is copied ----------


def live_phase_checks(loft, pw, work):
    """alice moved with loftctl paused after its copy while the account
    is still served (LOFT_TEST_MOVE_LIVE_PAUSE, before the lock): mail
    delivered, a flag set, a message expunged and a folder made then are
    in the moved account, and only they were copied under the lock (not
    the whole account again); kill -9 of loftctl in that phase leaves the
    account served from where it was with nothing lost, and a rerun
    moves it."""
    where = mail_store(loft)
    to, back = ('sqlite', 'postgres') if where == 1 else ('postgres',
                                                          'sqlite')
    pause = os.path.join(work, 'livepause')

    def wait_live(p):
        ok = wait_file(pause + '.ready', 60)
        if not ok:
            p.kill()
            p.wait()
        return ok

    # ---- phase one: the account is served on while copied
    open(pause, 'w').close()
    p = move(loft, to, env={'LOFT_TEST_MOVE_LIVE_PAUSE': pause}, wait=False)
    r.check('live: loftctl reaches the pause after its copy, unlocked',
            wait_live(p))
    code = lmtp_deliver(loft, 'during the live copy')
    r.check('live: LMTP during the copy: 250', code.startswith('250'), code)
    c = loft.imap()
    try:
        c.login(USER, pw)
        c.select('INBOX')
        typ, d = c.uid('SEARCH', 'ALL')
        uids = d[0].split()
        t1, _ = c.uid('STORE', uids[0], '+FLAGS', '(\\Flagged livekw)')
        t2 = 'OK'
        c.create('Live')
        t3, _ = c.append('Live', '(\\Seen)', None,
                         b'From: l@example.org\r\nSubject: live\r\n\r\n'
                         b'made while copied\r\n')
        res = 'OK' if (t1, t2, t3) == ('OK', 'OK', 'OK') else (t1, t2, t3)
        c.logout()
    except Exception as e:
        res = str(e)
    r.check('live: IMAP STORE, CREATE, APPEND during the copy',
            res == 'OK', res)
    before = imap_state(loft, pw)
    r.check('live: row unchanged while copying', mail_store(loft) == where)
    os.unlink(pause)
    out, err = p.communicate(timeout=300 * SLOW)
    os.unlink(pause + '.ready')
    print(out.strip())
    r.check('live: migrate-store --to %s' % to, p.returncode == 0 and
            'moved to %s' % to in out, out + err)
    m = re.search(r'under the lock (\d+) changes, (\d+) of them messages',
                  out)
    r.check('live: only the changes were copied under the lock',
            m is not None and int(m.group(1)) >= 3 and
            int(m.group(2)) == 2 and 'copied whole' not in out, out + err)
    after = imap_state(loft, pw)
    diff = same_state(before, after)
    r.check('live: the delivery, flag and folder are in the moved '
            'account (UIDs, MODSEQs, HIGHESTMODSEQ exact)', diff == '' and
            'Live' in after, diff)
    inbox = imap_messages(loft, USER, 'INBOX') or []
    r.check('live: the mail delivered during the copy is there',
            any(b'during the live copy' in m for m in inbox), len(inbox))

    # ---- an expunge during the copy (undelete keeps the message: the
    # delta carries the kept row with its removal time)
    where = mail_store(loft)
    open(pause, 'w').close()
    p = move(loft, back, env={'LOFT_TEST_MOVE_LIVE_PAUSE': pause},
             wait=False)
    r.check('live expunge: loftctl reaches the live pause', wait_live(p))
    c = loft.imap_login(USER, pw)
    c.select('INBOX')
    uids = c.uid('SEARCH', 'ALL')[1][0].split()
    c.uid('STORE', uids[1], '+FLAGS', '(\\Deleted)')
    typ, _ = c.expunge()
    c.logout()
    r.check('live expunge: EXPUNGE during the copy', typ == 'OK', typ)
    before = imap_state(loft, pw)
    os.unlink(pause)
    out, err = p.communicate(timeout=300 * SLOW)
    os.unlink(pause + '.ready')
    print(out.strip())
    r.check('live expunge: migrate-store --to %s, not copied whole'
            % back, p.returncode == 0 and 'moved to %s' % back in out and
            'copied whole' not in out, out + err)
    after = imap_state(loft, pw)
    diff = same_state(before, after)
    r.check('live expunge: the expunge is in the moved account (MODSEQs, '
            'HIGHESTMODSEQ exact)', diff == '' and
            uids[1].decode() not in [str(u) for u in after['INBOX'][3]],
            diff)
    back, to = to, back

    # ---- kill -9 of loftctl while copying live
    where = mail_store(loft)
    before = imap_state(loft, pw)
    open(pause, 'w').close()
    p = move(loft, back, env={'LOFT_TEST_MOVE_LIVE_PAUSE': pause},
             wait=False)
    r.check('live kill: loftctl reaches the live pause', wait_live(p))
    p.send_signal(signal.SIGKILL)
    p.wait()
    os.unlink(pause)
    if os.path.exists(pause + '.ready'):
        os.unlink(pause + '.ready')
    r.check('live kill: row unchanged', mail_store(loft) == where)
    after = imap_state(loft, pw)
    diff = same_state(before, after)
    r.check('live kill: served from where it was, all there', diff == '',
            diff)
    code = lmtp_deliver(loft, 'after the live kill')
    r.check('live kill: delivery 250', code.startswith('250'), code)
    if back == 'sqlite':
        # the killed move left a sqlite copy; an import into the account
        # (served from postgres) wakes loftd's sqlite indexer for it,
        # which must not open that copy: the rerun removes it (an
        # index.db removed under loftd: "pragmas: disk I/O error (1802)")
        rc, out, err = import_one(loft, work, 'AfterKill')
        r.check('live kill: loftctl import while the copy is left',
                rc == 0 and '1 imported' in out, out + err)
        time.sleep(2 * SLOW)
        held = sqlite_files_held(loft)
        r.check('live kill: loftd holds nothing of the sqlite copy left '
                'behind', held == [], held)
    before = imap_state(loft, pw)
    rc, out, err = move(loft, back)
    print(out.strip())
    r.check('live kill: the move run again', rc == 0 and
            'moved to %s' % back in out and 'copied whole' not in out,
            out + err)
    after = imap_state(loft, pw)
    diff = same_state(before, after)
    r.check('live kill: everything kept after the rerun', diff == '', diff)


def main():
    if not Postgres.available():
        print('0 passed, 0 failed (skipped: no PostgreSQL 15 binaries)')
        return 77
    pg = Postgres()
    work = tempfile.mkdtemp(prefix='loft-migstore-')
    blobs = os.path.join(work, 'blobs')
    try:
        sink = Sink()
        extra = {'store': {'postgres': pg.new_database(), 'blob_dir': blobs},
                 'queue': {'smarthost': '127.0.0.1:%d' % sink.port,
                           'smarthost_tls': 'none', 'retry_min': '1s'}}
        with Loft(extra=extra) as loft:
          try:
            pw = loft.users[USER]
            bob_st = extra_setup(loft, sink)
            for to, where in (('postgres', 'on postgres'),
                              ('sqlite', 'back on sqlite')):
                rc, out, err = loft.loftctl('migrate-store', BOB, '--to', to)
                r.check('bob --to %s' % to, rc == 0 and
                        'moved to %s' % to in out, out + err)
                extra_check(loft, sink, bob_st, where)
            # back where it started: undelete brings back what was kept
            rc, out, err = loft.loftctl('undelete', BOB, '--folder', 'Old')
            r.check('back on sqlite: undelete Old: both, the folder made'
                    ' again', rc == 0 and ': 2 messages' in out and
                    '1 folders made again' in out, out + err)
            back = old_messages(loft)
            want = sorted((sorted(f for f in fl if f != b'\\Deleted'), d, b)
                          for fl, d, b in bob_st['old'])
            r.check('back on sqlite: Old as before (flags without'
                    ' \\Deleted, keywords, dates, bytes)', back == want,
                    (want, back))
            before_expunge = populate(loft, pw)
            before = imap_state(loft, pw)
            r.check('populated', len(before['INBOX'][3]) == 5 and
                    len(before['Work'][3]) == 1, before)
            mb = mbsync_setup(loft, pw, work)
            if mb:
                rc, files0, out = mbsync_run(mb)
                r.check('mbsync first sync', rc == 0 and files0 == 7,
                        '%d files, rc %d: %s' % (files0, rc, out[-500:]))
            r.check('row says sqlite first', mail_store(loft) == 0)

            # ---- sqlite -> postgres, with IDLE, LMTP and LOGIN while
            # the account is locked
            idler = Idler(loft, pw)
            idler.start()
            pause = os.path.join(work, 'pause')
            open(pause, 'w').close()
            db = re.search(r'dbname=(\S+)', extra['store']['postgres'])[1]
            upd_sql = ("SELECT coalesce(sum(n_tup_upd), 0) FROM"
                       " pg_stat_user_tables WHERE relname LIKE 'msg_p%'")
            upd0 = int(pg.psql(upd_sql, db=db).strip())
            p = move(loft, 'postgres', env={'LOFT_TEST_MOVE_PAUSE': pause},
                     wait=False)
            r.check('loftctl reaches the pause (copied, locked)',
                    wait_file(pause + '.ready', 60))
            r.check('IDLE client gets * BYE [UNAVAILABLE]',
                    idler.bye.wait(10 * SLOW) and
                    any(l.startswith('* BYE [UNAVAILABLE]')
                        for l in idler.lines), idler.lines)
            code = lmtp_deliver(loft, 'during the move')
            r.check('LMTP during the lock: 451', code.startswith('451'),
                    code)
            c = loft.imap()
            try:
                c.login(USER, pw)
                login = 'OK'
                c.select('INBOX')
                sel = 'OK'
            except Exception as e:
                login, sel = str(e), ''
            r.check('IMAP during the lock: NO [UNAVAILABLE]',
                    'UNAVAILABLE' in login + sel, login + sel)
            r.check('row unchanged while locked', mail_store(loft) == 0)
            os.unlink(pause)
            out, err = p.communicate(timeout=120 * SLOW)
            r.check('migrate-store --to postgres', p.returncode == 0 and
                    'moved to postgres' in out, out + err)
            # the target took each message's MODSEQ as it went in (its
            # counter was ahead: the folders made first): no row is
            # updated afterwards (a 10,000-message folder's update ran
            # every row's triggers past postgres_timeout)
            time.sleep(1)
            upd = int(pg.psql(upd_sql, db=db).strip()) - upd0
            r.check('the copy updates no message row after its insert',
                    upd == 0, '%d msg rows updated' % upd)
            print(out.strip())
            r.check('row says postgres', mail_store(loft) == 1)
            r.check('the sqlite copy is gone', not user_dir_exists(loft))
            after = imap_state(loft, pw)
            diff = same_state(before, after)
            r.check('everything kept on postgres', diff == '', diff)
            code = lmtp_deliver(loft, 'after the move')
            r.check('LMTP retry lands', code.startswith('250'), code)
            # the delivery went to postgres
            after = imap_state(loft, pw)
            r.check('delivery stored on postgres',
                    len(after['INBOX'][3]) == 6, after['INBOX'])
            # one delivery to an account on each backend (bob is still
            # on sqlite): the body's bytes reach both
            bob = 'bob@example.test'
            code = lmtp_deliver(loft, 'to both', rcpts=(bob, USER))
            r.check('LMTP to a sqlite and a postgres account: 250 each',
                    code.count('250 ') == 2, code)
            got = []
            for who in (bob, USER):
                c = loft.imap_login(who, loft.users[who])
                c.select('INBOX', readonly=True)
                typ, data = c.uid('SEARCH', 'SUBJECT', '"to both"')
                uids = data[0].split()
                body = c.uid('FETCH', uids[-1], '(BODY.PEEK[])')[1][0][1] \
                    if uids else b''
                got.append(body)
                c.logout()
            r.check('each got the message whole', all(
                b'Subject: to both' in b and b.endswith(b'hello\r\n')
                for b in got), got)
            # the IDLE state below is before these two deliveries
            extra_new = 1

            # the IDLE client comes back with its old state: no new UID
            uv, un, hm, msgs = before['INBOX']
            s = socket.create_connection(('127.0.0.1', loft.port('imap')),
                                         timeout=30 * SLOW)
            f = s.makefile('rb')
            f.readline()
            lines = []
            for cmd in ('a LOGIN %s %s' % (USER, pw), 'b ENABLE QRESYNC',
                        'c SELECT INBOX (QRESYNC (%d %d 1:%d))'
                        % (uv, hm, un - 1)):
                s.sendall((cmd + '\r\n').encode())
                tag = cmd.split()[0]
                while True:
                    line = f.readline().decode()
                    lines.append(line)
                    if line.startswith(tag + ' '):
                        break
            s.close()
            fetched = [int(m.group(1)) for l in lines
                       for m in [re.search(r'FETCH \(.*UID (\d+)', l)] if m]
            new = [u for u in fetched if u not in msgs]
            r.check('QRESYNC resync: only the new deliveries, no old '
                    'message again (MODSEQs kept)',
                    lines[-1].startswith('c OK') and
                    len(new) == 1 + extra_new and
                    all(u >= un for u in new) and
                    len(fetched) == len(new), lines)
            # from before the expunge: the log came along
            s = socket.create_connection(('127.0.0.1', loft.port('imap')),
                                         timeout=30 * SLOW)
            f = s.makefile('rb')
            f.readline()
            lines = []
            for cmd in ('a LOGIN %s %s' % (USER, pw), 'b ENABLE QRESYNC',
                        'c SELECT INBOX (QRESYNC (%d %d 1:%d))'
                        % (uv, before_expunge, un - 1)):
                s.sendall((cmd + '\r\n').encode())
                tag = cmd.split()[0]
                while True:
                    line = f.readline().decode()
                    lines.append(line)
                    if line.startswith(tag + ' '):
                        break
            s.sendall(b'z LOGOUT\r\n')
            s.close()
            r.check('QRESYNC from before the expunge: VANISHED (EARLIER) 2',
                    any(l.startswith('* VANISHED (EARLIER) 2\r') for l in lines)
                    and lines[-1].startswith('c OK'), lines)
            if mb:
                rc, files1, out = mbsync_run(mb)
                r.check('mbsync after the move downloads only the new '
                        'deliveries', rc == 0 and
                        files1 == files0 + 1 + extra_new,
                        '%d -> %d files, rc %d: %s' % (files0, files1, rc,
                                                       out[-800:]))
            before = imap_state(loft, pw)

            # ---- kill -9 of loftctl mid-move (postgres -> sqlite)
            open(pause, 'w').close()
            p = move(loft, 'sqlite', env={'LOFT_TEST_MOVE_PAUSE': pause},
                     wait=False)
            r.check('second move reaches the pause',
                    wait_file(pause + '.ready', 60))
            p.send_signal(signal.SIGKILL)
            p.wait()
            os.unlink(pause)
            os.unlink(pause + '.ready')
            r.check('after kill -9: row still postgres', mail_store(loft) == 1)
            after = imap_state(loft, pw)
            diff = same_state(before, after)
            r.check('after kill -9: served from postgres, all there',
                    diff == '', diff)
            code = lmtp_deliver(loft, 'after the kill')
            r.check('after kill -9: delivery 250 (lock gone)',
                    code.startswith('250'), code)
            before = imap_state(loft, pw)

            # ---- postgres -> sqlite, again
            rc, out, err = move(loft, 'sqlite')
            r.check('migrate-store --to sqlite', rc == 0 and
                    'moved to sqlite' in out, out + err)
            print(out.strip())
            r.check('row says sqlite', mail_store(loft) == 0)
            after = imap_state(loft, pw)
            diff = same_state(before, after)
            r.check('everything kept back on sqlite', diff == '', diff)
            rc, out, err = move(loft, 'sqlite')
            r.check('moving again is a no-op', rc == 0 and 'already' in out,
                    out + err)
            code = lmtp_deliver(loft, 'back on sqlite')
            r.check('delivery on sqlite again', code.startswith('250') and
                    user_dir_exists(loft), code)
            # loftctl import with both backends: bodies made on the front
            # reach either side (it crashed on the sqlite one)
            rc, out, err = import_one(loft, work, 'ImportedSqlite')
            r.check('loftctl import into an account on sqlite',
                    rc == 0 and '1 imported' in out, out + err)
            # another account was never moved, and --all moves both
            rc, out, err = loft.loftctl('migrate-store', '--all', '--to',
                                        'postgres')
            r.check('--all --to postgres', rc == 0 and
                    out.count('moved to postgres') == len(loft.users),
                    out + err)
            after = imap_state(loft, pw)
            r.check('after --all: alice on postgres, her mail there',
                    mail_store(loft) == 1 and
                    len(after['INBOX'][3]) == len(before['INBOX'][3]) + 1 and
                    len(after.get('ImportedSqlite', (0, 0, 0, {}))[3]) == 1,
                    sorted(after))
            rc, out, err = import_one(loft, work, 'ImportedPg')
            after = imap_state(loft, pw)
            r.check('loftctl import into an account on postgres',
                    rc == 0 and '1 imported' in out and
                    len(after.get('ImportedPg', (0, 0, 0, {}))[3]) == 1,
                    out + err)
            live_phase_checks(loft, pw, work)
            errors = [l for l in loft.log().splitlines()
                      if re.search(r'Z error ', l) and 'being moved' not in l]
            r.check('no error in the log', not errors, errors[:5])
          except Exception:
            time.sleep(2)
            print(loft.log()[-6000:])
            raise
    finally:
        pg.close()
        shutil.rmtree(work, ignore_errors=True)
    return r.finish()


if __name__ == '__main__':
    sys.exit(main())
