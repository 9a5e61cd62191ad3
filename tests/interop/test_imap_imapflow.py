#!/usr/bin/env python3
"""imapflow (npm, pinned in tests/interop/package-lock.json) against loftd:
STARTTLS, listing with special-use, APPEND, FETCH of envelope/flags/
structure/source, SEARCH, flags, MOVE with COPYUID, and IDLE notification of
another session's APPEND within 1 s."""

import os
import sys

from clients import node_json
from loftenv import Loft, Results, SLOW

HERE = os.path.dirname(os.path.abspath(__file__))
USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
r = Results()

if not os.path.isdir(os.path.join(HERE, 'node_modules', 'imapflow')):
    print('imapflow is not installed: run `make npm` (npm ci in tests/interop)')
    r.check('imapflow installed', False)
    sys.exit(r.finish())

with Loft() as env:
    out, p = node_json(os.path.join(HERE, 'imapflow-check.js'),
                       [env.port('imap'), USER, PW], 60 * SLOW, HERE)
    r.check('imapflow ran', 'error' not in out, out.get('error'))
    if 'error' not in out:
        r.check('STARTTLS used', out['secure'] is True, out['secure'])
        uses = {f['path']: f['specialUse'] for f in out['folders']}
        r.check('special-use folders listed',
                uses.get('Sent') == '\\Sent' and uses.get('Trash') == '\\Trash'
                and uses.get('Drafts') == '\\Drafts' and 'INBOX' in uses, uses)
        r.check('3 messages in INBOX', out['exists'] == 3, out['exists'])
        subjects = [m['subject'] for m in out['fetched']]
        r.check('fetched envelopes', subjects == ['imapflow 1', 'imapflow 2', 'imapflow 3'],
                subjects)
        r.check('fetched flags', all('\\Seen' in m['flags'] for m in out['fetched']),
                out['fetched'])
        r.check('fetched structure and source',
                all(m['type'] == 'text/plain' and m['size'] > 100 for m in out['fetched']),
                out['fetched'])
        r.check('search by subject', out['search'] == [2], out['search'])
        r.check('move with COPYUID', out['moved'] == [[3, 1]], out['moved'])
        idle = out['idle']
        r.check('IDLE notification within 1 s',
                idle is not None and idle['count'] == 3 and idle['ms'] < 1000, idle)
        if idle:
            print('imapflow IDLE notification after %d ms' % idle['ms'])
    if p.returncode != 0:
        print(p.stderr[-2000:])

sys.exit(r.finish())
