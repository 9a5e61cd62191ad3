#!/usr/bin/env python3
"""jmap-jam and eventsource (npm, pinned in tests/interop/package-lock.json)
against loftd, with a Bearer app password made by `loftctl token add`: a
client's day. Session through /.well-known/jmap, list, query and get in
one request (result reference), keywords, a move, an EventSource
StateChange within 1 s of an import, upload and import, download, and a
submission to a local recipient with onSuccessUpdateEmail filing the
message in Sent; Bob finds it in his INBOX over IMAP."""

import json
import os
import re
import subprocess
import sys

from loftenv import Loft, Results, SLOW

HERE = os.path.dirname(os.path.abspath(__file__))
USER = 'alice@example.test'
r = Results()

for mod in ('jmap-jam', 'eventsource'):
    if not os.path.isdir(os.path.join(HERE, 'node_modules', mod)):
        print('%s is not installed: run `make npm` (npm ci in tests/interop)' % mod)
        r.check('%s installed' % mod, False)
        sys.exit(r.finish())


def deliver(env, subject, n):
    c = env.lmtp(unix=True)
    c.connect(env.lmtp_socket)
    c.ehlo('test')
    c.sendmail('dana@remote.test', [USER],
               ('From: Dana <dana@remote.test>\r\nTo: %s\r\nSubject: %s\r\n'
                'Message-ID: <jam%d@remote.test>\r\n\r\nHello %d.\r\n'
                % (USER, subject, n, n)).encode())
    c.quit()


with Loft() as env:
    for i in range(3):
        deliver(env, 'jam %d' % i, i)
    rc, out, err = env.loftctl('token', 'add', USER, '--name', 'jam')
    m = re.search(r'\b(loft_[A-Za-z0-9_-]+)', out)
    r.check('loftctl token add', rc == 0 and m is not None, out + err)
    url = 'http://127.0.0.1:%d/.well-known/jmap' % env.ports['http']
    p = subprocess.run(['node', os.path.join(HERE, 'jmap-jam-check.mjs'), url,
                        m.group(1) if m else 'x'],
                       capture_output=True, text=True, timeout=60 * SLOW, cwd=HERE)
    try:
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {'error': p.stdout + p.stderr}
    r.check('jmap-jam ran', 'error' not in res, res.get('error'))
    if 'error' not in res:
        roles = {x['role'] for x in res['mailboxes']}
        r.check('mailboxes by role', {'inbox', 'sent', 'drafts', 'trash',
                                      'junk', 'archive'} <= roles, roles)
        r.check('query total and get', res['total'] == 3 and
                sorted(res['subjects']) == ['jam 0', 'jam 1', 'jam 2'], res)
        r.check('keywords set', len(res['keywordsUpdated']) == 1, res)
        r.check('moved', len(res['moved']) == 1, res)
        r.check('upload', res['uploaded'], res)
        r.check('import', res['imported'] is not None, res)
        r.check('EventSource StateChange within 1 s', res['pushMs'] <= 1000 and
                'Email' in res['pushedTypes'], res)
        r.check('only the types that moved', 'Identity' not in
                res['pushedTypes'], res['pushedTypes'])
        r.check('download', res['downloaded'], res)
        r.check('submission', res['submitted'] == ['s'], res)
        r.check('onSuccessUpdateEmail filed it in Sent', res['inSent'] == 1, res)
        imap = env.imap_login('bob@example.test')
        imap.select('INBOX')
        typ, d = imap.search(None, 'SUBJECT', '"Sent by jmap-jam"')
        r.check('Bob got it', typ == 'OK' and len(d[0].split()) == 1, d)
        typ, d = imap.fetch('1', '(BODY.PEEK[HEADER.FIELDS (BCC)])')
        imap.logout()
    r.check('loftd still running', env.running())
sys.exit(r.finish())
