#!/usr/bin/env python3
"""JMAP access to another account's mail (issues 12 and 15): alice shares
folders with bob (lr, then lrs, then lrswited, and a group), and bob
reaches them over JMAP under alice's accountId: the session lists the
account (isPersonal false, isReadOnly from the rights, mail only),
Mailbox/get shows only what bob may see with myRights from the ACL,
Email/query|get|changes, Thread/get, SearchSnippet/get and downloads keep
to the mailboxes bob may read, $seen is bob's own (alice's unread count
does not move), Email/set keywords / mailboxIds / destroy are checked
against the rights (forbidden, invalidProperties, accountReadOnly),
Email/copy works both ways, an EventSource of bob's sees alice's
delivery under her accountId and a grant at once, and a revoke takes
effect at the next request."""

import json
import sys
import time

from imapconv import Conv
from jmapclient import EventSource, Jmap
from loftenv import Loft, Results

R = Results()
ALICE, APW = 'alice@example.test', 'tea-party-rabbit-hole'
BOB, BPW = 'bob@example.test', 'can-we-fix-it-yes'
CAROL, CPW = 'carol@example.test', 'down-the-chimney-7'
MAIL = 'urn:ietf:params:jmap:mail'
BOUND = 30.0      # a push on a loaded machine: waited for, never slept


def deliver(env, rcpt, subject):
    c = env.lmtp(unix=True)
    c.connect(env.lmtp_socket)
    c.ehlo('test')
    c.sendmail('x@remote.test', [rcpt],
               ('From: x@remote.test\r\nTo: %s\r\nSubject: %s\r\n'
                'Message-ID: <%s@remote.test>\r\n\r\nbody of %s\r\n'
                % (rcpt, subject, subject.replace(' ', '-'), subject))
               .encode())
    c.quit()


def message(subject, body='hello'):
    return ('From: alice@example.test\r\nTo: bob@example.test\r\n'
            'Subject: %s\r\nMessage-ID: <%s@example.test>\r\n\r\n%s\r\n'
            % (subject, subject.replace(' ', '-'), body)).encode()


def acl(imap, mailbox, who, rights):
    """SETACL through alice's IMAP session (the daemon tells watchers at
    once; loftctl acl set works on the files from its own process)."""
    if rights is None:
        imap.run('DELETEACL %s %s' % (mailbox, who), 'OK')
    else:
        imap.run('SETACL %s %s %s' % (mailbox, who, rights), 'OK')


def on(j, acc, method, args):
    """A call on another account: (name, arguments)."""
    a = dict(args)
    a['accountId'] = acc
    r = j.call([[method, a, 'c']])
    name, out, _ = r['methodResponses'][0]
    return name, out


def ok(j, acc, method, args):
    n, a = on(j, acc, method, args)
    assert n == method, (method, n, a)
    return a


def state_for(es, account, deadline):
    """The first StateChange naming account before deadline, or None."""
    while time.time() < deadline:
        ev = es.state_event(timeout=max(0.05, deadline - time.time()))
        if ev is None:
            return None
        if account in ev.get('changed', {}):
            return ev
    return None


