#!/usr/bin/env python3
"""Sharing over JMAP (RFC 9670, issue 15) of the caller's own mailboxes:
the principals capability, Principal/get and /query (the accounts of the
caller's domain; shared addresses and other domains are not principals),
Mailbox.shareWith read and written with Mailbox/set (a whole map and a
patch of one principal), what IMAP then shows the grantee (MYRIGHTS,
GETACL), and bad input: an unknown principal, the owner, a bad rights
object; a set with one bad entry changes nothing."""

import sys

from imapconv import Conv
from jmapclient import Jmap, USING
from loftenv import Loft, Results

R = Results()
ALICE, APW = 'alice@example.test', 'tea-party-rabbit-hole'
BOB, BPW = 'bob@example.test', 'can-we-fix-it-yes'
CAROL, CPW = 'carol@example.test', 'down-the-chimney-7'
P = 'urn:ietf:params:jmap:principals'
USE = USING + [P]

with Loft(users={ALICE: APW, BOB: BPW, CAROL: CPW}) as env:
    env.loftctl('domain', 'add', 'other.test')
    env.add_user('dave@other.test', 'over-the-hills-far-away')
    env.loftctl('shared', 'add', 'sales@example.test')
    j = Jmap(env, ALICE)
    s = j.session_obj
    acaps = s['accounts'][j.account]['accountCapabilities']
    R.check('session: principals capability', P in s['capabilities'] and
            P in acaps and acaps[P]['currentUserPrincipalId'], s)
    me = acaps[P]['currentUserPrincipalId']
    R.check('session: principals:owner',
            acaps[P + ':owner'] == {'accountIdForPrincipal': j.account,
                                    'principalId': me}, acaps)

    q = j.ok('Principal/query', {}, using=USE)
    g = j.ok('Principal/get', {'ids': None}, using=USE)
    emails = sorted(p['email'] for p in g['list'])
    R.check('Principal/get: the domain\'s accounts only',
            emails == [ALICE, BOB, CAROL], emails)
    R.check('Principal/query: the same ids',
            sorted(q['ids']) == sorted(p['id'] for p in g['list']), (q, g))
    pid = {p['email']: p['id'] for p in g['list']}
    R.check('Principal: individual, own account listed',
            all(p['type'] == 'individual' for p in g['list']) and
            j.account in (next(p for p in g['list'] if p['id'] == me)
                          ['accounts'] or {}) and
            next(p for p in g['list'] if p['email'] == BOB)['accounts'] is None,
            g['list'])
    q = j.ok('Principal/query', {'filter': {'email': BOB}}, using=USE)
    R.check('Principal/query filter email', q['ids'] == [pid[BOB]], q)
    q = j.ok('Principal/query', {'filter': {'text': 'car'}}, using=USE)
    R.check('Principal/query filter text', q['ids'] == [pid[CAROL]], q)
    n, a = j.one('Principal/query', {'filter': {'color': 'red'}}, using=USE)
    R.check('Principal/query: unknown filter', n == 'error' and
            a['type'] == 'unsupportedFilter', (n, a))
    n, a = j.one('Principal/changes', {'sinceState': 'x'}, using=USE)
    R.check('Principal/changes: cannotCalculateChanges', n == 'error' and
            a['type'] == 'cannotCalculateChanges', (n, a))
    n, a = j.one('Principal/get', {'ids': None})
    R.check('Principal/get without the capability', n == 'error' and
            a['type'] == 'unknownMethod', (n, a))
    g = j.ok('Principal/get', {'ids': ['P0', 'nope', pid[BOB]]}, using=USE)
    R.check('Principal/get: notFound', g['notFound'] == ['P0', 'nope'] and
            len(g['list']) == 1, g)

    # Mailbox.shareWith: the Share dialog's read and write
    r = j.ok('Mailbox/set', {'create': {'f': {'name': 'Family'}}})
    fam = r['created']['f']['id']
    m = j.ok('Mailbox/get', {'ids': [fam]})['list'][0]
    R.check('shareWith null when shared with nobody; mayShare',
            m['shareWith'] is None and m['myRights']['mayShare'], m)
    read = {'mayReadItems': True, 'maySetSeen': True}
    r = j.ok('Mailbox/set', {'update': {fam: {'shareWith': {pid[BOB]: read}}}})
    R.check('Mailbox/set shareWith: updated', fam in r['updated'], r)
    m = j.ok('Mailbox/get', {'ids': [fam], 'properties': ['shareWith']})['list'][0]
    bob_r = m['shareWith'][pid[BOB]]
    R.check('Mailbox/get shareWith: bob reads and sets seen',
            bob_r['mayReadItems'] and bob_r['maySetSeen'] and
            not bob_r['mayAddItems'] and not bob_r['mayShare'], m)
    b = Conv(env.raw('imap'), R)
    b.login(BOB, BPW)
    b.run('MYRIGHTS "Other Users/alice@example.test/Family"', 'OK',
          [r' lrs$'], name='IMAP: bob holds lrs')
    a = Conv(env.raw('imap'), R)
    a.login(ALICE, APW)
    a.run('SETACL Family $nobody lr', 'NO')
    a.run('SETACL Family anyone p', 'OK')
    # a patch of one principal; the anyone entry JMAP cannot show stays
    r = j.ok('Mailbox/set', {'update': {fam: {
        'shareWith/' + pid[CAROL]: {'mayReadItems': True, 'mayAddItems': True,
                                    'mayRemoveItems': True}}}})
    R.check('Mailbox/set shareWith/P: updated', fam in r['updated'], r)
    a.run('GETACL Family', 'OK', [r'carol@example.test"? lrited',
                                  r'bob@example.test"? lrs',
                                  r'anyone"? p'])
    # bad input: nothing changes
    before = j.ok('Mailbox/get', {'ids': [fam]})['list'][0]['shareWith']
    for bad, what in ((
            {'shareWith': {pid[BOB]: read, 'P999999': read}}, 'unknown principal'), (
            {'shareWith': {pid[BOB]: {'mayFly': True}}}, 'unknown right'), (
            {'shareWith': {pid[BOB]: {'mayReadItems': 'yes'}}}, 'not a boolean'), (
            {'shareWith': {me: read}}, 'the owner'), (
            {'shareWith/' + pid[BOB]: read, 'shareWith/Pzz': read}, 'bad patch'), (
            {'shareWith': 'everyone'}, 'not a map')):
        r = j.ok('Mailbox/set', {'update': {fam: bad}})
        R.check('Mailbox/set %s: notUpdated' % what,
                fam in r.get('notUpdated', {}) and
                r['notUpdated'][fam]['type'] == 'invalidProperties', r)
        after = j.ok('Mailbox/get', {'ids': [fam]})['list'][0]['shareWith']
        R.check('Mailbox/set %s: nothing changed' % what, after == before,
                (before, after))
    r = j.ok('Mailbox/set', {'update': {fam: {'shareWith': {
        pid[BOB]: read}}}})
    m = j.ok('Mailbox/get', {'ids': [fam]})['list'][0]
    R.check('a whole map: carol is gone, bob stays',
            list(m['shareWith']) == [pid[BOB]], m)
    b.run('MYRIGHTS "Other Users/alice@example.test/Family"', 'OK', [r' lrsp$'],
          name='IMAP: bob lrs and anyone p')
    r = j.ok('Mailbox/set', {'update': {fam: {'shareWith/' + pid[BOB]: None}}})
    m = j.ok('Mailbox/get', {'ids': [fam]})['list'][0]
    R.check('a patch to null: shared with nobody', m['shareWith'] is None, m)
    b.run('MYRIGHTS "Other Users/alice@example.test/Family"',
          'NO \\[NONEXISTENT\\]', name='IMAP: bob lost his rights')
    a.run('GETACL Family', 'OK', [r'anyone"? p'], absent=[r'bob', r'carol'])
    # shareWith on create
    r = j.ok('Mailbox/set', {'create': {'g': {
        'name': 'Trips', 'shareWith': {pid[CAROL]: read}}}})
    R.check('Mailbox/set create with shareWith', 'g' in r.get('created', {}), r)
    c = Conv(env.raw('imap'), R)
    c.login(CAROL, CPW)
    c.run('MYRIGHTS "Other Users/alice@example.test/Trips"', 'OK', [r' lrs$'])
    for conv in (a, b, c):
        conv.run('LOGOUT', 'OK')

sys.exit(R.finish())
