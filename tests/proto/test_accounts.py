#!/usr/bin/env python3
"""Accounts and folders (issue "Running it for real"):

- Every refused delivery leaves one log line with the recipient, the
  client, the status code and the reason (unknown user, unknown domain,
  disabled account, over quota at RCPT and at DATA).
- Sent, Drafts, Trash, Junk and Archive come back at the next login when
  the user deleted them; a plain mailbox of that name takes the role;
  one mailbox per role: CREATE with USE of a role that exists answers
  NO [USEATTR] (RFC 6154); RENAME carries the role (and the renamed
  folder is not duplicated at the next login).
- GETQUOTAROOT without a limit names no root (RFC 9208 5.1 lists limited
  resources only); STATUS=SIZE shows the usage.
- `loftctl check` (holding the account's handle for every index access)
  says when it upgraded an older index, refuses a newer one untouched, and
  finds an account without mail consistent without making it an index
  (on postgres: refuses a newer schema, and makes no rows for it).
"""

import glob
import os
import re
import socket
import sqlite3
import sys

from loftenv import BACKEND, DEFAULT_USERS, SLOW, Results
from pop3client import deliver, make_env, simple_message

R = Results()
# loftenv's default users: passwords that pass the password policy.
ALICE, BOB = 'alice@example.test', 'bob@example.test'
ALICE_PW, BOB_PW = DEFAULT_USERS[ALICE], DEFAULT_USERS[BOB]


class Imap:
    def __init__(self, env, user, pw):
        self.s = socket.create_connection(('127.0.0.1', env.port('imap')),
                                          timeout=20 * SLOW)
        self.buf = b''
        self.n = 0
        self.line()
        self.cmd('LOGIN %s %s' % (user, pw))

    def line(self):
        while b'\r\n' not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line.decode('utf-8', 'replace')

    def cmd(self, text):
        self.n += 1
        tag = 't%d' % self.n
        self.s.sendall(('%s %s\r\n' % (tag, text)).encode())
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if l.startswith(tag + ' '):
                return lines

    def logout(self):
        self.cmd('LOGOUT')
        self.s.close()


def roles(lines):
    """{name: set of special-use flags} from LIST lines."""
    out = {}
    for l in lines:
        m = re.match(r'\* LIST \(([^)]*)\) "/" "?([^"]*)"?$', l)
        if m:
            out[m.group(2)] = set(f for f in m.group(1).split()
                                  if f in ('\\Sent', '\\Drafts', '\\Trash',
                                           '\\Junk', '\\Archive'))
    return out


def test_refused_logged(env):
    env.loftctl('user', 'set', BOB, 'disabled=yes')
    env.loftctl('user', 'quota', ALICE, '1K')
    c = env.lmtp()
    c.ehlo('mx.example.org')
    c.mail('sender@example.org')
    codes = {}
    for rcpt in ('nobody@example.test', 'x@elsewhere.example',
                 BOB, ALICE):
        codes[rcpt] = c.rcpt(rcpt)[0]
    c.rset()
    c.quit()
    R.check('RCPT codes', codes == {'nobody@example.test': 550,
                                    'x@elsewhere.example': 550,
                                    BOB: 550, ALICE: 250}, codes)
    log = env.log()
    for rcpt, status, reason in [
            ('nobody@example.test', '550 5.1.1', "User doesn't exist"),
            ('x@elsewhere.example', '550 5.1.2', 'Domain is not served here'),
            (BOB, '550 5.2.1', 'Mailbox disabled')]:
        R.check('logged: ' + reason,
                'refused: to=<%s> from=<sender@example.org> client=127.0.0.1 '
                'helo=mx.example.org proto=LMTP status="%s" reason="%s"'
                % (rcpt, status, reason) in log, log[-2000:])
    # over quota at DATA (1K quota, a 4K message)
    big = simple_message(1, body='y' * 4000 + '\r\n')
    try:
        deliver(env, ALICE, big)
        refused = False
    except Exception:
        refused = True
    R.check('over quota refused', refused)
    R.check('logged: over quota at DATA',
            re.search(r'refused: to=<alice@example.test> from=<sender@example'
                      r'.org> client=127.0.0.1 helo=\S+ proto=LMTP '
                      r'status="552 5.2.2" '
                      r'reason="Quota exceeded', env.log()) is not None,
            env.log()[-2000:])
    env.loftctl('user', 'set', BOB, 'disabled=no')
    env.loftctl('user', 'quota', ALICE, 'none')