with Loft(users={ALICE: APW, BOB: BPW, CAROL: CPW}) as env:
    a = Jmap(env, ALICE)
    b = Jmap(env, BOB)
    AA = a.account
    ai = Conv(env.raw('imap'), R)
    ai.login(ALICE, APW)
    es = EventSource(env, b)
    R.check('bob: EventSource open', es.status == 200, es.head)

    # alice's folders and mail
    r = a.ok('Mailbox/set', {'create': {
        'f': {'name': 'Family'}, 'w': {'name': 'Work'},
        'p': {'name': 'Private'}, 'ro': {'name': 'Reading'}}})
    fam, work, priv, reading = (r['created'][k]['id']
                                for k in ('f', 'w', 'p', 'ro'))

    def put(subject, mailbox, body='hello', kw=None):
        blob = a.upload(message(subject, body), 'message/rfc822')['blobId']
        r = a.ok('Email/import', {'emails': {'e': {
            'blobId': blob, 'mailboxIds': {mailbox: True},
            'keywords': kw or {}}}})
        return r['created']['e']['id']

    bills = put('bills of june', fam, 'the gas bill')
    photos = put('holiday photos', fam, 'sunny beach')
    secret = put('diary', priv, 'dear diary')
    memo = put('work memo', work, 'quarterly numbers')

    s = b.session()
    R.check('no grant: bob sees one account', list(s['accounts']) ==
            [b.account], s['accounts'])
    n, x = on(b, AA, 'Mailbox/get', {'ids': None})
    R.check('no grant: alice\'s account not found', n == 'error' and
            x['type'] == 'accountNotFound', (n, x))

    # ---- lr: read only -------------------------------------------------
    acl(ai, 'Family', BOB, 'lr')
    ev = state_for(es, AA, time.time() + BOUND)
    R.check('grant: bob\'s EventSource names alice\'s account', ev is not None
            and 'Mailbox' in ev['changed'][AA], ev)
    s = b.session()
    acc = s['accounts'].get(AA)
    R.check('session: alice\'s account, not personal, read-only',
            acc is not None and acc['isPersonal'] is False and
            acc['isReadOnly'] is True and acc['name'] == ALICE, acc)
    R.check('session: mail capability only',
            acc is not None and list(acc['accountCapabilities']) == [MAIL],
            acc)
    R.check('session: primary account still bob\'s',
            s['primaryAccounts'][MAIL] == b.account, s['primaryAccounts'])

    mbs = ok(b, AA, 'Mailbox/get', {'ids': None})['list']
    R.check('Mailbox/get: only Family', [m['name'] for m in mbs] ==
            ['Family'], mbs)
    m = mbs[0]
    R.check('myRights from lr', m['myRights']['mayReadItems'] and
            not m['myRights']['maySetSeen'] and
            not m['myRights']['mayAddItems'] and
            not m['myRights']['mayRemoveItems'] and
            not m['myRights']['mayShare'], m['myRights'])
    R.check('counts of Family', m['totalEmails'] == 2 and
            m['unreadEmails'] == 2 and not m['isSubscribed'], m)
    q = ok(b, AA, 'Email/query', {'filter': {'inMailbox': fam},
                                  'sort': [{'property': 'receivedAt'}]})
    R.check('Email/query inMailbox', sorted(q['ids']) ==
            sorted([bills, photos]), q)
    q = ok(b, AA, 'Email/query', {})
    R.check('Email/query of the account: readable mail only',
            sorted(q['ids']) == sorted([bills, photos]), q)
    g = ok(b, AA, 'Email/get', {'ids': [bills, secret, memo],
                                'properties': ['subject', 'mailboxIds',
                                               'keywords', 'blobId',
                                               'threadId']})
    R.check('Email/get: Family\'s mail, others notFound',
            [e['subject'] for e in g['list']] == ['bills of june'] and
            sorted(g['notFound']) == sorted([secret, memo]), g)
    R.check('Email/get: mailboxIds of readable mailboxes',
            g['list'] and g['list'][0]['mailboxIds'] == {fam: True}, g)
    blob = g['list'][0]['blobId'] if g['list'] else ''
    tid = g['list'][0]['threadId'] if g['list'] else ''
    st, _, body = b.request('GET', '/jmap/download/%s/%s/m.eml' % (AA, blob))
    R.check('download of a readable blob', st == 200 and
            b'the gas bill' in body, st)
    sg = a.ok('Email/get', {'ids': [secret], 'properties': ['blobId']})
    st, _, _ = b.request('GET', '/jmap/download/%s/%s/m.eml' %
                         (AA, sg['list'][0]['blobId']))
    R.check('download of an unreadable blob: 404', st == 404, st)
    t = ok(b, AA, 'Thread/get', {'ids': [tid]})
    R.check('Thread/get', t['list'] and t['list'][0]['emailIds'] == [bills],
            t)
    sn = ok(b, AA, 'SearchSnippet/get', {'emailIds': [bills, secret],
                                         'filter': {'text': 'gas'}})
    R.check('SearchSnippet/get: readable only', [x['emailId'] for x in
            sn['list']] == [bills] and sn['notFound'] == [secret], sn)
    q = ok(b, AA, 'Email/query', {'filter': {'text': 'diary'}})
    R.check('Email/query text: nothing of unreadable mail', q['ids'] == [],
            q)
    n, x = on(b, AA, 'Email/set', {'update': {bills: {
        'keywords/$seen': True}}})
    R.check('lr: Email/set accountReadOnly', n == 'error' and
            x['type'] == 'accountReadOnly', (n, x))
    n, x = on(b, AA, 'Identity/get', {})
    R.check('another account: Identity/get not supported',
            n == 'error' and x['type'] == 'accountNotSupportedByMethod',
            (n, x))
    e0 = ok(b, AA, 'Email/get', {'ids': []})['state']
    m0 = ok(b, AA, 'Mailbox/get', {'ids': []})['state']

    # ---- lrs: bob's own $seen ------------------------------------------
    acl(ai, 'Family', BOB, 'lrs')
    n, x = on(b, AA, 'Email/changes', {'sinceState': e0})
    R.check('a change of rights: old state cannotCalculateChanges',
            n == 'error' and x['type'] == 'cannotCalculateChanges', (n, x))
    e0 = ok(b, AA, 'Email/get', {'ids': []})['state']
    m0 = ok(b, AA, 'Mailbox/get', {'ids': []})['state']
    es.drain()
    u = ok(b, AA, 'Email/set', {'update': {bills: {'keywords/$seen': True}}})
    R.check('lrs: bob marks read', bills in (u.get('updated') or {}), u)
    g = ok(b, AA, 'Email/get', {'ids': [bills], 'properties': ['keywords']})
    R.check('bob sees $seen', g['list'][0]['keywords'].get('$seen'), g)
    g = a.ok('Email/get', {'ids': [bills], 'properties': ['keywords']})
    R.check('alice\'s $seen unchanged (per-user \\Seen)',
            not g['list'][0]['keywords'].get('$seen'), g)
    fm = ok(b, AA, 'Mailbox/get', {'ids': [fam]})['list'][0]
    am = a.ok('Mailbox/get', {'ids': [fam]})['list'][0]
    R.check('bob\'s unread 1, alice\'s 2', fm['unreadEmails'] == 1 and
            am['unreadEmails'] == 2, (fm, am))
    c = ok(b, AA, 'Email/changes', {'sinceState': e0})
    R.check('Email/changes: bob\'s $seen is an update', bills in
            c['updated'] and c['newState'] != e0, c)
    c = ok(b, AA, 'Mailbox/changes', {'sinceState': m0})
    R.check('Mailbox/changes: Family\'s counts', fam in c['updated'], c)
    q = ok(b, AA, 'Email/query', {'filter': {'inMailbox': fam,
                                             'notKeyword': '$seen'}})
    R.check('Email/query notKeyword $seen: bob\'s own', q['ids'] == [photos],
            q)
    u = ok(b, AA, 'Email/set', {'update': {photos: {
        'keywords/$flagged': True}}})
    R.check('lrs: $flagged forbidden', photos in (u.get('notUpdated') or {})
            and u['notUpdated'][photos]['type'] == 'forbidden', u)
    ev = state_for(es, AA, time.time() + BOUND)
    R.check('bob\'s own $seen pushed under alice\'s account',
            ev is not None and 'Email' in ev['changed'][AA], ev)

    # ---- lrswited and a group ------------------------------------------
    r = env.loftctl('group', 'add', 'team@example.test', BOB, CAROL)
    R.check('group made', r[0] == 0, r)
    acl(ai, 'Family', BOB, 'lrswited')
    acl(ai, 'Work', '$team', 'lrswited')
    acl(ai, 'Reading', BOB, 'lr')
    acl(ai, 'INBOX', BOB, 'lr')
    s = b.session()
    R.check('session: now read-write', s['accounts'][AA]['isReadOnly'] is
            False, s['accounts'][AA])
    names = sorted(m['name'] for m in
                   ok(b, AA, 'Mailbox/get', {'ids': None})['list'])
    R.check('Mailbox/get: Family, Inbox, Reading, Work (group)',
            names == ['Family', 'INBOX', 'Reading', 'Work'] or
            names == ['Family', 'Inbox', 'Reading', 'Work'], names)
    u = ok(b, AA, 'Email/set', {'update': {photos: {
        'keywords/$flagged': True}}})
    R.check('lrswited: $flagged', photos in (u.get('updated') or {}), u)
    u = ok(b, AA, 'Email/set', {'update': {photos: {
        'mailboxIds': {work: True}}}})
    R.check('move Family -> Work', photos in (u.get('updated') or {}), u)
    g = a.ok('Email/get', {'ids': [photos], 'properties': ['mailboxIds',
                                                          'keywords']})
    R.check('alice sees the move and the flag',
            g['list'][0]['mailboxIds'] == {work: True} and
            g['list'][0]['keywords'].get('$flagged'), g)
    u = ok(b, AA, 'Email/set', {'update': {photos: {
        'mailboxIds': {reading: True}}}})
    R.check('move into a folder without i: forbidden',
            photos in (u.get('notUpdated') or {}) and
            u['notUpdated'][photos]['type'] == 'forbidden', u)
    u = ok(b, AA, 'Email/set', {'update': {photos: {
        'mailboxIds': {priv: True}}}})
    R.check('move into a hidden folder: invalidProperties',
            photos in (u.get('notUpdated') or {}) and
            u['notUpdated'][photos]['type'] == 'invalidProperties', u)
    g = a.ok('Email/get', {'ids': [photos], 'properties': ['mailboxIds']})
    R.check('refused moves changed nothing',
            g['list'][0]['mailboxIds'] == {work: True}, g)
    rd = put('to read only', reading)
    u = ok(b, AA, 'Email/set', {'destroy': [rd]})
    R.check('destroy without t e: forbidden', rd in
            (u.get('notDestroyed') or {}) and
            u['notDestroyed'][rd]['type'] == 'forbidden', u)
    u = ok(b, AA, 'Email/set', {'destroy': [bills]})
    R.check('destroy with t e', u.get('destroyed') == [bills], u)
    g = a.ok('Email/get', {'ids': [bills, rd], 'properties': ['id']})
    R.check('alice: destroyed gone, refused kept',
            g['notFound'] == [bills] and len(g['list']) == 1, g)
    # Email/copy: into bob's own account, and back into alice's
    r = b.call([['Email/copy', {'fromAccountId': AA,
                                'accountId': b.account,
                                'create': {'k': {'id': memo, 'mailboxIds': {
                                    b.mailbox('inbox')['id']: True}}}},
                 'c']])
    cp = b.resp(r, 'Email/copy')
    R.check('Email/copy alice -> bob', 'k' in (cp.get('created') or {}), cp)
    mine = cp['created']['k']['id'] if cp.get('created') else None
    g = b.ok('Email/get', {'ids': [mine], 'properties': ['subject']})
    R.check('bob has the copy', g['list'] and g['list'][0]['subject'] ==
            'work memo', g)
    r = b.call([['Email/copy', {'fromAccountId': b.account,
                                'accountId': AA,
                                'create': {'k': {'id': mine, 'mailboxIds': {
                                    fam: True}}}}, 'c']])
    cp = b.resp(r, 'Email/copy')
    R.check('Email/copy bob -> alice\'s Family', 'k' in
            (cp.get('created') or {}), cp)
    # Blob/copy: a blob of alice's (a forward) into bob's own account
    mg = ok(b, AA, 'Email/get', {'ids': [memo], 'properties': ['blobId']})
    r = b.call([['Blob/copy', {'fromAccountId': AA, 'accountId': b.account,
                               'blobIds': [mg['list'][0]['blobId'],
                                           sg['list'][0]['blobId']]}, 'c']])
    bc = b.resp(r, 'Blob/copy')
    nb = (bc.get('copied') or {}).get(mg['list'][0]['blobId'])
    R.check('Blob/copy from alice\'s account: readable copied, hidden not',
            nb and sg['list'][0]['blobId'] in (bc.get('notCopied') or {}),
            bc)
    st, _, body = b.download(nb or 'x')
    R.check('the copied blob is bob\'s', st == 200 and
            b'quarterly numbers' in body, st)
    r = b.call([['Email/copy', {'fromAccountId': b.account,
                                'accountId': AA,
                                'create': {'k': {'id': mine, 'mailboxIds': {
                                    reading: True}}}}, 'c']])
    cp = b.resp(r, 'Email/copy')
    R.check('Email/copy into a folder without i: not created',
            'k' in (cp.get('notCreated') or {}), cp)

    # ---- the owner's delivery reaches bob's EventSource ----------------
    es.drain()
    deliver(env, ALICE, 'for alice')
    ev = state_for(es, AA, time.time() + BOUND)
    R.check('alice\'s LMTP delivery pushed to bob under her account',
            ev is not None and 'Email' in ev['changed'][AA], ev)
    q = ok(b, AA, 'Email/query', {'filter': {'text': 'for alice'}})
    R.check('bob finds the delivery in alice\'s INBOX', len(q['ids']) == 1,
            q)

    # ---- revoke: at once ----------------------------------------------
    es.drain()
    acl(ai, 'Family', BOB, None)
    names = sorted(m['name'] for m in
                   ok(b, AA, 'Mailbox/get', {'ids': None})['list'])
    R.check('revoked: Family gone at the next request', 'Family' not in
            names, names)
    g = ok(b, AA, 'Email/get', {'ids': [photos], 'properties': ['id']})
    R.check('revoked Family: its mail not found, Work\'s still there',
            [e['id'] for e in g['list']] == [photos], g)
    ev = state_for(es, AA, time.time() + BOUND)
    R.check('revoke pushed to bob', ev is not None, ev)
    for mailbox, who in (('Work', '$team'), ('Reading', BOB),
                         ('INBOX', BOB)):
        acl(ai, mailbox, who, None)
    s = b.session()
    R.check('all revoked: the account leaves the session',
            AA not in s['accounts'], s['accounts'])
    n, x = on(b, AA, 'Mailbox/get', {'ids': None})
    R.check('all revoked: accountNotFound', n == 'error' and
            x['type'] == 'accountNotFound', (n, x))
    es.close()

sys.exit(R.finish())
