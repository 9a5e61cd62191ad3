#!/usr/bin/env python3
"""NOTIFY (RFC 5465) beside Dovecot: the same watcher (IDLE, nothing
selected, NOTIFY SET (personal (MessageNew MessageExpunge FlagChange
MailboxName SubscriptionChange))) on a private loftd and a private Dovecot,
the same changes made by a second session, and what each watcher is told
compared after every change: STATUS MESSAGES, UIDNEXT and UNSEEN of the
changed folder; LIST of a created, renamed (OLDNAME), subscribed and
deleted (\\NonExistent) folder. Values that differ by nature (UIDVALIDITY,
HIGHESTMODSEQ, LIST attributes other than \\NonExistent and \\Subscribed)
are left out. Dovecot pushes NOTIFY events promptly in IDLE (without IDLE
it may wait for its next check: docs/compat.md), so the watchers idle."""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
from dovecotenv import Dovecot  # noqa: E402
from imapconv import Conv  # noqa: E402
from loftenv import Loft, Results, SLOW  # noqa: E402

r = Results()
WAIT = 60 * SLOW
MSG = 'Subject: notify diff\r\nFrom: a@example.test\r\n\r\nhello\r\n'


def status_of(line):
    m = re.match(r'^\* STATUS "?([^"(]+?)"? \((.*)\)$', line)
    if not m:
        return None
    items = dict(re.findall(r'([A-Z]+) (\d+)', m.group(2)))
    return ('STATUS', m.group(1),
            tuple((k, items.get(k)) for k in ('MESSAGES', 'UIDNEXT', 'UNSEEN')))


def list_of(line):
    m = re.match(r'^\* LIST \(([^)]*)\) "[^"]*" "?([^"(]+?)"?'
                 r'(?: \("OLDNAME" \("?([^"()]+?)"?\)\))?$', line)
    if not m:
        return None
    attrs = set(m.group(1).split())
    return ('LIST', m.group(2), '\\NonExistent' in attrs, '\\Subscribed' in attrs,
            m.group(3))


def told(w, want, name):
    """Reads the watcher's responses until one that want() accepts; returns
    its normalized form (None after WAIT)."""
    try:
        while True:
            line = w.read_response(WAIT)
            n = status_of(line) or list_of(line)
            if n is not None and want(n):
                return n
    except Exception as e:
        print('%s: nothing (%s)' % (name, e))
        return None


def session(host_port, user, password):
    import socket
    w = Conv(socket.create_connection(host_port, timeout=WAIT), r, timeout=WAIT)
    w.login(user, password)
    return w


CASES = [
    # (name, command for the second session, what the watcher waits for)
    ('append', 'APPEND Lists {%d+}\r\n%s' % (len(MSG), MSG),
     lambda n: n[0] == 'STATUS' and n[1] == 'Lists'),
    ('flag', 'UID STORE 1 +FLAGS (\\Seen)',
     lambda n: n[0] == 'STATUS' and n[1] == 'Lists' and ('UNSEEN', '0') in n[2]),
    ('expunge', ['UID STORE 1 +FLAGS.SILENT (\\Deleted)', 'UID EXPUNGE 1'],
     lambda n: n[0] == 'STATUS' and n[1] == 'Lists' and ('MESSAGES', '0') in n[2]),
    ('create', 'CREATE Projects', lambda n: n[0] == 'LIST' and n[1] == 'Projects'),
    ('rename', 'RENAME Projects Plans', lambda n: n[0] == 'LIST' and n[1] == 'Plans'),
    ('subscribe', 'SUBSCRIBE Plans', lambda n: n[0] == 'LIST' and n[3]),
    ('delete', 'DELETE Plans', lambda n: n[0] == 'LIST' and n[2]),
]

with Loft() as loft, Dovecot() as dc:
    results = {}
    for label, hp, users in (('loft', ('127.0.0.1', loft.ports['imap']), loft.users),
                             ('dovecot', ('127.0.0.1', dc.ports['imap']), dc.users)):
        user = sorted(users)[0]
        w = session(hp, user, users[user])
        b = session(hp, user, users[user])
        b.run('CREATE Lists', 'OK')
        lines, _ = w.run('CAPABILITY', 'OK')
        r.check('%s has NOTIFY' % label, ' NOTIFY' in lines[0], lines[0])
        w.run('NOTIFY SET (personal (MessageNew MessageExpunge FlagChange '
              'MailboxName SubscriptionChange))', 'OK', name='%s NOTIFY SET' % label)
        w.send('i1 IDLE\r\n')
        w.expect(r'^\+ ', name='%s IDLE' % label)
        out = []
        for name, cmd, want in CASES:
            if name == 'flag':
                b.run('SELECT Lists', 'OK')
            for one in (cmd if isinstance(cmd, list) else [cmd]):
                b.run(one, 'OK', name='%s %s' % (label, name))
            if name == 'expunge':
                b.run('UNSELECT', 'OK')
            out.append(told(w, want, '%s %s' % (label, name)))
        w.send('DONE\r\n')
        w.collect('i1', 'OK', name='%s IDLE done' % label)
        results[label] = out
        for c in (w, b):
            c.run('LOGOUT', 'OK')

    for (name, _, _), lo, dv in zip(CASES, results['loft'], results['dovecot']):
        r.check('loft told of %s' % name, lo is not None, lo)
        if dv is None:
            print('dovecot told nothing of %s (not compared)' % name)
            continue
        if lo is not None and dv[0] == 'STATUS':
            # Dovecot names only what FlagChange touched (UNSEEN); Loft
            # gives every item: compared where Dovecot has a value
            lo = lo[:2] + (tuple((k, v if dict(dv[2]).get(k) is not None else None)
                                 for k, v in lo[2]),)
        r.check('%s as Dovecot' % name, lo == dv, 'loft %r, dovecot %r' % (lo, dv))

sys.exit(r.finish())