def test_roles(env):
    c = Imap(env, ALICE, ALICE_PW)
    base = roles(c.cmd('LIST "" "*"'))
    R.check('five roles at first', base.get('Sent') == {'\\Sent'} and
            base.get('Trash') == {'\\Trash'} and
            base.get('Archive') == {'\\Archive'}, base)
    r = c.cmd('CREATE MyTrash (USE (\\Trash))')
    R.check('CREATE USE of an existing role: NO [USEATTR]',
            r[-1].startswith('t') and ' NO [USEATTR]' in r[-1], r)
    r = c.cmd('CREATE MyFlagged (USE (\\Flagged))')
    R.check('CREATE USE of a free role', ' OK ' in r[-1], r)
    r = c.cmd('CREATE MyFlagged2 (USE (\\Flagged))')
    R.check('second \\Flagged refused', ' NO [USEATTR]' in r[-1], r)
    # the user deletes Trash and Drafts, renames Sent, and makes a plain
    # "Junk" after deleting the real one
    for cmd in ('DELETE Trash', 'DELETE Drafts', 'RENAME Sent "Sent Items"',
                'DELETE Junk', 'CREATE Junk'):
        r = c.cmd(cmd)
        R.check(cmd, ' OK ' in r[-1], r)
    after = roles(c.cmd('LIST "" "*"'))
    R.check('RENAME carries the role', after.get('Sent Items') == {'\\Sent'}
            and 'Sent' not in after, after)
    R.check('deleted stay deleted in the session', 'Trash' not in after and
            'Drafts' not in after, after)
    c.logout()
    c = Imap(env, ALICE, ALICE_PW)
    back = roles(c.cmd('LIST "" "*"'))
    R.check('Trash back at login', back.get('Trash') == {'\\Trash'}, back)
    R.check('Drafts back at login', back.get('Drafts') == {'\\Drafts'}, back)
    R.check('renamed Sent not duplicated', 'Sent' not in back and
            back.get('Sent Items') == {'\\Sent'}, back)
    R.check('plain Junk takes the role', back.get('Junk') == {'\\Junk'}, back)
    n = sum(1 for v in back.values() if v)
    R.check('one mailbox per role', n == 5, back)
    r = c.cmd('SUBSCRIBE Trash')
    lsub = c.cmd('LSUB "" "*"')
    R.check('restored Trash subscribed', any('Trash' in l for l in lsub), lsub)
    # RFC 9208 5.1: no limit, no root
    r = c.cmd('GETQUOTAROOT INBOX')
    R.check('GETQUOTAROOT without a limit', r[0] in ('* QUOTAROOT INBOX', '* QUOTAROOT "INBOX"') and
            ' OK ' in r[-1] and not any(l.startswith('* QUOTA ') for l in r),
            r)
    deliver(env, ALICE, simple_message(7))
    st = c.cmd('STATUS INBOX (MESSAGES SIZE)')
    m = re.search(r'MESSAGES (\d+) SIZE (\d+)', st[0])
    R.check('STATUS=SIZE shows usage', m is not None and
            int(m.group(1)) >= 1 and int(m.group(2)) > 100, st)
    c.logout()


def index_path(env, address):
    rc, out, err = env.loftctl('user', 'show', address)
    uid = int(re.search(r'^id: (\d+)$', out, re.M).group(1))
    return glob.glob(os.path.join(env.data_dir, 'mail', '*', str(uid),
                                  'index.db'))


def test_check_pg(env):
    """test_check on postgres: one schema for the whole database, made
    and upgraded by the first loftd or loftctl that opens it
    (docs/scale-out.md; the upgrade steps are unit/test-store-pg's): a
    newer one is refused untouched, an account without mail is consistent
    and gets no rows."""
    def schema():
        return env.pg_store_sql('SELECT version FROM loft_schema'
                                ' ORDER BY version')
    known = schema()[-1][0]
    rc, out, err = env.loftctl('check', ALICE)
    R.check('check of a current schema', rc == 0 and
            out.strip().endswith('consistent'), (rc, out, err))
    env.pg_store_sql('INSERT INTO loft_schema VALUES (99)')
    before = schema()
    rc, out, err = env.loftctl('check', ALICE)
    R.check('check refuses a newer schema', rc == 1 and 'is version 99'
            in err and 'upgrade Loft' in err, (rc, out, err))
    R.check('newer schema untouched', schema() == before, (before, schema()))
    env.pg_store_sql('DELETE FROM loft_schema WHERE version = 99')
    R.check('schema back to version %d' % known, schema()[-1] == (known,))
    env.add_user('erin@example.test', 'Vq8-autumn-pear-35')
    accounts = env.pg_store_sql('SELECT user_id FROM account'
                                ' ORDER BY user_id')
    rc, out, err = env.loftctl('check', 'erin@example.test')
    R.check('check of an account without mail', rc == 0 and
            out.strip() == 'erin@example.test: consistent', (out, err))
    R.check('no rows made for it', env.pg_store_sql(
        'SELECT user_id FROM account ORDER BY user_id') == accounts)


