#!/usr/bin/env python3
"""POP3 that keeps devices in sync (issue "Running it for real"):

- RETR sets \\Seen, seen over IMAP after QUIT and after a dropped
  connection; TOP does not; `[pop3] mark_seen = no` turns it off.
- pop3_delete = auto (the default): an account without an IMAP login in
  30 days gets its DELE'd mail moved to Trash; once an IMAP client has
  logged in (recorded by the store, shown by `loftctl user show`), DELE
  hides the mail from POP3 only and IMAP keeps it.
- DELE of a message another session removed answers -ERR; QUIT counts
  only what it removed.
"""

import imaplib
import re
import subprocess
import sys
import time

from loftenv import DEFAULT_USERS, LOFTD, SLOW, Loft, Results
from pop3client import Pop3, deliver, make_env, simple_message

R = Results()
# loftenv's default users: passwords that pass the password policy.
ALICE, BOB = 'alice@example.test', 'bob@example.test'
ALICE_PW, BOB_PW = DEFAULT_USERS[ALICE], DEFAULT_USERS[BOB]


def ok(r):
    return r.startswith(b'+OK')


def login(env, user=ALICE, pw=ALICE_PW):
    p = Pop3.connect(env)
    r = p.login(user, pw)
    assert ok(r), r
    return p


def imap_flags(env, user, pw, mailbox='INBOX'):
    """{uid: flags string} of a mailbox, read over IMAP."""
    c = imaplib.IMAP4('127.0.0.1', env.port('imap'))
    c.login(user, pw)
    c.select(mailbox, readonly=True)
    typ, data = c.uid('FETCH', '1:*', '(FLAGS)')
    out = {}
    for item in data or []:
        if not item:
            continue
        m = re.search(rb'UID (\d+) FLAGS \(([^)]*)\)', item)
        if m:
            out[int(m.group(1))] = m.group(2).decode()
    c.logout()
    return out


def test_seen(env):
    for i in range(1, 5):
        deliver(env, BOB, simple_message(i))
    p = login(env, BOB, BOB_PW)
    R.check('RETR 1', ok(p.multi('RETR 1')[0]))
    R.check('TOP 2', ok(p.multi('TOP 2 0')[0]))
    R.check('RETR 3', ok(p.multi('RETR 3')[0]))
    R.check('QUIT', ok(p.cmd('QUIT')))
    flags = imap_flags(env, BOB, BOB_PW)
    R.check('RETR sets \\Seen', '\\Seen' in flags.get(1, ''), flags)
    R.check('TOP does not', '\\Seen' not in flags.get(2, ''), flags)
    R.check('RETR 3 \\Seen', '\\Seen' in flags.get(3, ''), flags)
    R.check('untouched unseen', '\\Seen' not in flags.get(4, ''), flags)
    # a connection dropped after RETR: the download still counts as read
    p = login(env, BOB, BOB_PW)
    R.check('RETR 4', ok(p.multi('RETR 4')[0]))
    p.sock.close()
    deadline = time.monotonic() + 20 * SLOW
    while time.monotonic() < deadline:
        flags = imap_flags(env, BOB, BOB_PW)
        if '\\Seen' in flags.get(4, ''):
            break
        time.sleep(0.1)
    R.check('dropped session sets \\Seen', '\\Seen' in flags.get(4, ''),
            flags)


def test_mark_seen_off():
    with make_env(extra={'pop3': {'mark_seen': 'no'}}) as env:
        deliver(env, ALICE, simple_message(1))
        p = login(env)
        p.multi('RETR 1')
        p.cmd('QUIT')
        flags = imap_flags(env, ALICE, ALICE_PW)
        R.check('mark_seen = no leaves it unseen',
                '\\Seen' not in flags.get(1, ''), flags)
    with Loft(extra={'pop3': {'mark_seen': 'maybe'}}, start=False) as env:
        c = subprocess.run([LOFTD, '--config', env.config_path, '--check'],
                           capture_output=True, text=True)
        R.check('mark_seen = maybe refused', c.returncode == 1 and
                'mark_seen: expected yes or no' in c.stderr, c.stderr)


def show(env, user):
    rc, out, err = env.loftctl('user', 'show', user)
    return out


def test_auto(env):
    """alice has never used IMAP: DELE goes to Trash. Then she does."""
    for i in range(1, 4):
        deliver(env, ALICE, simple_message(i))
    out = show(env, ALICE)
    R.check('show: never', 'last IMAP login: never' in out, out)
    R.check('show: auto means trash now', 'pop3 DELE now: trash' in out, out)
    p = login(env)
    R.check('DELE 1', ok(p.cmd('DELE 1')))
    R.check('QUIT removed 1', p.cmd('QUIT') ==
            b'+OK Logging out, 1 messages deleted.')
    R.check('log says trash (auto)', 'QUIT removed 1 of 1 messages '
            '(trash, auto)' in env.log())
    # IMAP sees it in Trash (and this login is the one auto remembers)
    inbox = imap_flags(env, ALICE, ALICE_PW)
    trash = imap_flags(env, ALICE, ALICE_PW, 'Trash')
    R.check('without IMAP: moved to Trash', len(inbox) == 2 and
            len(trash) == 1, (inbox, trash))
    out = show(env, ALICE)
    R.check('show: IMAP login recorded',
            re.search(r'last IMAP login: \d{4}-\d\d-\d\dT', out) is not None,
            out)
    R.check('show: auto means hide now', 'pop3 DELE now: hide' in out, out)
    p = login(env)
    R.check('STAT 2', p.cmd('STAT').startswith(b'+OK 2 '))
    R.check('DELE 1 again', ok(p.cmd('DELE 1')))
    R.check('QUIT removed 1 (hide)', p.cmd('QUIT') ==
            b'+OK Logging out, 1 messages deleted.')
    R.check('log says hide (auto)', 'QUIT removed 1 of 1 messages '
            '(hide, auto)' in env.log())
    inbox = imap_flags(env, ALICE, ALICE_PW)
    R.check('with IMAP: INBOX keeps it', len(inbox) == 2, inbox)
    p = login(env)
    R.check('POP3 no longer lists it', p.cmd('STAT').startswith(b'+OK 1 '))
    p.cmd('QUIT')


def test_removed_meanwhile(env):
    for i in range(1, 4):
        deliver(env, BOB, simple_message(10 + i))
    p = login(env, BOB, BOB_PW)
    st = p.cmd('STAT')
    n = int(st.split()[1])
    R.check('bob has messages', n >= 3, st)
    # an IMAP client expunges the last two while POP3 holds its snapshot
    c = imaplib.IMAP4('127.0.0.1', env.port('imap'))
    c.login(BOB, BOB_PW)
    c.select('INBOX')
    typ, data = c.search(None, 'ALL')
    seqs = data[0].split()
    R.check('DELE marked before the expunge', ok(p.cmd('DELE %d' % (n - 1))))
    c.store(b','.join(seqs[-2:]), '+FLAGS', '\\Deleted')
    c.expunge()
    c.logout()
    r = p.cmd('DELE %d' % n)
    R.check('DELE of removed mail: -ERR', r == b'-ERR Message %d was removed '
            b'by another session.' % n, r)
    R.check('DELE of present mail', ok(p.cmd('DELE 1')))
    r = p.cmd('QUIT')
    R.check('QUIT counts only what it removed',
            r == b'+OK Logging out, 1 messages deleted.', r)


def main():
    with make_env() as env:
        test_seen(env)
        test_auto(env)
        test_removed_meanwhile(env)
    test_mark_seen_off()
    sys.exit(R.finish())


if __name__ == '__main__':
    main()