def test_check(env):
    """With loftd stopped: the index is edited behind its back."""
    env.stop()
    if BACKEND == 'postgres':
        test_check_pg(env)
        return
    path = index_path(env, ALICE)[0]
    db = sqlite3.connect(path)
    known = db.execute('SELECT version FROM account').fetchone()[0]
    db.execute('ALTER TABLE account DROP COLUMN sync_login')
    # step 12 -> 13 moves annotations and URLAUTH keys to tables with a
    # viewer column: put back version 12's tables, with rows; 13 -> 14
    # adds blob.head
    for stmt in ('ALTER TABLE blob DROP COLUMN head',
                 'DROP TRIGGER mailbox_annotation_gone', 'DROP TABLE annotation',
                 'DROP TABLE access_key',
                 'CREATE TABLE metadata(mailbox INTEGER NOT NULL, name TEXT NOT NULL,'
                 ' value BLOB NOT NULL, PRIMARY KEY (mailbox, name)) WITHOUT ROWID',
                 'CREATE TABLE urlauth_key(mailbox INTEGER PRIMARY KEY, key BLOB NOT NULL)',
                 'CREATE TRIGGER mailbox_annotations_gone AFTER DELETE ON mailbox BEGIN'
                 ' DELETE FROM metadata WHERE mailbox = old.id;'
                 ' DELETE FROM urlauth_key WHERE mailbox = old.id; END',
                 "INSERT INTO metadata VALUES (0, '/private/comment', X'6b657074')",
                 "INSERT INTO urlauth_key SELECT id, zeroblob(32) FROM mailbox"
                 " WHERE name = 'INBOX'"):
        db.execute(stmt)
    db.execute('UPDATE account SET version = ?', (known - 2,))
    db.commit()
    db.close()
    rc, out, err = env.loftctl('check', ALICE)
    R.check('check upgrades an older index', rc == 0 and
            'index schema upgraded from version %d to %d' % (known - 2, known)
            in out and out.strip().endswith('consistent after 1 repairs'),
            (rc, out, err))
    db = sqlite3.connect(path)
    rows = (db.execute('SELECT mailbox, viewer, name, value FROM annotation').fetchall(),
            db.execute('SELECT viewer, length(key) FROM access_key').fetchall(),
            db.execute("SELECT name FROM sqlite_master WHERE name IN"
                       " ('metadata', 'urlauth_key', 'mailbox_annotations_gone')").fetchall())
    R.check('the upgrade moved the annotations and keys',
            rows == ([(0, 0, '/private/comment', b'kept')], [(0, 32)], []), rows)
    db.execute('UPDATE account SET version = 99')
    db.commit()
    db.close()
    before = open(path, 'rb').read()
    rc, out, err = env.loftctl('check', ALICE)
    R.check('check refuses a newer index', rc == 1 and 'is version 99'
            in err and 'upgrade Loft' in err, (rc, out, err))
    R.check('newer index untouched', open(path, 'rb').read() == before)
    env.add_user('erin@example.test', 'Vq8-autumn-pear-35')
    indexes = glob.glob(os.path.join(env.data_dir, 'mail', '*', '*',
                                     'index.db'))
    rc, out, err = env.loftctl('check', 'erin@example.test')
    R.check('check of an account without mail', rc == 0 and
            out.strip() == 'erin@example.test: consistent', (out, err))
    R.check('no index made for it', glob.glob(os.path.join(
        env.data_dir, 'mail', '*', '*', 'index.db')) == indexes)


def main():
    with make_env() as env:
        test_refused_logged(env)
        test_roles(env)
        test_check(env)
    sys.exit(R.finish())


if __name__ == '__main__':
    main()
